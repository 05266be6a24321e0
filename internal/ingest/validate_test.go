package ingest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// seedConv returns the seed guide's example conversation as a map, changed by mut.
func seedConv(t testing.TB, mut func(m map[string]any)) string {
	t.Helper()
	m := map[string]any{
		"conversation_id": "conv-001",
		"timestamp":       "2025-01-15T14:30:00.000Z",
		"agent_id":        "agent-001",
		"is_resolved":     true,
		"csat_score":      4.5,
		"missing_info":    map[string]any{"reason": "customer_privacy_preference", "fields": []any{"phone_number"}},
		"user_data": map[string]any{
			"account_type":  "premium",
			"preferences":   map[string]any{"language": "en-US", "notifications": true},
			"last_activity": "2025-01-14T14:30:00.000Z",
		},
		"messages": []any{
			map[string]any{
				"message_id": "msg-001", "conversation_id": "conv-001", "role": "customer", "sender_id": "user-001",
				"content": "Hello", "timestamp": "2025-01-15T14:30:00.000Z",
				"logs": []any{map[string]any{"action": "user_input", "source": "web_chat"}},
			},
			map[string]any{
				"message_id": "msg-002", "conversation_id": "conv-001", "role": "agent", "sender_id": "agent-001",
				"content": "Hi", "timestamp": "2025-01-15T14:30:30.000Z",
				"logs": []any{map[string]any{"action": "account_lookup", "duration_ms": 245}},
			},
		},
	}
	if mut != nil {
		mut(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func msg(m map[string]any, i int) map[string]any { return m["messages"].([]any)[i].(map[string]any) }

// process runs a dry run of one JSONL line and returns the record errors as strings.
func processLine(t *testing.T, line string, opts Options) Result {
	t.Helper()
	opts.DryRun = true
	res, err := New(nil).Process(context.Background(), ObjectRef{Key: "a.jsonl"}, strings.NewReader(line+"\n"), opts)
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return res
}

func errorStrings(res Result) []string {
	var out []string
	for _, e := range res.Errors {
		out = append(out, e.Error())
	}
	return out
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		mut  func(m map[string]any)
		raw  string // used instead of mut when set
		opts Options
		want []string // exact errors; empty means valid
	}{
		{name: "seed example is valid"},
		{name: "unknown fields are kept", mut: func(m map[string]any) { m["extra"] = map[string]any{"x": 1}; msg(m, 0)["tone"] = "calm" }},
		{name: "optional fields may be null or absent", mut: func(m map[string]any) {
			m["is_resolved"], m["csat_score"], m["missing_info"] = nil, nil, nil
			delete(m, "user_data")
			delete(msg(m, 0), "logs")
			delete(msg(m, 0), "sender_id")
			delete(msg(m, 1), "conversation_id")
		}},
		{name: "timestamps with offsets and fractions", mut: func(m map[string]any) {
			m["timestamp"] = "2025-01-15T15:30:00.123456+01:00"
			msg(m, 0)["timestamp"] = "2025-01-15T14:30:00Z"
		}},
		{name: "all roles", mut: func(m map[string]any) {
			msg(m, 0)["role"] = "system"
			msg(m, 1)["role"] = "tool"
		}},
		{name: "csat bounds", mut: func(m map[string]any) { m["csat_score"] = 0 }},
		{name: "empty messages", mut: func(m map[string]any) { m["messages"] = []any{} }},

		{name: "missing conversation_id", mut: func(m map[string]any) { delete(m, "conversation_id") },
			want: []string{`a.jsonl:1: conversation_id: missing (want a non-empty string)`}},
		{name: "number conversation_id", mut: func(m map[string]any) { m["conversation_id"] = 12 },
			want: []string{`a.jsonl:1: conversation_id: got number 12 (want a non-empty string)`}},
		{name: "blank agent_id", mut: func(m map[string]any) { m["agent_id"] = " " },
			want: []string{`a.jsonl:1: agent_id: " " is blank (want a non-empty string)`}},
		{name: "null agent_id", mut: func(m map[string]any) { m["agent_id"] = nil },
			want: []string{`a.jsonl:1: agent_id: got null (want a non-empty string)`}},
		{name: "bad timestamp", mut: func(m map[string]any) { m["timestamp"] = "15/01/2025" },
			want: []string{`a.jsonl:1: timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`}},
		{name: "timestamp without zone", mut: func(m map[string]any) { m["timestamp"] = "2025-01-15T14:30:00" },
			want: []string{`a.jsonl:1: timestamp: "2025-01-15T14:30:00" has no time zone (want e.g. 2025-01-15T14:30:00Z or 2025-01-15T14:30:00+01:00)`}},
		{name: "timestamp past year 9999 in UTC", mut: func(m map[string]any) { m["timestamp"] = "9999-12-31T23:30:00-01:00" },
			want: []string{`a.jsonl:1: timestamp: "9999-12-31T23:30:00-01:00" is outside years 0000-9999 in UTC`}},
		{name: "numeric timestamp", mut: func(m map[string]any) { m["timestamp"] = 1736951400 },
			want: []string{`a.jsonl:1: timestamp: got number 1736951400 (want an ISO-8601 timestamp string, e.g. 2025-01-15T14:30:00Z)`}},
		{name: "missing timestamp and messages", mut: func(m map[string]any) { delete(m, "timestamp"); delete(m, "messages") },
			want: []string{
				`a.jsonl:1: timestamp: missing (want an ISO-8601 timestamp string, e.g. 2025-01-15T14:30:00Z)`,
				`a.jsonl:1: messages: missing (want an array of messages)`,
			}},
		{name: "messages not an array", mut: func(m map[string]any) { m["messages"] = map[string]any{} },
			want: []string{`a.jsonl:1: messages: got an object (want an array of messages)`}},
		{name: "message not an object", mut: func(m map[string]any) { m["messages"] = []any{"hi"} },
			want: []string{`a.jsonl:1: messages[0]: got "hi" (want a message object)`}},
		{name: "message required fields", mut: func(m map[string]any) { m["messages"] = []any{map[string]any{}} },
			want: []string{
				`a.jsonl:1: messages[0].message_id: missing (want a non-empty string)`,
				`a.jsonl:1: messages[0].role: missing (want one of customer, agent, system, tool)`,
				`a.jsonl:1: messages[0].content: missing (want a string)`,
				`a.jsonl:1: messages[0].timestamp: missing (want an ISO-8601 timestamp string, e.g. 2025-01-15T14:30:00Z)`,
			}},
		{name: "message timestamp", mut: func(m map[string]any) { msg(m, 1)["timestamp"] = "15/01/2025" },
			want: []string{`a.jsonl:1: messages[1].timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`}},
		{name: "unknown role", mut: func(m map[string]any) { msg(m, 1)["role"] = "bot" },
			want: []string{`a.jsonl:1: messages[1].role: "bot" is not an allowed role (want one of customer, agent, system, tool)`}},
		{name: "content not a string", mut: func(m map[string]any) { msg(m, 0)["content"] = []any{"a"} },
			want: []string{`a.jsonl:1: messages[0].content: got an array (want a string)`}},
		{name: "message conversation_id differs", mut: func(m map[string]any) { msg(m, 1)["conversation_id"] = "conv-002" },
			want: []string{`a.jsonl:1: messages[1].conversation_id: "conv-002" differs from the conversation's "conv-001" (want the same conversation_id, or none)`}},
		{name: "message conversation_id type", mut: func(m map[string]any) { msg(m, 1)["conversation_id"] = 1 },
			want: []string{`a.jsonl:1: messages[1].conversation_id: got number 1 (want the conversation's conversation_id)`}},
		{name: "sender_id type", mut: func(m map[string]any) { msg(m, 0)["sender_id"] = 7 },
			want: []string{`a.jsonl:1: messages[0].sender_id: got number 7 (want a string)`}},
		{name: "logs not an array", mut: func(m map[string]any) { msg(m, 0)["logs"] = "x" },
			want: []string{`a.jsonl:1: messages[0].logs: got "x" (want an array of log objects)`}},
		{name: "log not an object", mut: func(m map[string]any) { msg(m, 0)["logs"] = []any{map[string]any{}, true} },
			want: []string{`a.jsonl:1: messages[0].logs[1]: got boolean true (want a log object)`}},
		{name: "is_resolved type", mut: func(m map[string]any) { m["is_resolved"] = "yes" },
			want: []string{`a.jsonl:1: is_resolved: got "yes" (want a boolean)`}},
		{name: "csat above range", mut: func(m map[string]any) { m["csat_score"] = 7 },
			want: []string{`a.jsonl:1: csat_score: 7 is out of range (want a number from 0 to 5)`}},
		{name: "csat below range", mut: func(m map[string]any) { m["csat_score"] = -0.5 },
			want: []string{`a.jsonl:1: csat_score: -0.5 is out of range (want a number from 0 to 5)`}},
		{name: "csat type", mut: func(m map[string]any) { m["csat_score"] = "high" },
			want: []string{`a.jsonl:1: csat_score: got "high" (want a number from 0 to 5)`}},
		{name: "missing_info type", mut: func(m map[string]any) { m["missing_info"] = "phone" },
			want: []string{`a.jsonl:1: missing_info: got "phone" (want an object with "reason" and "fields")`}},
		{name: "missing_info members", mut: func(m map[string]any) { m["missing_info"] = map[string]any{"reason": 3, "fields": []any{"a", 1}} },
			want: []string{
				`a.jsonl:1: missing_info.fields[1]: got number 1 (want a string)`,
				`a.jsonl:1: missing_info.reason: got number 3 (want a string)`,
			}},
		{name: "missing_info fields type", mut: func(m map[string]any) { m["missing_info"] = map[string]any{"fields": "phone"} },
			want: []string{`a.jsonl:1: missing_info.fields: got "phone" (want an array of strings)`}},
		{name: "user_data type", mut: func(m map[string]any) { m["user_data"] = []any{} },
			want: []string{`a.jsonl:1: user_data: got an array (want an object)`}},
		{name: "user_data last_activity", mut: func(m map[string]any) { m["user_data"].(map[string]any)["last_activity"] = "yesterday" },
			want: []string{`a.jsonl:1: user_data.last_activity: "yesterday" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`}},
		{name: "agent not allowed", opts: Options{Agents: map[string]struct{}{"agent-002": {}}},
			want: []string{`a.jsonl:1: agent_id: "agent-001" is not a known agent (not in the agent allow-list)`}},
		{name: "agent allowed", opts: Options{Agents: map[string]struct{}{"agent-001": {}}}},
		{name: "record not an object", raw: `[1,2]`,
			want: []string{`a.jsonl:1: got an array (want a JSON object holding one conversation)`}},
		{name: "duplicate key", raw: `{"conversation_id":"c","agent_id":"a","timestamp":"2025-01-15T14:30:00Z","messages":[],"user_data":{"x":1,"y":2,"x":3}}`,
			want: []string{`a.jsonl:1: user_data.x: duplicate key "x" (want each key once per object)`}},
		{name: "syntax error", raw: `{"conversation_id": "c" "agent_id": "a"}`,
			want: []string{`a.jsonl:1: invalid JSON at byte 25 of the record: unexpected '"', want ',' or '}'`}},
		{name: "long value is shortened", mut: func(m map[string]any) { m["timestamp"] = strings.Repeat("x", 100) },
			want: []string{`a.jsonl:1: timestamp: "` + strings.Repeat("x", 64) + `…" (100 bytes) is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := tc.raw
			if line == "" {
				line = seedConv(t, tc.mut)
			}
			res := processLine(t, line, tc.opts)
			got := errorStrings(res)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors:\n got %q\nwant %q", got, tc.want)
			}
			if valid := len(tc.want) == 0; valid != res.Valid() {
				t.Fatalf("state %s (%s), want valid=%v", res.State, res.Message, valid)
			}
		})
	}
}
