package ingest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/avon-ai/data-import-operator/internal/ingest"
)

// No string of unbounded length from a file reaches a message: values, key names,
// archive entry names and JSON paths are shortened where they are quoted, and the
// message is cut to MaxMessageRunes.
func TestMessagesAreBounded(t *testing.T) {
	huge := strings.Repeat("k", 200_000)
	deep := `"` + strings.Repeat("n", 300) + `"`
	nested := strings.Repeat("{"+deep+":", 60) + `"\u0000"` + strings.Repeat("}", 60)
	zipWith := func(name string, body []byte) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(body)
		_ = zw.Close()
		return b.Bytes()
	}
	long := strings.Repeat("e", 60_000)
	tests := []struct {
		name, key string
		body      []byte
		mentions  string
	}{
		{"huge key name, withheld", "a.json", []byte(hostileRecord("b-1", map[string]string{
			"user_data": `{"` + huge + `":"x"}`, "missing_info": `{"reason":"r","fields":["` + huge + `"]}`})), "user_data.kkkk"},
		{"duplicate huge key", "b.json", []byte(hostileRecord("b-2", map[string]string{"user_data": `{"` + huge + `":1,"` + huge + `":2}`})), "duplicate key"},
		{"deep path of long keys", "c.json", []byte(hostileRecord("b-3", map[string]string{"user_data": nested})), "U+0000"},
		{"huge entry name, unsafe", "d.zip", zipWith("../"+long+".json", []byte("[]")), "'..'"},
		{"huge entry name, invalid record", "e.zip", zipWith(long+".json", []byte(`[{"conversation_id":"x"}]`)), "agent_id"},
		{"many errors with huge values", "f.jsonl", []byte(strings.Repeat(hostileRecord("b-4", map[string]string{"timestamp": `"` + huge + `"`})+"\n", 30)), "ISO-8601"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := ingest.ObjectRef{Namespace: "ns", Source: "ns/s", Key: tt.key, Size: int64(len(tt.body))}
			res, err := ingest.New(nil).Process(context.Background(), ref, bytes.NewReader(tt.body), ingest.Options{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid() || !strings.Contains(res.Message, tt.mentions) {
				t.Fatalf("%s %s: %.300s, want a failure mentioning %q", res.State, res.Reason, res.Message, tt.mentions)
			}
			if n := utf8.RuneCountInString(res.Message); n > ingest.MaxMessageRunes+1 {
				t.Errorf("message of %d runes, want at most %d: %.200s…", n, ingest.MaxMessageRunes+1, res.Message)
			}
			for _, e := range res.Errors {
				if n := utf8.RuneCountInString(e.Error()); n > 1500 {
					t.Errorf("record error of %d runes: %.200s…", n, e.Error())
				}
			}
		})
	}
}
