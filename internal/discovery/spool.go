package discovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/avon-ai/data-import-operator/internal/ingest"
)

// SpoolSubdir is the directory the operator creates under --spool-dir for its downloads
// and ZIP copies. Its own directory, so removing what a killed process left behind never
// touches another program's files in a shared /tmp.
const SpoolSubdir = "data-import-spool"

// spoolPattern names a download spooled by run.spool (os.CreateTemp).
const spoolPattern = "object-*"

// spoolPatterns are every file the operator writes in its spool directory: downloads,
// and the engine's copies of ZIP archives.
var spoolPatterns = []string{spoolPattern, ingest.ZipSpoolPattern}

// SpoolDir returns the operator's spool directory under parent ("" is the OS temporary
// directory), creating it.
func SpoolDir(parent string) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dir := filepath.Join(parent, SpoolSubdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating the spool directory: %w", err)
	}
	return dir, nil
}

// CleanSpool removes from dir (a SpoolDir) the downloads and ZIP copies a killed process
// left behind: a process removes its own when it closes them, so any present before this
// process downloads anything are orphans. Other files are left alone. It returns how many
// it removed.
func CleanSpool(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the spool directory: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !spooled(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("removing orphaned spool files: %w", err)
	}
	return removed, nil
}

func spooled(name string) bool {
	for _, p := range spoolPatterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}
