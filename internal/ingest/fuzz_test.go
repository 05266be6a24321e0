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
func fuzzProcess(t *testing.T, key string, data []byte, vs ...*Validators) Result {
	st := newMemStore()
	e := &Engine{Store: st, Limits: fuzzLimits, TempDir: t.TempDir()}
	opts := Options{Policy: SkipRecord}
	if len(vs) > 0 {
		opts.Validators = vs[0]
	}
	res, err := e.Process(context.Background(), ObjectRef{Namespace: "ns", Key: key}, bytes.NewReader(data), opts)
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

// FuzzPII puts arbitrary text where the validators look (a message's content and a
// user_data value) and runs every finder on it and the engine with every validator
// redacting: no panic, matches inside the text and in order, a stored record that is
// still valid compacted JSON.
func FuzzPII(f *testing.F) {
	for _, seed := range []string{
		"call +44 20 7946 0958 or (415) 555-2671", "jane.doe@example.com", "4111 1111 1111 1111", "EMP-123456",
		"2025-01-15T14:30:00.000Z", "電話は+81 3-3224-5000です", "a@b@c..d", "+", "(", "@", "\u0000", "+1 (",
	} {
		f.Add(seed)
	}
	vs, err := CompileValidators([]ValidatorConfig{
		{Type: PIIEmail, Action: ActionRedact}, {Type: PIIPhone, Action: ActionRedact, Regions: []string{"US", "DE"}},
		{Type: PIICard, Action: ActionRedact}, {Type: PIIRegex, Name: "emp", Action: ActionRedact, Pattern: `\bEMP-[0-9]{6}\b`},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, v := range vs.list {
			last := 0
			for _, sp := range v.find([]byte(text), nil) {
				if sp.start < last || sp.end <= sp.start || sp.end > len(text) {
					t.Fatalf("%s: span %+v after %d in %q", v.name, sp, last, text)
				}
				last = sp.end
			}
		}
		rec := map[string]any{
			"conversation_id": "c", "agent_id": "a", "timestamp": "2025-01-15T14:30:00Z",
			"user_data": map[string]any{"note": text},
			"messages":  []any{map[string]any{"message_id": "m", "role": "customer", "content": text, "timestamp": "2025-01-15T14:30:00Z"}},
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return
		}
		fuzzProcess(t, "f.jsonl", line, vs)
	})
}
