package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/ingest"
)

// piiLine is a valid record whose first message holds a phone number, an e-mail address,
// a card number and an employee ID.
const piiLine = `{"conversation_id":"c1","agent_id":"a1","timestamp":"2025-01-15T14:30:00Z","messages":[{"message_id":"m1","role":"customer",` +
	`"content":"I am EMP-123456, call +44 20 7946 0958 or mail jane@example.com; card 4111 1111 1111 1111","timestamp":"2025-01-15T14:30:00Z"}]}`

func TestValidatePII(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.jsonl": piiLine + "\n", "ok.jsonl": good + "\n"})
	p := filepath.Join(dir, "p.jsonl")
	tests := []struct {
		name string
		args []string
		code int
		want []string // lines that must appear in stdout (or stderr for usage errors), in order
	}{
		{name: "flag and redact pass", args: []string{"validate", "--quiet", "--validators", "email:flag,phone:redact", p}, code: 0, want: []string{
			"ok      " + p + ": 1 valid records; PII: email flagged in 1 record(s) (1 match(es)); phone redacted in 1 record(s) (1 match(es)) [Ingested]",
			"        pii: validator email (Email, action Flag): 1 match(es) in 1 record(s)",
			"        pii: validator phone (PhoneNumber, action Redact): 1 match(es) in 1 record(s)",
			"        " + p + ":1: messages[0].content: validator email (Email, action Flag) flagged 1 match(es)",
			"        " + p + ":1: messages[0].content: validator phone (PhoneNumber, action Redact) redacted 1 match(es)",
		}},
		{name: "reject fails the file", args: []string{"validate", "--quiet", "--validators", "card:reject", p}, code: 1, want: []string{
			"FAIL    " + p + ": 1 of 1 records invalid",
			"        " + p + ":1: messages[0].content: matched validator card (PaymentCard, action Reject) 1 time(s); the matched text is not shown",
			"        pii: validator card (PaymentCard, action Reject): 1 match(es) in 1 record(s)",
		}},
		{name: "regex form", args: []string{"validate", "--quiet", "--regex", `employee-id:reject:\bEMP-[0-9]{6}\b`, p}, code: 1, want: []string{
			"        " + p + ":1: messages[0].content: matched validator employee-id (Regex, action Reject) 1 time(s)",
		}},
		{name: "regions", args: []string{"validate", "--quiet", "--validators", "PhoneNumber:Flag:GB+US", p}, code: 0, want: []string{
			"        pii: validator phone (PhoneNumber, action Flag): 1 match(es) in 1 record(s)",
		}},
		{name: "clean file", args: []string{"validate", "--quiet", "--validators", "email:reject,phone:reject,card:reject", filepath.Join(dir, "ok.jsonl")}, code: 0, want: []string{
			"ok      " + filepath.Join(dir, "ok.jsonl") + ": 1 valid records [Ingested]",
		}},
		{name: "unknown type", args: []string{"validate", "--validators", "ssn:reject", p}, code: 2, want: []string{`type "ssn"`}},
		{name: "unknown action", args: []string{"validate", "--validators", "email:drop", p}, code: 2, want: []string{`action "drop"`}},
		{name: "malformed item", args: []string{"validate", "--validators", "email", p}, code: 2, want: []string{"want TYPE:ACTION[:REGIONS]"}},
		{name: "bad regex", args: []string{"validate", "--regex", "x:reject:(a", p}, code: 2, want: []string{"not a valid RE2 regular expression"}},
		{name: "malformed regex item", args: []string{"validate", "--regex", "x", p}, code: 2, want: []string{"want NAME:ACTION:PATTERN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			rest := out + errOut
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order)\n%s%s", w, out, errOut)
				}
				rest = rest[i+len(w):]
			}
			for _, secret := range []string{"7946", "jane@", "4111", "123456"} {
				if strings.Contains(out+errOut, secret) {
					t.Errorf("output echoes personal data %q:\n%s%s", secret, out, errOut)
				}
			}
		})
	}
}

func TestValidatePIIJSON(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.jsonl": piiLine + "\n"})
	code, out, _ := runCLI(t, "", "validate", "--output", "json", "--validators", "phone:redact", filepath.Join(dir, "p.jsonl"))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Files) != 1 {
		t.Fatalf("%v\n%s", err, out)
	}
	f := rep.Files[0]
	want := ingest.PIICount{Validator: "phone", Type: ingest.PIIPhone, Action: ingest.ActionRedact, Matches: 1, Records: 1}
	if len(f.PII) != 1 || f.PII[0] != want || len(f.PIIFindings) != 1 || f.PIIFindings[0].Path != "messages[0].content" {
		t.Fatalf("%+v", f)
	}
}
