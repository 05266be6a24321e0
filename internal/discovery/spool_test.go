package discovery

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// CleanSpool removes the downloads and ZIP copies a killed process left, and nothing
// else: not a foreign file, not a directory, not a file named like ours outside the
// operator's own directory.
func TestCleanSpoolRemovesOnlyOrphanedSpoolFiles(t *testing.T) {
	parent := t.TempDir()
	dir, err := SpoolDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(parent, SpoolSubdir) {
		t.Fatalf("SpoolDir(%s) = %s, want the %s subdirectory", parent, dir, SpoolSubdir)
	}
	// What this package and the engine create, through the same patterns.
	download, err := os.CreateTemp(dir, spoolPattern)
	if err != nil {
		t.Fatal(err)
	}
	_ = download.Close()
	zipCopy, err := os.CreateTemp(dir, "ingest-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	_ = zipCopy.Close()
	keep := []string{"notes.txt", "object", "ingest-1.tar", "objects-dir"}
	for _, name := range keep[:3] {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "object-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	keep[3] = "object-dir"
	// A file named like a download but in the shared parent is not the operator's.
	if err := os.WriteFile(filepath.Join(parent, "object-123"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	removed, err := CleanSpool(dir)
	if err != nil || removed != 2 {
		t.Fatalf("CleanSpool = %d, %v; want 2 removed", removed, err)
	}
	var left []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Errorf("left %v, want %v", left, keep)
	}
	if _, err := os.Stat(filepath.Join(parent, "object-123")); err != nil {
		t.Errorf("a file outside the spool directory was touched: %v", err)
	}
	// A spool directory not created yet holds nothing to clean.
	if n, err := CleanSpool(filepath.Join(parent, "absent")); n != 0 || err != nil {
		t.Errorf("CleanSpool of a missing directory = %d, %v", n, err)
	}
}
