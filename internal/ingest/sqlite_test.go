package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
)

// TestIntoSQLite runs the engine against the real embedded store: a file ingests, the
// same file again is all unchanged, a newer version updates, a failed file commits its
// ledger row and nothing else (even after batches of it were streamed), and duplicates
// spread over batches count once.
func TestIntoSQLite(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := ingest.New(st)
	// edited is conversation i with new content and a later last message.
	edited := func(i int) benchConversation {
		c := genConversation(i)
		c.Messages[0].Content = "edited"
		c.Messages[len(c.Messages)-1].Timestamp = c.Messages[len(c.Messages)-1].Timestamp.Add(time.Hour)
		return c
	}
	line := func(c benchConversation) []byte {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	}
	lines := func(from, n int) []byte {
		var b []byte
		for i := range n {
			b = append(b, line(genConversation(from+i))...)
		}
		return b
	}
	const bigN = 600
	c1, c2 := genConversation(1), genConversation(2)
	body := append(line(c1), line(c2)...)
	ref := ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: "a.jsonl", ETag: "e1", Size: int64(len(body)), LastModified: time.Now()}
	steps := []struct {
		name   string
		ref    ingest.ObjectRef
		body   []byte
		state  store.FileState
		counts store.RecordCounts
	}{
		{"first", ref, body, store.FileIngested, store.RecordCounts{Valid: 2, New: 2}},
		{"again", ref, body, store.FileIngested, store.RecordCounts{Valid: 2, Unchanged: 2}},
		{"newer", ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: "b.jsonl", LastModified: time.Now()}, line(edited(1)),
			store.FileIngested, store.RecordCounts{Valid: 1, Updated: 1}},
		{"invalid", ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: "c.jsonl"}, []byte(`{"conversation_id":"x"}` + "\n"), store.FileFailed, store.RecordCounts{Invalid: 1}},
		// Several batches reach the transaction before the last record fails the file.
		{"invalid after batches", ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: "d.jsonl"}, append(lines(1000, bigN), `{"conversation_id":"x"}`+"\n"...),
			store.FileFailed, store.RecordCounts{Valid: bigN, Invalid: 1}},
		// A later batch holds a newer version of a record of the first: counted once, and it wins.
		{"duplicates across batches", ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: "e.jsonl", LastModified: time.Now()}, append(lines(2000, bigN), line(edited(2000))...),
			store.FileIngested, store.RecordCounts{Valid: bigN + 1, New: bigN, Unchanged: 1}},
	}
	for _, s := range steps {
		res, err := e.Process(ctx, s.ref, bytes.NewReader(s.body), ingest.Options{})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.State != s.state || res.Counts != s.counts {
			t.Fatalf("%s: %s %+v, want %s %+v (%s)", s.name, res.State, res.Counts, s.state, s.counts, res.Message)
		}
		f, ok, err := st.LookupFile(ctx, "ns/s", s.ref.Key)
		if err != nil || !ok || f.State != s.state || f.Reason != res.Reason {
			t.Fatalf("%s: ledger %+v %v %v", s.name, f, ok, err)
		}
	}
	for _, i := range []int{1, 2000} {
		c := genConversation(i)
		got, ok, err := st.GetConversation(ctx, "ns", c.AgentID, c.ConversationID)
		if err != nil || !ok || !bytes.Contains(got.Raw, []byte(`"edited"`)) {
			t.Fatalf("conversation %d: %v %v %s", i, ok, err, got.Raw)
		}
	}
	// Nothing of the failed file stayed.
	for _, i := range []int{1000, 1000 + bigN - 1} {
		c := genConversation(i)
		if _, ok, err := st.GetConversation(ctx, "ns", c.AgentID, c.ConversationID); ok || err != nil {
			t.Fatalf("conversation %d of the failed file: stored %v, %v", i, ok, err)
		}
	}
}
