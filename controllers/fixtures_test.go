package controllers_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
)

// conversation is shaped like the product guide's example (Step 2).
func conversation(agent, id, ts, content string) map[string]any {
	return map[string]any{
		"conversation_id": id,
		"timestamp":       ts,
		"agent_id":        agent,
		"is_resolved":     true,
		"csat_score":      4.5,
		"user_data":       map[string]any{"account_type": "premium", "last_activity": ts},
		"messages": []any{
			map[string]any{"message_id": "msg-001", "conversation_id": id, "role": "customer", "sender_id": "user-001",
				"content": content, "timestamp": ts, "logs": []any{map[string]any{"action": "user_input", "source": "web_chat"}}},
			map[string]any{"message_id": "msg-002", "conversation_id": id, "role": "agent", "sender_id": agent,
				"content": "Happy to help.", "timestamp": ts, "logs": []any{}},
		},
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonArray(t *testing.T, convs ...map[string]any) []byte {
	return mustJSON(t, convs)
}

func jsonLines(t *testing.T, convs ...map[string]any) []byte {
	var buf bytes.Buffer
	for _, c := range convs {
		buf.Write(mustJSON(t, c))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range sortedNames(files) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarGzOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range sortedNames(files) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func convID(prefix string, i int) string { return fmt.Sprintf("%s-%03d", prefix, i) }
