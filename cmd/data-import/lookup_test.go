package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
)

// seedStore ingests files into a real SQLite store with the operator's engine, as the
// operator would, and returns the store's DSN. The store is closed again so the CLI opens
// it like a second process.
func seedStore(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	other := strings.ReplaceAll(good, `"c1"`, `"c0"`)
	// Another tenant, "rival", stores the same agent_id and conversation_id (and one of
	// its own) from an S3Source of the same name, later: it must not show in "demo".
	rival := strings.ReplaceAll(good, `"hi"`, `"rival's"`)
	rivalOnly := strings.ReplaceAll(rival, `"c1"`, `"r1"`)
	inDefault := strings.ReplaceAll(good, `"hi"`, `"in default"`)
	files := []struct{ namespace, key, body string }{
		{"demo", "conversations/2025/01/15/a.jsonl", good + "\n" + other + "\n"},
		{"demo", "conversations/2025/01/15/b.jsonl", bad + "\n"},
		{"demo", "conversations/2025/01/15/notes.csv", "a,b\n"},
		{"demo", "conversations/2025/01/16/a-again.jsonl", good + "\n"},
		{"rival", "rival.jsonl", rival + "\n" + rivalOnly + "\n"},
		{"default", "d.jsonl", inDefault + "\n"},
	}
	e := ingest.New(st)
	base := time.Date(2025, 1, 15, 15, 0, 0, 0, time.UTC)
	for i, f := range files {
		ref := ingest.ObjectRef{Namespace: f.namespace, Source: f.namespace + "/acme", Bucket: "acme", Key: f.key, ETag: "e",
			Size: int64(len(f.body)), LastModified: base.Add(time.Duration(i) * time.Hour)}
		// Distinct times make "most recently processed first" deterministic.
		if _, err := e.Process(ctx, ref, strings.NewReader(f.body), ingest.Options{Now: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatalf("ingesting %s: %v", f.key, err)
		}
	}
	return "sqlite://" + path
}

func TestLookups(t *testing.T) {
	dsn := seedStore(t)
	tests := []struct {
		name string
		args []string
		code int
		want []string // lines or fragments that must appear in stdout, in order
		err  string   // fragment of stderr
		// absent are fragments stdout must not hold: another namespace's data.
		absent []string
	}{
		{name: "get prints the stored record", args: []string{"get", "--store", dsn, "-n", "demo", "--agent", "a1", "--conversation", "c1"}, want: []string{
			"{\n", `  "conversation_id": "c1",`, `  "agent_id": "a1",`, `      "content": "hi",`,
		}},
		{name: "get json has provenance", args: []string{"get", "--store", dsn, "--namespace", "demo", "--agent", "a1", "--conversation", "c1", "--output", "json"}, want: []string{
			`"namespace": "demo"`, `"agent_id": "a1"`, `"conversation_id": "c1"`, `"source": "demo/acme"`,
			// The identical copy counted as unchanged, but its origin is newer (store.Newer
			// compares keys last), so the stored provenance moved to it.
			`"object_key": "conversations/2025/01/16/a-again.jsonl"`, `"record": {`,
		}},
		{name: "get of a missing conversation", args: []string{"get", "--store", dsn, "-n", "demo", "--agent", "a1", "--conversation", "c2"}, code: 1,
			err: `no conversation agent_id="a1" conversation_id="c2" in namespace "demo"`},
		{name: "get without the conversation", args: []string{"get", "--store", dsn, "--agent", "a1"}, code: 2,
			err: "--agent and --conversation are required"},
		{name: "list by conversation_id", args: []string{"list", "--store", dsn, "-n", "demo", "--agent", "a1"}, want: []string{
			"CONVERSATION_ID  LATEST_ACTIVITY       SOURCE     OBJECT",
			"c0               2025-01-15T14:30:00Z  demo/acme  conversations/2025/01/15/a.jsonl",
			"c1               2025-01-15T14:30:00Z  demo/acme  conversations/2025/01/16/a-again.jsonl",
		}, absent: []string{"rival", "r1", "d.jsonl"}},
		{name: "list with a limit", args: []string{"list", "--store", dsn, "-n", "demo", "--agent", "a1", "--limit", "1", "--output", "json"}, want: []string{
			`"conversation_id": "c0"`, "]",
		}},
		{name: "list of an unknown agent", args: []string{"list", "--store", dsn, "-n", "demo", "--agent", "nobody"}, want: []string{"CONVERSATION_ID"},
			err: `no conversations for agent_id "nobody" in namespace "demo"`},
		{name: "files, newest first", args: []string{"files", "--store", dsn, "-n", "demo", "--source", "acme"}, want: []string{
			"KEY", "STATE", "REASON", "NEW", "UPDATED", "UNCHANGED", "INVALID", "MESSAGE",
			"conversations/2025/01/16/a-again.jsonl", "ingested", "Ingested", "0", "0", "1", "0",
			"conversations/2025/01/15/notes.csv", "ignored", "UnsupportedFormat",
			"conversations/2025/01/15/b.jsonl", "failed", "InvalidRecords", "0", "0", "0", "1",
			`messages[0].timestamp: "15/01/2025" is not an ISO-8601 timestamp`,
			"conversations/2025/01/15/a.jsonl", "ingested", "Ingested", "2", "0", "0", "0",
		}, absent: []string{"rival.jsonl", "d.jsonl"}},
		{name: "files in one state", args: []string{"files", "--store", dsn, "-n", "demo", "--source", "acme", "--state", "failed", "--output", "json"}, want: []string{
			`"key": "conversations/2025/01/15/b.jsonl"`, `"state": "failed"`, `"reason": "InvalidRecords"`, `"Invalid": 1`,
		}},
		{name: "files of another source", args: []string{"files", "--store", dsn, "-n", "demo", "--source", "other"}, want: []string{"KEY"},
			err: `no files recorded for S3Source "other" in namespace "demo"`},
		{name: "files with namespace/name", args: []string{"files", "--store", dsn, "--source", "demo/acme"}, code: 2,
			err: `--source "demo/acme": want the S3Source's name; its namespace is -n/--namespace`},
		{name: "files without a source", args: []string{"files", "--store", dsn, "-n", "demo"}, code: 2,
			err: "--source is required"},
		{name: "files with a bad state", args: []string{"files", "--store", dsn, "-n", "demo", "--source", "acme", "--state", "done"}, code: 2,
			err: `--state "done": want ingested, failed, deferred or ignored`},
		// Namespaces: every lookup reads one, "default" without -n; none sees another's.
		{name: "get in the other tenant's namespace", args: []string{"get", "--store", dsn, "-n", "rival", "--agent", "a1", "--conversation", "c1", "--output", "json"},
			want: []string{`"namespace": "rival"`, `"source": "rival/acme"`, `"content": "rival's"`}},
		{name: "get without -n reads default", args: []string{"get", "--store", dsn, "--agent", "a1", "--conversation", "c1"},
			want: []string{`"content": "in default"`}, absent: []string{"rival", `"hi"`}},
		{name: "get of another namespace's conversation", args: []string{"get", "--store", dsn, "-n", "demo", "--agent", "a1", "--conversation", "r1"}, code: 1,
			err: `no conversation agent_id="a1" conversation_id="r1" in namespace "demo"`},
		{name: "list stays in its namespace", args: []string{"list", "--store", dsn, "--namespace", "rival", "--agent", "a1"}, want: []string{
			"c1", "rival/acme", "rival.jsonl", "r1", "rival/acme", "rival.jsonl",
		}, absent: []string{"c0", "demo"}},
		{name: "files of the same name in another namespace", args: []string{"files", "--store", dsn, "-n", "rival", "--source", "acme", "--output", "json"},
			want: []string{`"key": "rival.jsonl"`, "]"}, absent: []string{"conversations/"}},
		{name: "a bad namespace", args: []string{"list", "--store", dsn, "-n", "Not_A_Namespace", "--agent", "a1"}, code: 2,
			err: `--namespace "Not_A_Namespace": want a Kubernetes namespace name`},
		{name: "no store", args: []string{"list", "--agent", "a1"}, code: 2, err: "--store is required"},
		{name: "unsupported store", args: []string{"list", "--store", "mysql://x/y", "--agent", "a1"}, code: 1,
			err: `unsupported DSN scheme "mysql"`},
		{name: "bad output", args: []string{"list", "--store", dsn, "--agent", "a1", "--output", "xml"}, code: 2,
			err: `--output "xml": want text or json`},
		{name: "stray argument", args: []string{"list", "--store", dsn, "--agent", "a1", "extra"}, code: 2,
			err: `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			wantInOrder(t, out, tc.want)
			for _, a := range tc.absent {
				if strings.Contains(out, a) {
					t.Errorf("stdout holds %q, of another namespace\n%s", a, out)
				}
			}
			if !strings.Contains(errOut, tc.err) {
				t.Fatalf("stderr lacks %q\n%s", tc.err, errOut)
			}
		})
	}
}

// TestGetPrintsValidJSON: the text output of get is the stored record, so it round-trips.
func TestGetPrintsValidJSON(t *testing.T) {
	dsn := seedStore(t)
	code, out, errOut := runCLI(t, "", "get", "--store", dsn, "-n", "demo", "--agent", "a1", "--conversation", "c0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rec struct {
		ConversationID string `json:"conversation_id"`
		Messages       []struct {
			MessageID string `json:"message_id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rec.ConversationID != "c0" || len(rec.Messages) != 1 || rec.Messages[0].MessageID != "m1" {
		t.Fatalf("%+v", rec)
	}
}

// wantInOrder fails unless every fragment of want appears in out, in order.
func wantInOrder(t *testing.T, out string, want []string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("stdout lacks %q (in order)\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}
