package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

const (
	good = `{"conversation_id":"c1","agent_id":"a1","timestamp":"2025-01-15T14:30:00Z","messages":[{"message_id":"m1","role":"customer","content":"hi","timestamp":"2025-01-15T14:30:00Z"}]}`
	bad  = `{"conversation_id":"c2","agent_id":"a1","timestamp":"2025-01-15T14:30:00Z","messages":[{"message_id":"m1","role":"customer","content":"hi","timestamp":"15/01/2025"}]}`
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}, args)
	return code, out.String(), errOut.String()
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidate(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"ok/a.jsonl":   good + "\n",
		"ok/notes.txt": "x",
		"bad/b.jsonl":  good + "\n" + bad + "\n",
	})
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  []string // lines that must appear in stdout, in order
	}{
		{name: "valid dir", args: []string{"validate", filepath.Join(dir, "ok")}, code: 0, want: []string{
			"ok      " + dir + "/ok/a.jsonl: 1 valid records [Ingested]",
			"        records: 1 valid, 0 invalid, 0 duplicates in the file",
			`        would write agent_id="a1" conversation_id="c1"`,
			"ignored " + dir + `/ok/notes.txt: unsupported extension ".txt" (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz) [UnsupportedFormat]`,
		}},
		{name: "invalid file, flags after the path", args: []string{"validate", filepath.Join(dir, "bad/b.jsonl"), "--quiet"}, code: 1, want: []string{
			"FAIL    " + dir + `/bad/b.jsonl: 1 of 2 records invalid, nothing committed (policy SkipFile): ` + dir + `/bad/b.jsonl:2: messages[0].timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z) [InvalidRecords]`,
			"        records: 1 valid, 1 invalid, 0 duplicates in the file",
			"        " + dir + `/bad/b.jsonl:2: messages[0].timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`,
		}},
		{name: "SkipRecord policy", args: []string{"validate", "--policy", "SkipRecord", filepath.Join(dir, "bad")}, code: 0, want: []string{
			"ok      " + dir + `/bad/b.jsonl: 1 valid records, 1 invalid skipped`,
		}},
		{name: "stdin is sniffed", args: []string{"validate", "-"}, stdin: "[" + good + "]", code: 0, want: []string{"ok      stdin.json: 1 valid records [Ingested]"}},
		{name: "stdin with a name", args: []string{"validate", "--name", "x.jsonl", "-"}, stdin: bad, code: 1, want: []string{"FAIL    x.jsonl: 1 of 1 records invalid"}},
		{name: "agent allow-list", args: []string{"validate", "--agents", "a2, a3", filepath.Join(dir, "ok/a.jsonl")}, code: 1, want: []string{
			"        " + dir + `/ok/a.jsonl:1: agent_id: "a1" is not a known agent (not in the agent allow-list)`,
		}},
		{name: "missing file", args: []string{"validate", filepath.Join(dir, "nope.json")}, code: 1, want: []string{"ERROR   " + dir + "/nope.json: stat "}},
		{name: "no arguments", args: []string{"validate"}, code: 2},
		{name: "bad output", args: []string{"validate", "--output", "xml", dir}, code: 2},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stdout lacks %q (in order)\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.json": "[" + good + "," + bad + "]"})
	code, out, _ := runCLI(t, "", "validate", "--output", "json", dir)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Valid || len(rep.Files) != 1 {
		t.Fatalf("%+v", rep)
	}
	f := rep.Files[0]
	want := ingest.RecordError{Key: dir + "/a.json", Index: 1, Path: "messages[0].timestamp", Problem: `"15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`}
	if f.State != store.FileFailed || f.Reason != ingest.ReasonInvalidRecords || len(f.Errors) != 1 || f.Errors[0] != want {
		t.Fatalf("%+v", f)
	}
}

// validate refuses what the operator refuses by default: files over the
// IngestionQuota's default maxFileSize, 50 MB (decimal), not 50 MiB.
func TestValidateUsesTheQuotaFileSize(t *testing.T) {
	tests := []struct {
		name     string
		size     int64
		tooLarge bool
	}{
		{"one byte over 50 MB", quota.DefaultMaxFileSize + 1, true},
		{"just under 50 MiB, over 50 MB", 50<<20 - 1, true},
		{"exactly 50 MB", quota.DefaultMaxFileSize, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "big.jsonl")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			// Sparse: the size is what counts, and a too-large file is refused unread.
			if err := f.Truncate(tt.size); err != nil {
				t.Fatal(err)
			}
			f.Close()
			_, out, errOut := runCLI(t, "", "validate", "--output", "json", path)
			var rep report
			if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Files) != 1 {
				t.Fatalf("%v\n%s\n%s", err, out, errOut)
			}
			got := rep.Files[0]
			if (got.Reason == ingest.ReasonFileTooLarge) != tt.tooLarge {
				t.Fatalf("reason %s (%s), want FileTooLarge: %v", got.Reason, got.Message, tt.tooLarge)
			}
			if tt.tooLarge && !strings.Contains(got.Message, "larger than the 50 MB limit") {
				t.Errorf("message %q does not name the 50 MB limit", got.Message)
			}
		})
	}
}
