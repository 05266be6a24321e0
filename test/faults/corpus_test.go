package faults

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// object is one object of the corpus, uploaded under prefix.
type object struct {
	key  string
	body []byte
}

const (
	prefix = "exports/"
	// bigKey is a file large enough that a paused download still has most of its bytes
	// on the server (loopback socket buffers hold a few MB), and that its transaction
	// spills to SQLite's WAL before COMMIT.
	bigKey = prefix + "big.jsonl"
	// bigRecords × about 2.5 kB is about 20 MB.
	bigRecords = 8000
)

var base = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func conversation(agent, id string, ts time.Time, content string) map[string]any {
	t := ts.Format(time.RFC3339)
	return map[string]any{
		"conversation_id": id,
		"timestamp":       t,
		"agent_id":        agent,
		"is_resolved":     true,
		"user_data":       map[string]any{"account_type": "premium", "last_activity": t},
		"messages": []any{
			map[string]any{"message_id": "m1", "conversation_id": id, "role": "customer", "sender_id": "u1", "content": content, "timestamp": t},
			map[string]any{"message_id": "m2", "conversation_id": id, "role": "agent", "sender_id": agent, "content": "Happy to help.", "timestamp": t},
		},
	}
}

func jsonLines(convs []map[string]any) []byte {
	var buf bytes.Buffer
	for _, c := range convs {
		b, _ := json.Marshal(c)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// corpus is every object the suite imports: JSONL batches whose conversations overlap
// (later files hold newer versions), JSON arrays, two files with identical copies, a
// ZIP and a tar.gz, files that fail validation, an unsupported file and a large file.
// Its outcome does not depend on the order in which files are processed (the store's
// "newer record wins" order is total), so any interrupted import must end where a
// fault-free one does.
func corpus() []object {
	var objs []object
	agent := func(i int) string { return fmt.Sprintf("agent-%d", i%3) }
	for f := range 12 {
		var convs []map[string]any
		for j := range 25 {
			i := (f*10 + j) % 120
			convs = append(convs, conversation(agent(i), fmt.Sprintf("c-%03d", i), base.Add(time.Duration(f)*time.Hour), fmt.Sprintf("version from batch %d", f)))
		}
		objs = append(objs, object{fmt.Sprintf("%sbatch-%02d.jsonl", prefix, f), jsonLines(convs)})
	}
	for f := range 2 {
		var convs []map[string]any
		for j := range 10 {
			convs = append(convs, conversation(agent(j), fmt.Sprintf("arr-%d-%02d", f, j), base, "from an array"))
		}
		b, _ := json.Marshal(convs)
		objs = append(objs, object{fmt.Sprintf("%sarray-%d.json", prefix, f), b})
	}
	// The same record in two objects: the one last modified (uploaded later) holds it.
	dup := jsonLines([]map[string]any{conversation("agent-0", "dup-1", base, "twice")})
	objs = append(objs, object{prefix + "dup-a.jsonl", dup}, object{prefix + "dup-b.jsonl", dup})

	entries := func(name string, n int) []byte {
		var convs []map[string]any
		for j := range n {
			convs = append(convs, conversation(agent(j), fmt.Sprintf("%s-%02d", name, j), base, "archived"))
		}
		return jsonLines(convs)
	}
	objs = append(objs, object{prefix + "export.zip", zipOf(map[string][]byte{"a.jsonl": entries("zip-a", 5), "b.jsonl": entries("zip-b", 5)})})
	objs = append(objs, object{prefix + "export.tar.gz", tarGzOf(map[string][]byte{"a.jsonl": entries("tar-a", 5), "b.jsonl": entries("tar-b", 5)})})

	bad := conversation("agent-0", "bad-1", base, "no agent")
	delete(bad, "agent_id")
	objs = append(objs,
		object{prefix + "bad-record.jsonl", jsonLines([]map[string]any{conversation("agent-0", "ok-1", base, "fine"), bad})},
		object{prefix + "bad-syntax.json", []byte(`[{"conversation_id": "x",`)},
		object{prefix + "notes.csv", []byte("a,b\n1,2\n")},
	)

	filler := strings.Repeat("All work and no play makes a long conversation. ", 48)
	var big []map[string]any
	for j := range bigRecords {
		big = append(big, conversation(agent(j), fmt.Sprintf("big-%05d", j), base.Add(time.Duration(j)*time.Second), filler))
	}
	objs = append(objs, object{bigKey, jsonLines(big)})
	return objs
}

var archiveTime = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

func zipOf(files map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: archiveTime})
		_, _ = w.Write(files[name])
	}
	_ = zw.Close()
	return buf.Bytes()
}

func tarGzOf(files map[string][]byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), ModTime: archiveTime, Typeflag: tar.TypeReg})
		_, _ = tw.Write(files[name])
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// lateObjects are uploaded after a first discovery, for the scenario killed during a
// later one. Their conversations are their own, so the corpus's outcome does not change.
func lateObjects() []object {
	var objs []object
	for f := range 3 {
		var convs []map[string]any
		for j := range 20 {
			convs = append(convs, conversation(fmt.Sprintf("agent-%d", j%3), fmt.Sprintf("late-%d-%02d", f, j), base, "uploaded later"))
		}
		objs = append(objs, object{fmt.Sprintf("%slate-%d.jsonl", prefix, f), jsonLines(convs)})
	}
	return objs
}
