package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
)

// TestPIICountsCommitWithTheFile: what the validators count goes into the source's
// lifetime totals in the file's own commit (so a crash after it loses nothing): all of a
// stored file's counts, only the rejections of a failed one.
func TestPIICountsCommitWithTheFile(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vs, err := ingest.CompileValidators([]ingest.ValidatorConfig{
		{Type: ingest.PIIEmail, Action: ingest.ActionRedact},
		{Type: ingest.PIICard, Action: ingest.ActionReject},
	})
	if err != nil {
		t.Fatal(err)
	}
	file := func(contents ...string) []byte {
		var b bytes.Buffer
		for i, content := range contents {
			c := genConversation(i)
			c.Messages[0].Content = content
			line, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(append(line, '\n'))
		}
		return b.Bytes()
	}
	e := ingest.New(st)
	steps := []struct {
		key   string
		body  []byte
		state store.FileState
		want  string
	}{
		{"stored.jsonl", file("write to a@example.com or b@example.com", "c@example.com", "nothing"), store.FileIngested,
			"[{email Redact 2 3}]"},
		{"rejected.jsonl", file("card 4111 1111 1111 1111 and d@example.com", "fine"), store.FileFailed,
			"[{card Reject 1 1} {email Redact 2 3}]"},
	}
	for _, step := range steps {
		ref := ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: step.key, ETag: "e", Size: int64(len(step.body)), LastModified: time.Now()}
		res, err := e.Process(ctx, ref, bytes.NewReader(step.body), ingest.Options{Validators: vs, Policy: ingest.SkipFile})
		if err != nil || res.State != step.state {
			t.Fatalf("%s: %s, %v; want %s", step.key, res.State, err, step.state)
		}
		totals, err := st.SourceTotals(ctx, "ns/s")
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(totals.PII); got != step.want {
			t.Errorf("after %s: PII totals %s, want %s", step.key, got, step.want)
		}
	}
}
