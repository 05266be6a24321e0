package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// The sample set lives in config/samples/data/<phase>/. A directory named NAME.zip.d or
// NAME.tar.gz.d is packed into the archive NAME.zip or NAME.tar.gz at upload time, so the
// repository holds only readable JSON.
const (
	phaseInitial = "initial" // uploaded before the S3Source is created
	phaseRefresh = "refresh" // uploaded before the first refresh
	phaseOwn     = "own"     // "one's own file": put with the tenant's upload-only key before the first refresh
)

// expectation is what the operator must record for one sample file.
type expectation struct {
	state  store.FileState
	reason string
	counts store.RecordCounts // New, Updated, Unchanged, Invalid
}

// expected is the outcome of every sample, by the file name uploaded. README.md in
// config/samples/data says the same in prose.
var expected = map[string]expectation{
	"conv-2025-01-15-001.json":      {store.FileIngested, ingest.ReasonIngested, store.RecordCounts{New: 1}},
	"conv-2025-01-15-batch.jsonl":   {store.FileIngested, ingest.ReasonIngested, store.RecordCounts{New: 3}},
	"conv-2025-01-16-export.zip":    {store.FileIngested, ingest.ReasonIngested, store.RecordCounts{New: 2}},
	"conv-2025-01-17-export.tar.gz": {store.FileIngested, ingest.ReasonIngested, store.RecordCounts{New: 3}},
	"bad-bom.json":                  {store.FileFailed, ingest.ReasonInvalidEncoding, store.RecordCounts{}},
	"bad-timestamp.jsonl":           {store.FileFailed, ingest.ReasonInvalidRecords, store.RecordCounts{Invalid: 1}},
	"bad-missing-agent.json":        {store.FileFailed, ingest.ReasonInvalidRecords, store.RecordCounts{Invalid: 1}},
	"export.csv":                    {store.FileIgnored, ingest.ReasonUnsupportedFormat, store.RecordCounts{}},
	// Step 6: a byte-identical re-upload stores nothing; a newer version replaces the record.
	"conv-2025-01-15-001-reupload.json": {store.FileIngested, ingest.ReasonIngested, store.RecordCounts{Unchanged: 1}},
	"conv-2025-01-15-001-v2.json":       {store.FileIngested, ingest.ReasonIngested, store.RecordCounts{Updated: 1}},
	// Guide Step 3.3: a sample file dropped into the bucket, as one's own would be.
	"sample-conv-001.json": {store.FileIngested, ingest.ReasonIngested, store.RecordCounts{New: 1}},
}

// sample is one object to upload.
type sample struct {
	name string
	body []byte
}

// loadPhase reads config/samples/data/<phase>, packing the archive directories.
func loadPhase(root, phase string) ([]sample, error) {
	dir := filepath.Join(root, "config", "samples", "data", phase)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the sample data: %w", err)
	}
	var out []sample
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var body []byte
		var name string
		switch {
		case e.IsDir() && strings.HasSuffix(e.Name(), ".zip.d"):
			name = strings.TrimSuffix(e.Name(), ".d")
			body, err = packZip(p)
		case e.IsDir() && strings.HasSuffix(e.Name(), ".tar.gz.d"):
			name = strings.TrimSuffix(e.Name(), ".d")
			body, err = packTarGz(p)
		case e.Type().IsRegular():
			name = e.Name()
			body, err = os.ReadFile(p)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", p, err)
		}
		if _, ok := expected[name]; !ok {
			return nil, fmt.Errorf("sample %s has no expected outcome in hack/demo/samples.go", p)
		}
		out = append(out, sample{name: name, body: body})
	}
	return out, nil
}

// archiveTime is every entry's modification time, so a packed archive is the same bytes
// (and ETag) on every run.
var archiveTime = time.Date(2025, 1, 17, 12, 0, 0, 0, time.UTC)

// eachFile calls fn with every regular file under dir, in sorted order, by slash path
// relative to dir.
func eachFile(dir string, fn func(name string, body []byte) error) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		body, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			return err
		}
		if err := fn(n, body); err != nil {
			return err
		}
	}
	return nil
}

func packZip(dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := eachFile(dir, func(name string, body []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: archiveTime})
		if err != nil {
			return err
		}
		_, err = w.Write(body)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func packTarGz(dir string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.ModTime = archiveTime
	tw := tar.NewWriter(gz)
	err := eachFile(dir, func(name string, body []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: archiveTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
