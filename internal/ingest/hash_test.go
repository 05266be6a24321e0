package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// The stored ContentHash of a record decides "unchanged" against every existing store,
// so the hasher may get faster but never give another value. These pins were computed
// by the hasher as it was before it was optimised (commit 2e0833d).

// hashOf parses s and returns its canonical hash, or "dup@<tape index>" when an object
// repeats a key.
func hashOf(t testing.TB, h *hasher, s string) string {
	t.Helper()
	var p parser
	p.maxDepth = DefaultMaxDepth
	if err := p.parse([]byte(s)); err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	sum, ok := h.sum(&record{raw: p.out, tape: p.tape})
	if !ok {
		return "dup@" + strconv.Itoa(int(h.dup))
	}
	return sum
}

func TestCanonicalHashPinned(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`{}`, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
		{`[]`, "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"},
		{`"x"`, "ba2df4903a2c14e86dc3bcca58911b44ac1d2514b7227bf6eb08cfb978f55a1b"},
		{`{"b":1,"a":[true,false,null,-0.50e+3,"s"]}`, "e6974b16b834408fb8d039810aceab66e20ac6af1e2c5192c59e33eb4bab626d"},
		{`{"k":"A\u00e9\n\/\"\\\t\u0000\u001f\ud83d\ude00"}`, "16f61494fc0acd23c083869410cc4cd348a52ab64991fa6a8f080c5fc5fed269"},
		{`{"\u0062":1,"a":2,"c":{"z":{},"y":[[],{}]}}`, "834f1ff1ee7a1e503be2793309a76215a923d066f4982b8d12fe30312c50080a"},
		{`{"é":1,"e":2,"\u00e9x":3,"ex":4}`, "24ab6360aa2828de38540c9ce26c1b2b4cb6b5443746ee4cd1cbc7d5f7a2095b"},
		{`{"a":1,"b":2,"a":3}`, "dup@5"},
		{`{"x":{"\u0061":1,"a":2}}`, "dup@5"},
		{`{"messages":[{"role":"user","content":"héllo \"there\"","logs":[{"z":1,"a":2}]}],"agent_id":"a-1"}`, "7139cc568e358223b2fb0782a15a7cb9b0596a57dd3a775cfd7140a68d55e05c"},
	}
	var h hasher
	for _, tt := range tests {
		if got := hashOf(t, &h, tt.in); got != tt.want {
			t.Errorf("hash of %s = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCanonicalHashCorpusPinned hashes a generated corpus of records with shuffled and
// escaped keys, every string escape, numbers as written and nesting, with one hasher
// (its buffers reused as in a file), and pins the digest of all the hashes.
func TestCanonicalHashCorpusPinned(t *testing.T) {
	const want = "74b8abf7b00d16088ff4daf9e71c4cd20a33e9638c258605fe1941b2ad800454"
	rng := rand.New(rand.NewPCG(12, 34))
	var h hasher
	d := sha256.New()
	dups := 0
	for range 3000 {
		got := hashOf(t, &h, genJSON(rng, 0))
		if strings.HasPrefix(got, "dup@") {
			dups++
		}
		d.Write([]byte(got + "\n"))
	}
	if dups == 0 || dups > 1500 {
		t.Fatalf("%d of 3000 records repeat a key; want some, not most", dups)
	}
	if testing.Verbose() {
		t.Logf("%d of 3000 records repeat a key", dups)
	}
	if got := hex.EncodeToString(d.Sum(nil)); got != want {
		t.Errorf("corpus digest = %q, want %q", got, want)
	}
}

// genJSON writes a random JSON value as text, with random insignificant whitespace.
func genJSON(rng *rand.Rand, depth int) string {
	ws := func() string { return [...]string{"", "", "", " ", "\n  ", "\t", "\r\n"}[rng.IntN(7)] }
	kind := rng.IntN(10)
	if depth == 0 {
		kind = 9
	} else if depth >= 4 {
		kind = rng.IntN(6)
	}
	switch kind {
	case 0:
		return [...]string{"null", "true", "false"}[rng.IntN(3)]
	case 1, 2:
		return [...]string{"0", "-1", "4.5", "4.50", "1e10", "-0.0E+2", "123456789012345678901234567890", "2.5e-3"}[rng.IntN(8)]
	case 3, 4, 5:
		return genString(rng)
	case 6, 7:
		var b strings.Builder
		b.WriteString("[" + ws())
		for i := range rng.IntN(5) {
			if i > 0 {
				b.WriteString("," + ws())
			}
			b.WriteString(genJSON(rng, depth+1))
		}
		b.WriteString(ws() + "]")
		return b.String()
	}
	var b strings.Builder
	b.WriteString("{" + ws())
	for i := range rng.IntN(9) {
		if i > 0 {
			b.WriteString("," + ws())
		}
		b.WriteString(genKey(rng) + ws() + ":" + ws() + genJSON(rng, depth+1))
	}
	b.WriteString(ws() + "}")
	return b.String()
}

// genKey picks a key, sometimes escaped, from a small set: some objects repeat one
// (some only once decoded), and keys share prefixes so the byte order matters.
func genKey(rng *rand.Rand) string {
	keys := []string{`"a"`, `"b"`, `"ab"`, `"a\u0062"`, `"B"`, `"é"`, `"\u00e9"`, `"e\u0301"`, `"z"`, `"\""`, `"\\"`,
		`"conversation_id"`, `"agent_id"`, `"messages"`, `"timestamp"`, `"user_data"`, `"k\n"`, `"\ud83d\ude00"`, `""`, `"a b"`,
	}
	switch rng.IntN(8) {
	case 0, 1:
		return keys[rng.IntN(len(keys))]
	case 2:
		return `"k\u0065y` + strconv.Itoa(rng.IntN(100)) + `"`
	}
	return `"key` + strconv.Itoa(rng.IntN(100)) + `"`
}

func genString(rng *rand.Rand) string {
	parts := []string{"plain", " ", "é", `\u00e9`, `\n`, `\"`, `\\`, `\/`, `\b\f\r\t`, `\u0000`, `\u001f`, `\u007f`,
		`\ud83d\ude00`, "😀", "日本", `\u65e5`, "<&>", "\x7f", "0", "EMP-123456"}
	var b strings.Builder
	b.WriteByte('"')
	for range rng.IntN(6) {
		b.WriteString(parts[rng.IntN(len(parts))])
	}
	b.WriteByte('"')
	return b.String()
}

// seedShaped is a record shaped like the seed guide's (and BenchmarkIngest's): members in
// struct order, not sorted, 15 messages each with a log.
func seedShaped() string {
	var b strings.Builder
	b.WriteString(`{"conversation_id":"conv-00000042","timestamp":"2025-01-15T14:30:00Z","agent_id":"agent-042","is_resolved":true,` +
		`"csat_score":4.5,"missing_info":{"reason":"customer_privacy_preference","fields":["phone_number"]},` +
		`"user_data":{"account_type":"premium","subscription_tier":"professional","preferences":{"language":"en-US","notifications":true},` +
		`"last_activity":"2025-01-14T14:30:00Z"},"messages":[`)
	for m := range 15 {
		if m > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"message_id":"msg-` + strconv.Itoa(m) + `","conversation_id":"conv-00000042","role":"customer","sender_id":"user-001",` +
			`"content":"Hello, I need help with my account billing. I see some charges I don't understand.",` +
			`"timestamp":"2025-01-15T14:30:30Z","logs":[{"action":"account_lookup","source":"web_chat","session_id":"sess-001",` +
			`"status":"success","duration_ms":123,"records_found":3,"confidence":0.95}]}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

func BenchmarkCanonicalHash(b *testing.B) {
	var p parser
	p.maxDepth = DefaultMaxDepth
	if err := p.parse([]byte(seedShaped())); err != nil {
		b.Fatal(err)
	}
	r := record{raw: p.out, tape: p.tape}
	var h hasher
	b.SetBytes(int64(len(r.raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := h.sum(&r); !ok {
			b.Fatal("duplicate key")
		}
	}
}
