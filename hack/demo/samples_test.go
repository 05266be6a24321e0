package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

// TestSamplesMeetExpectations runs the sample set through the operator's engine into a
// real SQLite store, in the demo's order, so a change to the samples or to the rules that
// breaks `make demo` fails here in a second instead of after a minute of demo.
func TestSamplesMeetExpectations(t *testing.T) {
	root, err := testsupport.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	engine := ingest.New(st)
	seen := map[string]bool{}
	modified := time.Date(2025, 1, 18, 12, 0, 0, 0, time.UTC)
	for _, phase := range []string{phaseInitial, phaseOwn, phaseRefresh} {
		samples, err := loadPhase(root, phase)
		if err != nil {
			t.Fatal(err)
		}
		// Each phase is uploaded later than the one before, so its objects are newer.
		modified = modified.Add(time.Hour)
		for _, s := range samples {
			ref := ingest.ObjectRef{Namespace: "acme", Source: "acme/acme-conversations", Key: "conversations/2025/01/18/" + s.name,
				ETag: s.name, Size: int64(len(s.body)), LastModified: modified}
			res, err := engine.Process(ctx, ref, bytes.NewReader(s.body), ingest.Options{})
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			want := expected[s.name]
			got := store.RecordCounts{New: res.Counts.New, Updated: res.Counts.Updated, Unchanged: res.Counts.Unchanged, Invalid: res.Counts.Invalid}
			if res.State != want.state || res.Reason != want.reason || got != want.counts {
				t.Errorf("%s: %s/%s %+v, want %s/%s %+v (%s)", s.name, res.State, res.Reason, got, want.state, want.reason, want.counts, res.Message)
			}
			seen[s.name] = true
		}
	}
	for name := range expected {
		if !seen[name] {
			t.Errorf("expected outcome for %s, but config/samples/data has no such sample", name)
		}
	}
}

// TestArchivesArePackedStably: the same folder packs to the same bytes (a stable ETag), with
// every file as an entry.
func TestArchivesArePackedStably(t *testing.T) {
	dir := t.TempDir()
	tree := writeTree(t, dir, map[string]string{"a.json": "[]", "sub/b.jsonl": "{}\n", "README.txt": "x"})
	wantNames := []string{"README.txt", "a.json", "sub/b.jsonl"}
	tests := []struct {
		name    string
		pack    func(string) ([]byte, error)
		entries func(t *testing.T, b []byte) []string
	}{
		{"zip", packZip, zipEntries},
		{"tar.gz", packTarGz, tarEntries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.pack(tree)
			if err != nil {
				t.Fatal(err)
			}
			b, err := tc.pack(tree)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatal("two packs of the same folder differ")
			}
			got := tc.entries(t, a)
			if len(got) != len(wantNames) {
				t.Fatalf("entries %v, want %v", got, wantNames)
			}
			for i := range got {
				if got[i] != wantNames[i] {
					t.Fatalf("entries %v, want %v", got, wantNames)
				}
			}
		})
	}
}

func writeTree(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func zipEntries(t *testing.T, b []byte) []string {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}

func tarEntries(t *testing.T, b []byte) []string {
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}
