package ingest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// zipOfN is a ZIP of n tiny entries.
func zipOfN(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := range n {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("%d.txt", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// declareEntries rewrites a ZIP's end records (the writer's, without a comment) so that
// they declare records entries, in a ZIP64 end record as a count over 65535 needs.
func declareEntries(t testing.TB, z []byte, records uint64) []byte {
	t.Helper()
	le := binary.LittleEndian
	end := len(z) - 22
	if le.Uint32(z[end:]) != 0x06054b50 {
		t.Fatal("no end of central directory record at the end")
	}
	dirSize, dirOffset := uint64(le.Uint32(z[end+12:])), uint64(le.Uint32(z[end+16:]))
	cut := end
	if end >= 20 && le.Uint32(z[end-20:]) == 0x07064b50 { // the writer's own ZIP64 records
		rec := int(le.Uint64(z[end-12:]))
		dirSize, dirOffset, cut = le.Uint64(z[rec+40:]), le.Uint64(z[rec+48:]), rec
	}
	out := append([]byte(nil), z[:cut]...)
	rec64 := len(out)
	out = le.AppendUint32(out, 0x06064b50)
	out = le.AppendUint64(out, 44)
	out = le.AppendUint16(out, 45)
	out = le.AppendUint16(out, 45)
	out = le.AppendUint32(out, 0)
	out = le.AppendUint32(out, 0)
	out = le.AppendUint64(out, records)
	out = le.AppendUint64(out, records)
	out = le.AppendUint64(out, dirSize)
	out = le.AppendUint64(out, dirOffset)
	out = le.AppendUint32(out, 0x07064b50)
	out = le.AppendUint32(out, 0)
	out = le.AppendUint64(out, uint64(rec64))
	out = le.AppendUint32(out, 1)
	out = le.AppendUint32(out, 0x06054b50)
	out = le.AppendUint16(out, 0)
	out = le.AppendUint16(out, 0)
	out = le.AppendUint16(out, 0xffff)
	out = le.AppendUint16(out, 0xffff)
	out = le.AppendUint32(out, 0xffffffff)
	out = le.AppendUint32(out, 0xffffffff)
	return le.AppendUint16(out, 0)
}

// A ZIP's entry count is checked against the limit before archive/zip materializes its
// central directory: a declared ten million, a real 20,000, and 65,541 entries declared
// as 5 (archive/zip compares counts modulo 65536 and would read them all) are refused
// as LimitExceeded with a few hundred allocations, not one or more per entry.
func TestZipEntryCountCheckedBeforeReading(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		entries int
	}{
		{"declares ten million", declareEntries(t, zipOfN(t, 1), 10_000_000), 10_000_000},
		{"holds 20,000", zipOfN(t, 20_000), 20_000},
		{"holds 65,541, declares 5", declareEntries(t, zipOfN(t, 65_541), 5), 65_541},
	}
	e := ingest.New(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: "a.zip", Size: int64(len(tt.body))}
			var res ingest.Result
			allocs := testing.AllocsPerRun(1, func() {
				var err error
				res, err = e.Process(context.Background(), ref, bytes.NewReader(tt.body), ingest.Options{DryRun: true})
				if err != nil {
					t.Fatal(err)
				}
			})
			if res.State != store.FileFailed || res.Reason != ingest.ReasonLimitExceeded {
				t.Fatalf("%s %s: %s, want LimitExceeded", res.State, res.Reason, res.Message)
			}
			if allocs > 1000 {
				t.Fatalf("refusing %d entries took %.0f allocations: the central directory was materialized", tt.entries, allocs)
			}
			t.Logf("%s: %.0f allocations: %s", tt.name, allocs, res.Message)
		})
	}
}
