package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// hostileRecord is a valid conversation with fields replaced: each entry of patch is a
// JSON member text that is put in place of the field of the same name (or added).
func hostileRecord(id string, patch map[string]string) string {
	fields := []struct{ name, val string }{
		{"conversation_id", fmt.Sprintf("%q", id)},
		{"agent_id", `"agent-h"`},
		{"timestamp", `"2025-01-15T14:30:00Z"`},
		{"messages", `[{"message_id":"m1","role":"customer","content":"hi","timestamp":"2025-01-15T14:30:00Z"}]`},
		{"user_data", `{}`},
		{"missing_info", `{"reason":"none","fields":[]}`},
	}
	var b strings.Builder
	b.WriteString("{")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(",")
		}
		val := f.val
		if p, ok := patch[f.name]; ok {
			val = p
		}
		fmt.Fprintf(&b, "%q:%s", f.name, val)
	}
	b.WriteString("}")
	return b.String()
}

// hostileCorpus holds records a store could choke on: NUL escapes (PostgreSQL text
// cannot hold U+0000), lone UTF-16 surrogates (PostgreSQL's JSON parser refuses them),
// identities longer than a PostgreSQL index row can hold, huge key names, and raw bytes
// that are not UTF-8. Each file is one case; "ok" files must be ingested.
func hostileCorpus() []struct{ key, body string } {
	// Incompressible, so PostgreSQL cannot shrink it below its index row limit.
	var lb strings.Builder
	for i := 0; lb.Len() < 3000; i++ {
		fmt.Fprintf(&lb, "%x", uint32(i)*2654435761)
	}
	long := lb.String()
	huge := strings.Repeat("k", 100_000)
	return []struct{ key, body string }{
		{"ok.json", hostileRecord("ok-1", nil)},
		{"ok-surrogate-pair.json", hostileRecord("ok-2", map[string]string{"messages": `[{"message_id":"m1","role":"customer","content":"\ud83d\ude00","timestamp":"2025-01-15T14:30:00Z"}]`})},
		{"ok-huge-key.json", hostileRecord("ok-3", map[string]string{"user_data": `{"` + huge + `":1}`})},
		{"ok-numbers-and-separators.json", hostileRecord("ok-5", map[string]string{"user_data": `{"n":1e400,"z":-0.0,"big":123456789012345678901234567890,"s":"\u2028\u2029\ufeff\uffff"}`})},
		{"ok-deep.json", hostileRecord("ok-6", map[string]string{"user_data": strings.Repeat(`{"a":`, 60) + `1` + strings.Repeat(`}`, 60)})},
		{"nul-content.json", hostileRecord("h-1", map[string]string{"messages": `[{"message_id":"m1","role":"customer","content":"a\u0000b","timestamp":"2025-01-15T14:30:00Z"}]`})},
		{"nul-agent.json", hostileRecord("h-2", map[string]string{"agent_id": `"agent\u0000"`})},
		{"nul-conversation.json", hostileRecord("h-3", map[string]string{"conversation_id": `"h-3\u0000"`})},
		{"nul-key.json", hostileRecord("h-4", map[string]string{"user_data": `{"a\u0000b":1}`})},
		{"nul-withheld.jsonl", hostileRecord("h-5", map[string]string{"user_data": `{"p\u0000":"x"}`, "missing_info": `{"reason":"r","fields":["p\u0000"]}`})},
		{"lone-high.json", hostileRecord("h-6", map[string]string{"messages": `[{"message_id":"m1","role":"customer","content":"\ud800","timestamp":"2025-01-15T14:30:00Z"}]`})},
		{"lone-low.json", hostileRecord("h-7", map[string]string{"user_data": `{"note":"x\udc00y"}`})},
		{"high-high.json", hostileRecord("h-8", map[string]string{"user_data": `{"note":"\ud800\ud800"}`})},
		{"long-agent.json", hostileRecord("h-9", map[string]string{"agent_id": `"` + long + `"`})},
		{"long-conversation.json", hostileRecord(long, nil)},
		{"not-utf8.json", hostileRecord("h-10", map[string]string{"user_data": "{\"note\":\"\xff\xfe\"}"})},
		{"skip-record.jsonl", hostileRecord("ok-4", nil) + "\n" + hostileRecord("h-11", map[string]string{"agent_id": `"\u0000"`}) + "\n"},
	}
}

// Both stores accept exactly the same records: one hostile corpus through the engine
// into SQLite and into a real PostgreSQL gives the same results, ledger rows and stored
// conversations, and every store write succeeds (what one backend cannot hold is refused
// by validation, with its location, for both).
func TestBothStoresAcceptTheSameRecords(t *testing.T) {
	ctx := context.Background()
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := postgres.Open(ctx, pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	stores := []struct {
		name string
		st   interface {
			store.Store
			DumpConversations(context.Context) ([]store.Conversation, error)
		}
	}{{"sqlite", lite}, {"postgres", pg}}

	lm := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range hostileCorpus() {
		policy := ingest.SkipFile
		if strings.HasPrefix(f.key, "skip-record") {
			policy = ingest.SkipRecord
		}
		ref := ingest.ObjectRef{Namespace: "ns", Source: "ns/src", Key: f.key, ETag: "e", Size: int64(len(f.body)), LastModified: lm}
		var results [2]ingest.Result
		for i, s := range stores {
			res, err := ingest.New(s.st).Process(ctx, ref, strings.NewReader(f.body), ingest.Options{Policy: policy, Now: lm})
			if err != nil {
				t.Errorf("%s: %s: the store failed: %v", f.key, s.name, err)
			}
			results[i] = res
		}
		a, b := results[0], results[1]
		if a.State != b.State || a.Reason != b.Reason || a.Message != b.Message || a.Counts != b.Counts {
			t.Errorf("%s: sqlite %s %s %+v %q\npostgres %s %s %+v %q", f.key, a.State, a.Reason, a.Counts, a.Message, b.State, b.Reason, b.Counts, b.Message)
		}
		t.Logf("%s: %s %s", f.key, a.Reason, a.Message)
		wantOK := strings.HasPrefix(f.key, "ok") || strings.HasPrefix(f.key, "skip-record")
		if got := a.State == store.FileIngested; got != wantOK || strings.HasPrefix(f.key, "skip-record") && (a.Counts.Valid != 1 || a.Counts.Invalid != 1) {
			t.Errorf("%s: %s %s (%s), want ingested %v", f.key, a.State, a.Reason, a.Message, wantOK)
		}
		if !wantOK && !utf8.ValidString(a.Message) || strings.ContainsRune(a.Message, 0) || len(a.Message) > 4096 {
			t.Errorf("%s: message is not printable UTF-8 of bounded length: %q", f.key, a.Message)
		}
	}
	for _, want := range []struct{ key, says string }{
		{"nul-content.json", `messages[0].content: "a\x00b" holds U+0000 (NUL)`},
		{"nul-agent.json", "agent_id: "},
		{"nul-key.json", `user_data.a\x00b: the key holds U+0000 (NUL)`},
		{"lone-high.json", `messages[0].content: `},
		{"long-agent.json", "agent_id: "},
		{"long-conversation.json", "conversation_id: "},
	} {
		f, _, _ := lite.LookupFile(ctx, "ns/src", want.key)
		if !strings.Contains(f.Message, want.says) || !strings.Contains(f.Message, want.key) {
			t.Errorf("%s: message %q does not locate the problem (%q)", want.key, f.Message, want.says)
		}
	}

	// The ledgers and the stored conversations are the same.
	var ledgers [2][]store.FileRecord
	var convs [2][]store.Conversation
	for i, s := range stores {
		if ledgers[i], err = s.st.ListFiles(ctx, "ns/src", "", 0); err != nil {
			t.Fatal(err)
		}
		if convs[i], err = s.st.DumpConversations(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(ledgers[0]) != len(hostileCorpus()) || len(ledgers[0]) != len(ledgers[1]) {
		t.Fatalf("ledger rows: sqlite %d, postgres %d, files %d", len(ledgers[0]), len(ledgers[1]), len(hostileCorpus()))
	}
	byKey := map[string]store.FileRecord{}
	for _, f := range ledgers[1] {
		byKey[f.Key] = f
	}
	for _, a := range ledgers[0] {
		b := byKey[a.Key]
		if a.State != b.State || a.Reason != b.Reason || a.Message != b.Message || a.Counts != b.Counts || a.Bytes != b.Bytes {
			t.Errorf("ledger %s: sqlite %+v\npostgres %+v", a.Key, a, b)
		}
	}
	if len(convs[0]) != 6 || len(convs[0]) != len(convs[1]) {
		t.Fatalf("conversations: sqlite %d, postgres %d, want 6", len(convs[0]), len(convs[1]))
	}
	for i := range convs[0] {
		a, b := convs[0][i], convs[1][i]
		if a.AgentID != b.AgentID || a.ConversationID != b.ConversationID || a.ContentHash != b.ContentHash || !bytes.Equal(a.Raw, b.Raw) || !a.ActivityTime.Equal(b.ActivityTime) {
			t.Errorf("conversation %d: sqlite %s/%s %s, postgres %s/%s %s", i, a.AgentID, a.ConversationID, a.ContentHash, b.AgentID, b.ConversationID, b.ContentHash)
		}
	}
}
