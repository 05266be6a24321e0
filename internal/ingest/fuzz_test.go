package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// fuzzLimits are small so the fuzzer reaches the limit paths with small inputs.
var fuzzLimits = Limits{MaxRecordBytes: 4096, MaxArchiveEntries: 8, MaxArchiveBytes: 64 << 10, MaxEntryBytes: 32 << 10, MaxFileBytes: 1 << 20}

// fuzzProcess runs data through the engine into a memStore and checks what must hold
// for any input: no panic, no error (the body never fails), a known state, counts that
// add up, capped errors, and stored records that are valid, compacted JSON.
func fuzzProcess(t *testing.T, key string, data []byte) Result {
	st := newMemStore()
	e := &Engine{Store: st, Limits: fuzzLimits, TempDir: t.TempDir()}
	res, err := e.Process(context.Background(), ObjectRef{Namespace: "ns", Key: key}, bytes.NewReader(data), Options{Policy: SkipRecord})
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if res.State != store.FileIngested && res.State != store.FileFailed {
		t.Fatalf("state %q", res.State)
	}
	if len(res.Errors) > MaxErrorsPerFile || (res.MoreErrors > 0 && len(res.Errors) < MaxErrorsPerFile) {
		t.Fatalf("%d errors listed, %d more", len(res.Errors), res.MoreErrors)
	}
	if res.State == store.FileIngested {
		if res.Counts.Valid == 0 || res.Counts.New+res.Counts.Unchanged != res.Counts.Valid {
			t.Fatalf("counts %+v", res.Counts)
		}
	}
	for _, c := range st.convs {
		var buf bytes.Buffer
		if err := json.Compact(&buf, c.Raw); err != nil || !bytes.Equal(buf.Bytes(), c.Raw) {
			t.Fatalf("stored record is not compacted JSON (%v): %q", err, c.Raw)
		}
	}
	return res
}

func FuzzJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		res := fuzzProcess(t, "f.json", data)
		if res.State == store.FileIngested && !json.Valid(data) {
			t.Fatalf("accepted invalid JSON: %q", data)
		}
	})
}

func FuzzJSONL(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		res := fuzzProcess(t, "f.jsonl", data)
		if res.State != store.FileIngested {
			return
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 && !json.Valid(line) && res.Counts.Invalid == 0 {
				t.Fatalf("accepted invalid JSON line: %q", line)
			}
		}
	})
}

func FuzzZip(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzProcess(t, "f.zip", data) })
}

func FuzzTarGz(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzProcess(t, "f.tar.gz", data) })
}
