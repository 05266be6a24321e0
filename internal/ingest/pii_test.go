package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// found runs one validator over text and returns the matched substrings.
func found(t *testing.T, cfg ValidatorConfig, text string) []string {
	t.Helper()
	vs, err := CompileValidators([]ValidatorConfig{cfg})
	if err != nil {
		t.Fatalf("CompileValidators: %v", err)
	}
	var out []string
	for _, sp := range vs.list[0].find([]byte(text), nil) {
		out = append(out, text[sp.start:sp.end])
	}
	return out
}

type detectCase struct {
	name string
	text string
	want []string // the matches, in order; nil for a near miss
}

func runDetect(t *testing.T, cfg ValidatorConfig, tests []detectCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := found(t, cfg, tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("%q: found %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestPIIEmail(t *testing.T) {
	runDetect(t, ValidatorConfig{Type: PIIEmail, Action: ActionFlag}, []detectCase{
		{"plain", "write to jane.doe@example.com please", []string{"jane.doe@example.com"}},
		{"plus tag and subdomain", "<bob+billing@mail.example.co.uk>", []string{"bob+billing@mail.example.co.uk"}},
		{"sentence end", "Contact: ops@example.org.", []string{"ops@example.org"}},
		{"two", "a@example.com, b@example.net", []string{"a@example.com", "b@example.net"}},
		{"german text", "Bitte schreiben Sie an kundendienst@beispiel.de, danke.", []string{"kundendienst@beispiel.de"}},
		{"japanese text", "メールはtaro@example.jpまで", []string{"taro@example.jp"}},
		{"near miss: mention", "thanks @support-team for the help", nil},
		{"near miss: no tld", "ssh root@localhost", nil},
		{"near miss: retina image", "use logo@2x.png here", nil},
		{"near miss: numeric tld", "user@10.0.0.1", nil},
		{"near miss: double dot", "a@example..com", nil},
		{"near miss: version pin", "pkg@1.2.3", nil},
		{"russian text", "Пишите на ivan.petrov@example.ru, спасибо", []string{"ivan.petrov@example.ru"}},
		{"arabic text", "راسلني على ali@example.ae من فضلك", []string{"ali@example.ae"}},
		{"near miss: git remote", "git@github", nil},
		{"near miss: bare at", "meet @ 5pm", nil},
	})
}

func TestPIIPhone(t *testing.T) {
	intl := ValidatorConfig{Type: PIIPhone, Action: ActionFlag}
	runDetect(t, intl, []detectCase{
		{"US international", "call me at +1 415-555-2671 today", []string{"+1 415-555-2671"}},
		{"UK international", "Ring +44 20 7946 0958.", []string{"+44 20 7946 0958"}},
		{"French spaced", "Appelez le +33 1 42 68 53 00 svp", []string{"+33 1 42 68 53 00"}},
		{"German compact", "Rufnummer: +4930901820", []string{"+4930901820"}},
		{"Japanese text", "電話は+81 3-3224-5000です", []string{"+81 3-3224-5000"}},
		{"Spanish text", "Mi número es +34 912 34 56 78, gracias", []string{"+34 912 34 56 78"}},
		{"near miss: national without regions", "call 415-555-2671", nil},
		{"near miss: invalid country code", "+999 1234 5678", nil},
		{"near miss: too short", "+1 555", nil},
		{"near miss: timestamp", "2025-01-15T14:30:00.000Z", nil},
		{"near miss: date", "on 2025-01-15 at noon", nil},
		{"near miss: math", "2+2 = 4", nil},
		{"near miss: order number", "order #+14155552671x", nil},
	})
	us := ValidatorConfig{Type: PIIPhone, Action: ActionFlag, Regions: []string{"US", "de"}}
	runDetect(t, us, []detectCase{
		{"US national dashed", "call 415-555-2671 now", []string{"415-555-2671"}},
		{"US parentheses", "call (415) 555-2671", []string{"(415) 555-2671"}},
		{"German national", "Tel. 030 901820", []string{"030 901820"}},
		{"international still found", "+1 415 555 2671", []string{"+1 415 555 2671"}},
		{"near miss: bare digits (order number)", "order 4155552671 shipped", nil},
		{"near miss: ISO date", "2025-01-15", nil},
		{"near miss: dotted version", "upgrade to 10.2.3.4567", nil},
		{"near miss: IP address", "server 192.168.100.200 is down", nil},
		{"near miss: ISBN", "ISBN 978-3-16-148410-0", nil},
		{"near miss: invoice id", "INV-415-555-2671", nil},
		{"near miss: amount", "$1,234,567.89", nil},
		{"near miss: time range", "open 09:00-17:30 daily", nil},
		{"near miss: French number without FR", "appelez le 01 42 68 53 00", nil},
	})
	fr := ValidatorConfig{Type: PIIPhone, Action: ActionFlag, Regions: []string{"FR"}}
	runDetect(t, fr, []detectCase{
		{"French national", "appelez le 01 42 68 53 00 svp", []string{"01 42 68 53 00"}},
		{"Hindi text, international", "मेरा नंबर +91 98765 43210 है", []string{"+91 98765 43210"}},
		{"Russian text, international", "Мой номер +7 495 123-45-67.", []string{"+7 495 123-45-67"}},
		{"near miss: French date", "le 15/01/2025", nil},
		{"near miss: postcode and street number", "12 rue de Rivoli, 75001 Paris", nil},
	})
}

func TestPIICard(t *testing.T) {
	runDetect(t, ValidatorConfig{Type: PIICard, Action: ActionFlag}, []detectCase{
		{"visa", "card 4111111111111111 expires", []string{"4111111111111111"}},
		{"visa spaced", "4111 1111 1111 1111", []string{"4111 1111 1111 1111"}},
		{"mastercard dashed", "5555-5555-5555-4444.", []string{"5555-5555-5555-4444"}},
		{"mastercard 2-series", "2223003122003222", []string{"2223003122003222"}},
		{"amex", "Amex 3782 822463 10005", []string{"3782 822463 10005"}},
		{"discover", "6011111111111117", []string{"6011111111111117"}},
		{"jcb in japanese", "カード番号は3530111333300000です", []string{"3530111333300000"}},
		{"unionpay", "卡号 6200000000000005", []string{"6200000000000005"}},
		{"near miss: luhn fails", "4111111111111112", nil},
		{"near miss: unknown issuer", "9111111111111111", nil},
		{"near miss: ISBN-13", "ISBN 9780306406157", nil},
		{"near miss: order number", "order 1234567890123", nil},
		{"near miss: too long", "41111111111111111111111", nil},
		{"near miss: inside an id", "txn-4111111111111111", nil},
		{"near miss: date", "2025-01-15", nil},
		{"near miss: double separator", "4111 - 1111 - 1111 - 1111", nil},
		{"near miss: wrong length for amex", "3782822463100056", nil},
	})
}

func TestPIIRegex(t *testing.T) {
	runDetect(t, ValidatorConfig{Type: PIIRegex, Action: ActionFlag, Name: "employee-id", Pattern: `\bEMP-[0-9]{6}\b`}, []detectCase{
		{"match", "ask EMP-123456 about it", []string{"EMP-123456"}},
		{"two", "EMP-000001 and EMP-999999", []string{"EMP-000001", "EMP-999999"}},
		{"near miss: short", "EMP-12345", nil},
		{"near miss: lower case", "emp-123456", nil},
	})
}

func TestCompileValidators(t *testing.T) {
	tests := []struct {
		name string
		cfgs []ValidatorConfig
		want string // "" for success; else a substring of the error
	}{
		{"none", nil, ""},
		{"all types", []ValidatorConfig{{Type: PIIEmail, Action: ActionReject}, {Type: PIIPhone, Action: ActionRedact, Regions: []string{"US"}},
			{Type: PIICard, Action: ActionFlag}, {Type: PIIRegex, Action: ActionRedact, Pattern: "x+"}}, ""},
		{"bad regexp", []ValidatorConfig{{Type: PIIRegex, Action: ActionReject, Pattern: "(a"}}, "not a valid RE2 regular expression"},
		{"empty match", []ValidatorConfig{{Type: PIIRegex, Action: ActionReject, Pattern: "a*"}}, "matches the empty string"},
		{"no pattern", []ValidatorConfig{{Type: PIIRegex, Action: ActionReject}}, "needs a pattern"},
		{"long pattern", []ValidatorConfig{{Type: PIIRegex, Action: ActionReject, Pattern: strings.Repeat("a", MaxPatternLength+1)}}, "at most 256"},
		{"short but costly pattern", []ValidatorConfig{{Type: PIIRegex, Action: ActionReject, Pattern: strings.Repeat(`\pL{1000}`, 6)}}, "instructions (at most 2000)"},
		{"everyday pattern", []ValidatorConfig{{Type: PIIRegex, Action: ActionReject, Pattern: `\b(?:ACC|acc)-[0-9]{6,10}\b`}}, ""},
		{"pattern on email", []ValidatorConfig{{Type: PIIEmail, Action: ActionReject, Pattern: "x"}}, "only for type Regex"},
		{"bad action", []ValidatorConfig{{Type: PIIEmail, Action: "Drop"}}, `action "Drop"`},
		{"bad type", []ValidatorConfig{{Type: "SSN", Action: ActionFlag}}, `type "SSN"`},
		{"duplicate default names", []ValidatorConfig{{Type: PIIEmail, Action: ActionFlag}, {Type: PIIEmail, Action: ActionReject}}, "also used by validators[0]"},
		{"bad region", []ValidatorConfig{{Type: PIIPhone, Action: ActionFlag, Regions: []string{"XX"}}}, `region "XX"`},
		{"regions on card", []ValidatorConfig{{Type: PIICard, Action: ActionFlag, Regions: []string{"US"}}}, "only for type PhoneNumber"},
		{"bad name", []ValidatorConfig{{Name: "Bad_Name", Type: PIICard, Action: ActionFlag}}, "lower-case"},
		{"too many", slices.Repeat([]ValidatorConfig{{Type: PIICard, Action: ActionFlag}}, MaxValidators+1), "at most 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileValidators(tt.cfgs)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalidValidator)):
				t.Fatalf("error %v, want one wrapping ErrInvalidValidator with %q", err, tt.want)
			}
		})
	}
}

// allValidators enables every validator with action, national numbers of a few regions
// included, so the false-positive checks below use the widest detection.
func allValidators(t testing.TB, action PIIAction) *Validators {
	t.Helper()
	vs, err := CompileValidators([]ValidatorConfig{
		{Type: PIIEmail, Action: action},
		{Type: PIIPhone, Action: action, Regions: []string{"US", "GB", "DE", "FR"}},
		{Type: PIICard, Action: action},
		{Type: PIIRegex, Name: "employee-id", Action: action, Pattern: `\bEMP-[0-9]{6}\b`},
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestPIINoFalsePositives: the seed guide's example and every sample file of the demo
// pass the validators untouched: no match, the same bytes stored.
func TestPIINoFalsePositives(t *testing.T) {
	files, err := filepath.Glob("../../config/samples/data/*/*")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("../../config/samples/data/*/*/*")
	files = append(append(files, "testdata/seed-example.json"), more...)
	checked := 0
	for _, name := range files {
		if fi, err := os.Stat(name); err != nil || fi.IsDir() {
			continue
		}
		if _, _, ok := FormatOf(name); !ok {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, action := range []PIIAction{ActionFlag, ActionRedact, ActionReject} {
			off := processFile(t, name, data, nil)
			on := processFile(t, name, data, allValidators(t, action))
			if len(on.res.PII) != 0 {
				t.Errorf("%s (%s): validators matched: %+v", name, action, on.res.PII)
			}
			if on.res.State != off.res.State || on.res.Counts != off.res.Counts || !slices.Equal(on.hashes, off.hashes) {
				t.Errorf("%s (%s): with validators %s %+v, without %s %+v", name, action, on.res.State, on.res.Counts, off.res.State, off.res.Counts)
			}
		}
		checked++
	}
	if checked < 8 {
		t.Fatalf("checked only %d sample files", checked)
	}
}

type processed struct {
	res    Result
	hashes []string
	raws   []string
}

// processFile commits data into a fresh memStore and returns the result and what was stored.
func processFile(t *testing.T, key string, data []byte, vs *Validators) processed {
	t.Helper()
	st := newMemStore()
	e := &Engine{Store: st, TempDir: t.TempDir()}
	res, err := e.Process(context.Background(), ObjectRef{Namespace: "ns", Source: "ns/src", Key: key}, bytesReader(data),
		Options{Policy: SkipRecord, Validators: vs})
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	var out processed
	out.res = res
	keys := make([]string, 0, len(st.convs))
	for k := range st.convs {
		keys = append(keys, k.ConversationID)
	}
	slices.Sort(keys)
	for _, id := range keys {
		for k, c := range st.convs {
			if k.ConversationID == id {
				out.hashes = append(out.hashes, c.ContentHash)
				out.raws = append(out.raws, string(c.Raw))
			}
		}
	}
	_ = store.FileIngested
	return out
}

func TestMissingInfo(t *testing.T) {
	withUser := func(fields []any, user map[string]any) string {
		return seedConv(t, func(m map[string]any) {
			m["missing_info"] = map[string]any{"reason": "customer_privacy_preference", "fields": fields}
			for k, v := range user {
				m["user_data"].(map[string]any)[k] = v
			}
		})
	}
	tests := []struct {
		name string
		line string
		want []string
	}{
		{"seed example: withheld and absent", seedConv(t, nil), nil},
		{"present", withUser([]any{"phone_number"}, map[string]any{"phone_number": "+1 415 555 2671"}),
			[]string{"a.jsonl:1: user_data.phone_number: listed in missing_info.fields but present (remove the value, or the field from missing_info.fields)"}},
		{"null is absent", withUser([]any{"phone_number"}, map[string]any{"phone_number": nil}), nil},
		{"blank string is absent", withUser([]any{"phone_number"}, map[string]any{"phone_number": "  "}), nil},
		{"empty object is absent", withUser([]any{"address"}, map[string]any{"address": map[string]any{}}), nil},
		{"false is a value", withUser([]any{"opt_in"}, map[string]any{"opt_in": false}),
			[]string{"a.jsonl:1: user_data.opt_in: listed in missing_info.fields but present (remove the value, or the field from missing_info.fields)"}},
		{"dotted path", withUser([]any{"contact.email"}, map[string]any{"contact": map[string]any{"email": "x"}}),
			[]string{"a.jsonl:1: user_data.contact.email: listed in missing_info.fields but present (remove the value, or the field from missing_info.fields)"}},
		{"dotted path absent", withUser([]any{"contact.email"}, map[string]any{"contact": map[string]any{"phone": "x"}}), nil},
		{"dotted path through a string", withUser([]any{"contact.email"}, map[string]any{"contact": "x"}), nil},
		{"key with a dot", withUser([]any{"a.b"}, map[string]any{"a.b": 1}),
			[]string{"a.jsonl:1: user_data.a.b: listed in missing_info.fields but present (remove the value, or the field from missing_info.fields)"}},
		{"nested object key is not top-level", withUser([]any{"language"}, nil), nil},
		{"no user_data", seedConv(t, func(m map[string]any) { delete(m, "user_data") }), nil},
		{"non-string field ignored (type error elsewhere)", withUser([]any{7.0}, nil),
			[]string{"a.jsonl:1: missing_info.fields[0]: got number 7 (want a string)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorStrings(processLine(t, tt.line, Options{}))
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors\n got %q\nwant %q", got, tt.want)
			}
			for _, e := range got {
				if strings.Contains(e, "415") {
					t.Errorf("error echoes the value: %s", e)
				}
			}
		})
	}
}

// piiRecord is the seed example with PII in a message and in user_data.
func piiRecord(t *testing.T, id, content string) string {
	return seedConv(t, func(m map[string]any) {
		m["conversation_id"] = id
		msg(m, 0)["conversation_id"] = id
		msg(m, 1)["conversation_id"] = id
		msg(m, 0)["content"] = content
		m["user_data"].(map[string]any)["notes"] = []any{"prefers email: jane@example.com"}
	})
}

func TestPIIEngine(t *testing.T) {
	vs := func(email, phone PIIAction) *Validators {
		v, err := CompileValidators([]ValidatorConfig{{Type: PIIEmail, Action: email}, {Type: PIIPhone, Action: phone}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	const phone = "call me on +44 20 7946 0958 or \"+1 415 555 2671\""
	tests := []struct {
		name       string
		vs         *Validators
		state      store.FileState
		pii        []PIICount
		errs       []string
		stored     []string // substrings of the stored Raw
		notStored  []string
		sameAsNone bool // the stored record and hash equal those without validators
	}{
		{name: "off", vs: nil, state: store.FileIngested, stored: []string{"+44 20 7946 0958", "jane@example.com"}, sameAsNone: true},
		{name: "flag", vs: vs(ActionFlag, ActionFlag), state: store.FileIngested, sameAsNone: true,
			pii:    []PIICount{{Validator: "email", Type: PIIEmail, Action: ActionFlag, Matches: 1, Records: 1}, {Validator: "phone", Type: PIIPhone, Action: ActionFlag, Matches: 2, Records: 1}},
			stored: []string{"+44 20 7946 0958", "jane@example.com"}},
		{name: "redact", vs: vs(ActionRedact, ActionRedact), state: store.FileIngested,
			pii:       []PIICount{{Validator: "email", Type: PIIEmail, Action: ActionRedact, Matches: 1, Records: 1}, {Validator: "phone", Type: PIIPhone, Action: ActionRedact, Matches: 2, Records: 1}},
			stored:    []string{`"content":"call me on [REDACTED:phone] or \"[REDACTED:phone]\""`, `"notes":["prefers email: [REDACTED:email]"]`},
			notStored: []string{"7946", "415", "jane@"}},
		{name: "reject", vs: vs(ActionFlag, ActionReject), state: store.FileFailed,
			pii:  []PIICount{{Validator: "phone", Type: PIIPhone, Action: ActionReject, Matches: 2, Records: 1}},
			errs: []string{"a.jsonl:1: messages[0].content: matched validator phone (PhoneNumber, action Reject) 2 time(s); the matched text is not shown"}},
	}
	line := piiRecord(t, "c1", phone) + "\n"
	none := processFile(t, "a.jsonl", []byte(line), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := processFile(t, "a.jsonl", []byte(line), tt.vs)
			if got.res.State != tt.state {
				t.Fatalf("state %s (%s)", got.res.State, got.res.Message)
			}
			if !slices.Equal(got.res.PII, tt.pii) {
				t.Errorf("PII %+v, want %+v", got.res.PII, tt.pii)
			}
			if e := errorStrings(got.res); !slices.Equal(e, tt.errs) {
				t.Errorf("errors %q, want %q", e, tt.errs)
			}
			for _, leak := range []string{"7946", "415 555", "jane@"} {
				if strings.Contains(got.res.Message, leak) {
					t.Errorf("message echoes PII: %s", got.res.Message)
				}
			}
			raw := strings.Join(got.raws, "\n")
			for _, s := range tt.stored {
				if !strings.Contains(raw, s) {
					t.Errorf("stored %s, want it to contain %s", raw, s)
				}
			}
			for _, s := range tt.notStored {
				if strings.Contains(raw, s) {
					t.Errorf("stored %s, holds %s", raw, s)
				}
			}
			if tt.state == store.FileIngested && (slices.Equal(got.hashes, none.hashes) != tt.sameAsNone) {
				t.Errorf("hash %v, without validators %v (want equal: %v)", got.hashes, none.hashes, tt.sameAsNone)
			}
		})
	}
}

// TestPIIRedactDedup: records that differ only in the redacted text store the same
// bytes, hash the same, and so are one conversation, unchanged on re-upload.
func TestPIIRedactDedup(t *testing.T) {
	vs, err := CompileValidators([]ValidatorConfig{{Type: PIIPhone, Action: ActionRedact}})
	if err != nil {
		t.Fatal(err)
	}
	st := newMemStore()
	e := &Engine{Store: st}
	run := func(key, line string) Result {
		res, err := e.Process(context.Background(), ObjectRef{Namespace: "ns", Source: "ns/s", Key: key}, strings.NewReader(line+"\n"), Options{Validators: vs})
		if err != nil || res.State != store.FileIngested {
			t.Fatalf("Process %s: %v %s", key, err, res.Message)
		}
		return res
	}
	first := run("a.jsonl", piiRecord(t, "c1", "ring +44 20 7946 0958"))
	second := run("b.jsonl", piiRecord(t, "c1", "ring +44 20 7946 0000"))
	if first.Counts.New != 1 || second.Counts.Unchanged != 1 || second.Counts.Updated != 0 {
		t.Fatalf("first %+v, second %+v: want the redacted copies to be the same conversation, unchanged", first.Counts, second.Counts)
	}
	stored := st.convs[memKey{Namespace: "ns", ConversationKey: ConversationKey{AgentID: "agent-001", ConversationID: "c1"}}]
	if !strings.Contains(string(stored.Raw), `"content":"ring [REDACTED:phone]"`) {
		t.Fatalf("stored %s", stored.Raw)
	}
}

func TestPIIRequiredLiteral(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{`\bEMP-[0-9]{6}\b`, "EMP-"},
		{`(?:ID|REF)-[0-9]+`, "-"},
		{`(?i)secret-[a-z]+`, ""},
		{`a|b`, ""},
		{`([A-Z]{2})-(internal)-[0-9]+`, "internal"},
		{`token`, "token"},
		{`[0-9]+`, ""},
	}
	for _, tt := range tests {
		if got := string(requiredLiteral(tt.pattern)); got != tt.want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

// TestPIIScrubsErrors: with validators on, an error that quotes a value (here a phone
// number where a timestamp belongs, an e-mail address as agent_id) does not echo what
// any validator detects, whatever its action.
func TestPIIScrubsErrors(t *testing.T) {
	vs, err := CompileValidators([]ValidatorConfig{{Type: PIIEmail, Action: ActionFlag}, {Type: PIIPhone, Action: ActionFlag}})
	if err != nil {
		t.Fatal(err)
	}
	line := seedConv(t, func(m map[string]any) {
		msg(m, 0)["timestamp"] = "+44 20 7946 0958"
	})
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"validators off: quoted as before", Options{}, `a.jsonl:1: messages[0].timestamp: "+44 20 7946 0958" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`},
		{"validators on: scrubbed", Options{Validators: vs}, `a.jsonl:1: messages[0].timestamp: "[REDACTED:phone]" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`},
		{"agent allow-list", Options{Validators: vs, Agents: map[string]struct{}{"x": {}}}, `a.jsonl:1: agent_id: "agent-001" is not a known agent (not in the agent allow-list)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorStrings(processLine(t, line, tt.opts))
			if !slices.Contains(got, tt.want) {
				t.Errorf("errors %q, want %q among them", got, tt.want)
			}
		})
	}
	// A value long enough to be shortened is scrubbed before it is cut: cut first, the
	// address would lose its domain, escape the detector and still show its local part.
	long := seedConv(t, func(m map[string]any) {
		msg(m, 0)["role"] = strings.Repeat("x", 50) + " jane.doe@example.com"
	})
	for _, e := range errorStrings(processLine(t, long, Options{Validators: vs})) {
		if strings.Contains(e, "jane.doe") {
			t.Errorf("error %q shows part of the address", e)
		}
	}
}
