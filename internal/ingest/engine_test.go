package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

var t0 = time.Date(2025, 1, 15, 14, 30, 0, 0, time.UTC)

// conv is a small valid record with a chosen identity, activity time and content.
func conv(agent, id string, at time.Time, content string) string {
	return fmt.Sprintf(`{"conversation_id":%q,"agent_id":%q,"timestamp":%q,"messages":[{"message_id":"m1","role":"customer","content":%q,"timestamp":%q}]}`,
		id, agent, t0.Format(time.RFC3339), content, at.Format(time.RFC3339))
}

func TestPolicies(t *testing.T) {
	good := conv("a1", "c1", t0, "hi")
	bad := `{"conversation_id":"c2"}`
	body := good + "\n" + bad + "\n"
	tests := []struct {
		name      string
		opts      Options
		state     store.FileState
		reason    string
		committed int // conversations in the one CommitFile
		commits   int
		counts    store.RecordCounts
	}{
		{name: "SkipFile is the default", opts: Options{}, state: store.FileFailed, reason: ReasonInvalidRecords, commits: 1,
			counts: store.RecordCounts{Valid: 1, Invalid: 1}},
		{name: "SkipRecord commits the valid", opts: Options{Policy: SkipRecord}, state: store.FileIngested, reason: ReasonIngested, commits: 1, committed: 1,
			counts: store.RecordCounts{Valid: 1, Invalid: 1, New: 1}},
		{name: "DryRun commits nothing", opts: Options{Policy: SkipRecord, DryRun: true}, state: store.FileIngested, reason: ReasonIngested,
			counts: store.RecordCounts{Valid: 1, Invalid: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			tc.opts.ReservationID = 7
			ref := ObjectRef{Namespace: "ns", Source: "ns/src", Key: "k.jsonl", ETag: "e1", Size: int64(len(body)), LastModified: t0}
			res, err := New(st).Process(context.Background(), ref, strings.NewReader(body), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.State != tc.state || res.Reason != tc.reason || res.Counts != tc.counts {
				t.Fatalf("got %s/%s %+v, want %s/%s %+v", res.State, res.Reason, res.Counts, tc.state, tc.reason, tc.counts)
			}
			if len(st.commits) != tc.commits {
				t.Fatalf("%d commits, want %d", len(st.commits), tc.commits)
			}
			if tc.commits == 0 {
				return
			}
			c := st.commits[0]
			if len(c.Convs) != tc.committed || c.ReservationID != 7 || c.File.State != tc.state ||
				c.File.Reason != tc.reason || c.File.Message != res.Message || c.File.ETag != "e1" || c.File.Bytes != int64(len(body)) {
				t.Fatalf("commit %+v", c)
			}
		})
	}
}

func TestErrorCap(t *testing.T) {
	body := strings.Repeat("{}\n", MaxErrorsPerFile+5)
	res, err := New(nil).Process(context.Background(), ObjectRef{Key: "k.jsonl"}, strings.NewReader(body), Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	// Each {} has four errors: the listed ones are the first, the rest counted.
	if len(res.Errors) != MaxErrorsPerFile || res.MoreErrors != 4*(MaxErrorsPerFile+5)-MaxErrorsPerFile {
		t.Fatalf("%d errors listed, %d more", len(res.Errors), res.MoreErrors)
	}
	want := fmt.Sprintf("k.jsonl: %d of %d records invalid, nothing committed (policy SkipFile): "+
		"k.jsonl:1: conversation_id: missing (want a non-empty string); k.jsonl:1: agent_id: missing (want a non-empty string); "+
		"k.jsonl:1: timestamp: missing (want an ISO-8601 timestamp string, e.g. 2025-01-15T14:30:00Z); and %d more",
		MaxErrorsPerFile+5, MaxErrorsPerFile+5, 4*(MaxErrorsPerFile+5)-3)
	if res.Message != want {
		t.Fatalf("message\n got %q\nwant %q", res.Message, want)
	}
}

func TestInFileDuplicates(t *testing.T) {
	older := conv("a", "c", t0, "old")
	newer := conv("a", "c", t0.Add(time.Minute), "new")
	other := conv("a", "d", t0, "x")
	for _, order := range [][]string{{older, newer, other, older}, {newer, other, older, older}} {
		st := newMemStore()
		body := strings.Join(order, "\n")
		res, err := New(st).Process(context.Background(), ObjectRef{Namespace: "ns", Key: "k.jsonl"}, strings.NewReader(body), Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := store.RecordCounts{Valid: 4, New: 2, Unchanged: 2}
		if res.Counts != want {
			t.Fatalf("counts %+v, want %+v", res.Counts, want)
		}
		// A dry run finds the same duplicates without a store and lists each identity once.
		dry, err := New(nil).Process(context.Background(), ObjectRef{Key: "k.jsonl"}, strings.NewReader(body), Options{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.RecordCounts{Valid: 4, Unchanged: 2}); dry.Counts != want || len(dry.Pairs) != 2 {
			t.Fatalf("dry run: counts %+v pairs %v, want %+v and 2 pairs", dry.Counts, dry.Pairs, want)
		}
		got, _, _ := st.GetConversation(context.Background(), "ns", "a", "c")
		if !strings.Contains(string(got.Raw), `"new"`) {
			t.Fatalf("kept %s, want the newer record", got.Raw)
		}
	}
}

// TestOrderIndependence ingests the same files in many orders: the store must end the same.
func TestOrderIndependence(t *testing.T) {
	type file struct {
		key  string
		mod  time.Time
		body string
	}
	files := []file{
		{"f1.jsonl", t0, conv("a", "c1", t0, "v1") + "\n" + conv("a", "c2", t0, "v1")},
		{"f2.jsonl", t0.Add(time.Hour), conv("a", "c1", t0, "v2") + "\n" + conv("b", "c2", t0, "v1")},
		{"f3.json", t0, "[" + conv("a", "c1", t0.Add(time.Second), "v3") + "," + conv("a", "c2", t0, "v1") + "]"},
		{"f4.jsonl", t0, conv("a", "c2", t0, "v2") + "\n" + conv("a", "c2", t0, "v1")},
		{"f0.jsonl", t0.Add(time.Hour), conv("a", "c2", t0, "v1")},
	}
	var want map[ConversationKey]string
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 60 {
		perm := rng.Perm(len(files))
		st := newMemStore()
		for _, i := range perm {
			f := files[i]
			if _, err := New(st).Process(context.Background(), ObjectRef{Namespace: "ns", Key: f.key, LastModified: f.mod}, strings.NewReader(f.body), Options{}); err != nil {
				t.Fatal(err)
			}
		}
		got := st.dump("ns")
		if run == 0 {
			want = got
			if len(want) != 3 || !strings.Contains(want[ConversationKey{"a", "c1"}], `"v3"`) {
				t.Fatalf("unexpected final store %v", want)
			}
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("order %v gave\n%v\nwant\n%v", perm, got, want)
		}
	}
}

// jsonlOf is n valid records with distinct identities, one per line, then tail.
func jsonlOf(n int, tail string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(conv("a", fmt.Sprintf("c%04d", i), t0, "x") + "\n")
	}
	return b.String() + tail
}

// jsonOf is a JSON array of n valid records, then tail (which closes it or not).
func jsonOf(n int, tail string) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(conv("a", fmt.Sprintf("c%04d", i), t0, "x"))
	}
	return b.String() + tail
}

// TestStreamedFailures: a file whose failure shows only after several batches were
// streamed into the store commits none of them, then records its ledger row alone with
// its reservation; a SkipRecord file of the same records commits them all.
func TestStreamedFailures(t *testing.T) {
	const n = 3*pipeBatch + 5
	tests := []struct {
		name, key, body string
		policy          InvalidRecordPolicy
		state           store.FileState
		reason          string
		counts          store.RecordCounts
	}{
		{"invalid last record under SkipFile", "a.jsonl", jsonlOf(n, `{"conversation_id":"bad"}`+"\n"), SkipFile,
			store.FileFailed, ReasonInvalidRecords, store.RecordCounts{Valid: n, Invalid: 1}},
		{"unterminated array", "a.json", jsonOf(n, ""), SkipRecord, store.FileFailed, ReasonMalformed, store.RecordCounts{}},
		{"trailing garbage", "a.json", jsonOf(n, "] x"), SkipFile, store.FileFailed, ReasonMalformed, store.RecordCounts{}},
		{"archive with a link after the records", "a.tar.gz",
			string(makeTarGz(t, entry{name: "a.jsonl", body: jsonlOf(n, "")}, entry{name: "b.jsonl", tar: '2'})),
			SkipFile, store.FileFailed, ReasonUnsafeArchive, store.RecordCounts{}},
		{"SkipRecord commits the valid", "a.jsonl", jsonlOf(n, `{"conversation_id":"bad"}`+"\n"), SkipRecord,
			store.FileIngested, ReasonIngested, store.RecordCounts{Valid: n, Invalid: 1, New: n}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			ref := ObjectRef{Namespace: "ns", Source: "ns/src", Key: tc.key, Size: int64(len(tc.body)), LastModified: t0}
			res, err := New(st).Process(context.Background(), ref, strings.NewReader(tc.body), Options{Policy: tc.policy, ReservationID: 7})
			if err != nil {
				t.Fatal(err)
			}
			if res.State != tc.state || res.Reason != tc.reason || res.Counts != tc.counts {
				t.Fatalf("got %s/%s %+v, want %s/%s %+v (%s)", res.State, res.Reason, res.Counts, tc.state, tc.reason, tc.counts, res.Message)
			}
			if len(st.commits) != 1 {
				t.Fatalf("%d commits, want 1", len(st.commits))
			}
			c := st.commits[0]
			wantConvs := 0
			if tc.state == store.FileIngested {
				wantConvs = n
			}
			if len(c.Convs) != wantConvs || len(st.convs) != wantConvs || c.ReservationID != 7 || c.File.State != tc.state ||
				c.File.Message != res.Message || c.File.Counts != tc.counts || c.File.Bytes != int64(len(tc.body)) {
				t.Fatalf("commit of %d records (%d stored), row %+v", len(c.Convs), len(st.convs), c.File)
			}
		})
	}
}

// TestStreamInterrupted: the store failing, or ctx ending, part-way through a stream
// returns an error, commits nothing and leaves no parser running.
func TestStreamInterrupted(t *testing.T) {
	body := jsonlOf(3*pipeBatch, "")
	ref := ObjectRef{Namespace: "ns", Source: "ns/src", Key: "a.jsonl", Size: int64(len(body)), LastModified: t0}

	// Failing after a batch, and failing before reading anything (the parser has more
	// batches than the channel holds, so it must be told to stop).
	for _, failAt := range []int{pipeBatch + 1, 0} {
		st := newMemStore()
		st.fail, st.failAt = errors.New("disk I/O error"), failAt
		_, err := New(st).Process(context.Background(), ref, strings.NewReader(body), Options{})
		if err == nil || !strings.Contains(err.Error(), "disk I/O error") || errors.Is(err, errStopped) {
			t.Fatalf("store failure at %d: got %v, want the store's error", failAt, err)
		}
		if len(st.commits) != 0 || len(st.convs) != 0 {
			t.Fatalf("store failure at %d: %d commits, %d conversations", failAt, len(st.commits), len(st.convs))
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := newMemStore()
	st.onRecord = func(n int) {
		if n == pipeBatch {
			cancel()
		}
	}
	if _, err := New(st).Process(ctx, ref, strings.NewReader(body), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: got %v, want context.Canceled", err)
	}
	if len(st.commits) != 0 || len(st.convs) != 0 {
		t.Fatalf("canceled: %d commits, %d conversations", len(st.commits), len(st.convs))
	}
}

func TestCanonicalHash(t *testing.T) {
	hash := func(s string) string {
		t.Helper()
		var p parser
		p.maxDepth = DefaultMaxDepth
		if err := p.parse([]byte(s)); err != nil {
			t.Fatal(err)
		}
		var h hasher
		sum, ok := h.sum(&record{raw: p.out, tape: p.tape})
		if !ok {
			t.Fatalf("duplicate key in %s", s)
		}
		return sum
	}
	same := [][2]string{
		{`{"a":1,"b":[true,null,{"y":"z","x":"w"}]}`, "{ \"b\" : [ true , null , {\"x\":\"w\",\n\"y\":\"z\"} ] ,\r\n\t\"a\" : 1 }"},
		{`{"k":"A\u00e9\n"}`, `{"k":"Aé\u000a"}`},
		{`{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
	}
	for _, p := range same {
		if hash(p[0]) != hash(p[1]) {
			t.Errorf("%s and %s should hash the same", p[0], p[1])
		}
	}
	differ := [][2]string{
		{`{"a":1}`, `{"a":1.0}`},
		{`{"a":[1,2]}`, `{"a":[2,1]}`},
		{`{"a":"1"}`, `{"a":1}`},
		{`{"a":{}}`, `{"a":[]}`},
	}
	for _, p := range differ {
		if hash(p[0]) == hash(p[1]) {
			t.Errorf("%s and %s should hash differently", p[0], p[1])
		}
	}
}

type failingReader struct{ after int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	n := min(len(p), f.after)
	for i := range n {
		p[i] = ' '
	}
	f.after -= n
	return n, nil
}

func TestInfrastructureErrors(t *testing.T) {
	ctx := context.Background()
	for _, key := range []string{"a.json", "a.jsonl", "a.zip", "a.tar.gz"} {
		st := newMemStore()
		res, err := New(st).Process(ctx, ObjectRef{Namespace: "ns", Key: key}, &failingReader{after: 10}, Options{})
		if err == nil || !strings.Contains(err.Error(), "connection reset by peer") || res.Reason != ReasonDownloadFailed {
			t.Fatalf("%s: got %v, %s; want the read error and DownloadFailed", key, err, res.Reason)
		}
		if len(st.commits) != 0 {
			t.Fatalf("%s: committed after a failed download", key)
		}
	}
	st := newMemStore()
	st.fail = errors.New("database is locked")
	if _, err := New(st).Process(ctx, ObjectRef{Namespace: "ns", Key: "a.jsonl"}, strings.NewReader(conv("a", "c", t0, "x")), Options{}); err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("store failure: got %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := New(newMemStore()).Process(cctx, ObjectRef{Namespace: "ns", Key: "a.jsonl"}, strings.NewReader(conv("a", "c", t0, "x")), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: got %v", err)
	}
	if _, err := New(nil).Process(ctx, ObjectRef{Key: "a.jsonl"}, strings.NewReader(conv("a", "c", t0, "x")), Options{}); err == nil {
		t.Fatal("a commit without a store should fail")
	}
}

func TestIgnoredReleasesReservation(t *testing.T) {
	st := newMemStore()
	res, err := New(st).Process(context.Background(), ObjectRef{Source: "s", Key: "x.parquet"}, io.MultiReader(), Options{ReservationID: 9})
	if err != nil {
		t.Fatal(err)
	}
	f, ok, _ := st.LookupFile(context.Background(), "s", "x.parquet")
	if res.State != store.FileIgnored || !ok || f.State != store.FileIgnored || len(st.released) != 1 || st.released[0] != 9 {
		t.Fatalf("result %+v ledger %+v released %v", res, f, st.released)
	}
}

func TestUnknownFieldsStoredCompacted(t *testing.T) {
	st := newMemStore()
	body := "{ \"conversation_id\": \"c\", \"agent_id\": \"a\",\n \"timestamp\": \"2025-01-15T14:30:00Z\", \"messages\": [], \"extra\": {\"k\": [1, 2]} }"
	if _, err := New(st).Process(context.Background(), ObjectRef{Namespace: "ns", Key: "a.json"}, strings.NewReader(body), Options{}); err != nil {
		t.Fatal(err)
	}
	got, ok, _ := st.GetConversation(context.Background(), "ns", "a", "c")
	want := `{"conversation_id":"c","agent_id":"a","timestamp":"2025-01-15T14:30:00Z","messages":[],"extra":{"k":[1,2]}}`
	if !ok || string(got.Raw) != want || !got.ActivityTime.Equal(t0) || got.ContentHash == "" {
		t.Fatalf("stored %+v\nraw %s", got, got.Raw)
	}
}
