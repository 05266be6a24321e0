// Package storetest is the behaviour every store.Store must have, run by each backend's
// tests against a real database.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// Dumper is implemented by stores that can list every conversation by identity
// (namespace, agent_id, conversation_id): tests compare whole stores with it.
type Dumper interface {
	DumpConversations(ctx context.Context) ([]store.Conversation, error)
}

// Run runs the suite; open returns a new, empty store closed by the caller's cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CommitRules", testCommitRules},
		{"DuplicatesInOneFile", testDuplicatesInOneFile},
		{"DuplicatesAcrossBatches", testDuplicatesAcrossBatches},
		{"StreamFailureRollsBack", testStreamFailureRollsBack},
		{"CompleteFillsLedgerRow", testCompleteFillsLedgerRow},
		{"ExactRoundTrip", testExactRoundTrip},
		{"Atomicity", testAtomicity},
		{"ConcurrentCommits", func(t *testing.T, s store.Store) { ConcurrentCommits(t, s, s) }},
		{"Ledger", testLedger},
		{"ListFiles", testListFiles},
		{"LookupFiles", testLookupFiles},
		{"DeleteSource", testDeleteSource},
		{"DeleteFiles", testDeleteFiles},
		{"RangeFiles", testRangeFiles},
		{"CountFiles", testCountFiles},
		{"ListingState", testListingState},
		{"Reserve", testReserve},
		{"ReserveConcurrent", func(t *testing.T, s store.Store) { ReserveConcurrent(t, s, s) }},
		{"Charge", testCharge},
		{"ReleaseAll", testReleaseAll},
		{"ListConversations", testListConversations},
		{"Namespaces", testNamespaces},
		{"NamespacesNeverCross", testNamespacesNeverCross},
		{"CommitNamespace", testCommitNamespace},
		{"Attempts", testAttempts},
		{"Rejected", testRejected},
		{"SourceTotals", testSourceTotals},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
	t.Run("OrderIndependence", func(t *testing.T) { testOrderIndependence(t, open) })
}

var (
	day0 = time.Date(2025, 1, 15, 14, 30, 0, 0, time.UTC)
	ctx  = context.Background()
)

// Ledger reasons as the ingest engine writes them; to a store they are opaque text, and
// this package imports nothing but the store contract.
const (
	reasonIngested          = "Ingested"
	reasonInvalidRecords    = "InvalidRecords"
	reasonQuotaExceeded     = "QuotaExceeded"
	reasonUnsupportedFormat = "UnsupportedFormat"
)

// namespace owns source, the S3Source most tests commit as.
const (
	namespace = "tenant-a"
	source    = namespace + "/bucket-1"
)

// Conv builds a conversation whose content (and so hash) depends on agent, id, activity
// time and body, as a real record's does; its origin is set by File.
func Conv(agent, id string, at time.Time, body string) store.Conversation {
	raw := fmt.Sprintf(`{"conversation_id":%q,"agent_id":%q,"timestamp":%q,"messages":[],"body":%q}`,
		id, agent, at.UTC().Format(time.RFC3339Nano), body)
	sum := sha256.Sum256([]byte(raw))
	return store.Conversation{
		AgentID: agent, ConversationID: id, ActivityTime: at,
		ContentHash: hex.EncodeToString(sum[:]), Raw: []byte(raw),
	}
}

// Commit is one file's commit and the records its stream yields, which tests read back.
type Commit struct {
	store.FileCommit
	Convs []store.Conversation
}

// File builds the commit of one ingested object of src ("namespace/name") holding convs
// at positions 0..n-1, in src's namespace. Its stream yields Convs (changes to them
// included) and can be consumed again.
func File(src, key string, lastModified time.Time, convs ...store.Conversation) Commit {
	ns, _, _ := strings.Cut(src, "/")
	out := make([]store.Conversation, len(convs))
	var size int64
	for i, c := range convs {
		c.Namespace, c.Source, c.ObjectKey, c.ObjectLastModified, c.Position = ns, src, key, lastModified, int64(i)
		out[i] = c
		size += int64(len(c.Raw))
	}
	return Commit{FileCommit: store.FileCommit{
		Namespace: ns,
		File: store.FileRecord{
			Source: src, Key: key, ETag: "etag-" + key, Size: size, LastModified: lastModified,
			State: store.FileIngested, Reason: reasonIngested,
			Counts: store.RecordCounts{Valid: int64(len(convs))}, Bytes: size,
		},
		Conversations: store.StreamOf(out...),
	}, Convs: out}
}

func commit(t testing.TB, s store.Store, c Commit) store.RecordCounts {
	t.Helper()
	got, err := s.CommitFile(ctx, c.FileCommit)
	if err != nil {
		t.Fatalf("CommitFile(%s): %v", c.File.Key, err)
	}
	return got
}

// normalize makes stored and expected conversations comparable: times in UTC without
// a monotonic reading.
func normalize(cs []store.Conversation) []store.Conversation {
	out := make([]store.Conversation, len(cs))
	for i, c := range cs {
		c.ActivityTime = c.ActivityTime.UTC().Round(0)
		c.ObjectLastModified = c.ObjectLastModified.UTC().Round(0)
		out[i] = c
	}
	return out
}

func dump(t testing.TB, s store.Store) []store.Conversation {
	t.Helper()
	d, ok := s.(Dumper)
	if !ok {
		t.Fatalf("%T does not implement storetest.Dumper", s)
	}
	cs, err := d.DumpConversations(ctx)
	if err != nil {
		t.Fatalf("DumpConversations: %v", err)
	}
	return normalize(cs)
}

func describe(c store.Conversation) string {
	return fmt.Sprintf("%s/%s/%s at=%s key=%s lm=%s pos=%d src=%s hash=%.8s raw=%s", c.Namespace, c.AgentID, c.ConversationID,
		c.ActivityTime.Format(time.RFC3339Nano), c.ObjectKey, c.ObjectLastModified.Format(time.RFC3339Nano),
		c.Position, c.Source, c.ContentHash, c.Raw)
}

func assertConversations(t testing.TB, got, want []store.Conversation) {
	t.Helper()
	got, want = normalize(got), normalize(want)
	if reflect.DeepEqual(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Errorf("got %d conversations, want %d", len(got), len(want))
	}
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = describe(got[i])
		}
		if i < len(want) {
			w = describe(want[i])
		}
		if g != w {
			t.Errorf("conversation %d:\n got  %s\n want %s", i, g, w)
		}
	}
	t.FailNow()
}

// Expected returns what a store must hold after committing files in any order: per
// identity (namespace, agent_id, conversation_id), the greatest record under
// store.Newer, sorted by identity.
func Expected(files []Commit) []store.Conversation {
	type key struct{ ns, a, c string }
	best := map[key]store.Conversation{}
	for _, f := range files {
		for _, c := range f.Convs {
			k := key{c.Namespace, c.AgentID, c.ConversationID}
			if cur, ok := best[k]; !ok || store.Newer(&c, &cur) {
				best[k] = c
			}
		}
	}
	out := make([]store.Conversation, 0, len(best))
	for _, c := range best {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		if out[i].AgentID != out[j].AgentID {
			return out[i].AgentID < out[j].AgentID
		}
		return out[i].ConversationID < out[j].ConversationID
	})
	return out
}

func counts(n, u, un int64) store.RecordCounts {
	return store.RecordCounts{New: n, Updated: u, Unchanged: un}
}

func testCommitRules(t *testing.T, s store.Store) {
	lm := day0.Add(time.Hour)
	a := Conv("agent-1", "c1", day0, "v1")
	later := Conv("agent-1", "c1", day0.Add(time.Minute), "v2")
	sameActivityOtherBody := Conv("agent-1", "c1", day0.Add(time.Minute), "v2-other")

	// Each step commits one file into the same store; the rows are cumulative.
	steps := []struct {
		name string
		file Commit
		want store.RecordCounts
		// stored is what the store must hold for agent-1/c1 afterwards.
		stored Commit
	}{
		{"new", File(source, "a.json", lm, a), counts(1, 0, 0), File(source, "a.json", lm, a)},
		{"identical from the same object is unchanged", File(source, "a.json", lm, a), counts(0, 0, 1), File(source, "a.json", lm, a)},
		{"identical from an older object is unchanged and keeps the stored origin",
			File(source, "0-old.json", lm.Add(-time.Hour), a), counts(0, 0, 1), File(source, "a.json", lm, a)},
		{"identical from a newer object is unchanged and moves the origin",
			File(source, "b.json", lm.Add(time.Hour), a), counts(0, 0, 1), File(source, "b.json", lm.Add(time.Hour), a)},
		{"later activity replaces", File(source, "c.json", lm, later), counts(0, 1, 0), File(source, "c.json", lm, later)},
		{"earlier activity does not replace even from a newer object",
			File(source, "d.json", lm.Add(48*time.Hour), a), counts(0, 0, 1), File(source, "c.json", lm, later)},
		{"same activity, newer object replaces",
			File(source, "e.json", lm.Add(2*time.Hour), Conv("agent-1", "c1", day0.Add(time.Minute), "v2-fix")),
			counts(0, 1, 0), File(source, "e.json", lm.Add(2*time.Hour), Conv("agent-1", "c1", day0.Add(time.Minute), "v2-fix"))},
		{"same activity, older object does not replace",
			File(source, "f.json", lm, sameActivityOtherBody), counts(0, 0, 1),
			File(source, "e.json", lm.Add(2*time.Hour), Conv("agent-1", "c1", day0.Add(time.Minute), "v2-fix"))},
		{"other agent, same conversation id, is new",
			File(source, "g.json", lm, Conv("agent-2", "c1", day0, "v1")), counts(1, 0, 0),
			File(source, "e.json", lm.Add(2*time.Hour), Conv("agent-1", "c1", day0.Add(time.Minute), "v2-fix"))},
	}
	for _, st := range steps {
		got := commit(t, s, st.file)
		want := st.want
		want.Valid = int64(len(st.file.Convs))
		if got != want {
			t.Errorf("%s: counts = %+v, want %+v", st.name, got, want)
		}
		c, ok, err := s.GetConversation(ctx, namespace, "agent-1", "c1")
		if err != nil || !ok {
			t.Fatalf("%s: GetConversation = %v, %v", st.name, ok, err)
		}
		assertConversations(t, []store.Conversation{c}, st.stored.Convs)
		f, ok, err := s.LookupFile(ctx, source, st.file.File.Key)
		if err != nil || !ok {
			t.Fatalf("%s: LookupFile = %v, %v", st.name, ok, err)
		}
		if f.Counts != want {
			t.Errorf("%s: ledger counts = %+v, want %+v", st.name, f.Counts, want)
		}
	}
	if _, ok, err := s.GetConversation(ctx, namespace, "agent-1", "nope"); ok || err != nil {
		t.Errorf("GetConversation(missing) = %v, %v; want false, nil", ok, err)
	}
}

func testDuplicatesInOneFile(t *testing.T, s store.Store) {
	old := Conv("agent-1", "c1", day0, "old")
	newer := Conv("agent-1", "c1", day0.Add(time.Second), "new")
	f := File(source, "dups.jsonl", day0, old, newer, old, Conv("agent-1", "c2", day0, "x"), newer)
	got := commit(t, s, f)
	// Two identities are new; the three other records of c1 are not updates.
	if want := (store.RecordCounts{Valid: 5, New: 2, Unchanged: 3}); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	// The newest copy wins; between identical copies the later position does.
	assertConversations(t, dump(t, s), []store.Conversation{f.Convs[4], f.Convs[3]})
}

// bigFile is a file of 2*batch+10 distinct conversations (batch is the largest batch a
// store is expected to use), with versions of agent-1/x spread over its batches.
func bigFile(key string, lm time.Time, x ...store.Conversation) Commit {
	const batch = 256
	var convs []store.Conversation
	for i := range 2*batch + 10 {
		convs = append(convs, Conv("agent-2", fmt.Sprintf("c%04d", i), day0, "filler"))
	}
	for i, c := range x {
		at := i * (batch + 3)
		convs = append(convs[:at], append([]store.Conversation{c}, convs[at:]...)...)
	}
	return File(source, key, lm, convs...)
}

func testDuplicatesAcrossBatches(t *testing.T, s store.Store) {
	v1 := Conv("agent-1", "x", day0, "v1")
	v2 := Conv("agent-1", "x", day0.Add(time.Second), "v2")
	f := bigFile("big.jsonl", day0, v1, v2, v1)
	// A record written by an earlier batch is the stored row a later batch compares with;
	// the identity still counts once.
	n := int64(len(f.Convs))
	if got, want := commit(t, s, f), (store.RecordCounts{Valid: n, New: n - 2, Unchanged: 2}); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	assertConversations(t, dump(t, s), Expected([]Commit{f}))
	// The same object again: every record unchanged, nothing moves.
	if got, want := commit(t, s, f), (store.RecordCounts{Valid: n, Unchanged: n}); got != want {
		t.Errorf("again: counts = %+v, want %+v", got, want)
	}
	// A newer object whose first x is older than the stored v2: Updated once, by v3.
	v3 := Conv("agent-1", "x", day0.Add(time.Minute), "v3")
	g := bigFile("big2.jsonl", day0.Add(time.Hour), v1, v3, v2)
	if got, want := commit(t, s, g), (store.RecordCounts{Valid: n, Updated: 1, Unchanged: n - 1}); got != want {
		t.Errorf("newer file: counts = %+v, want %+v", got, want)
	}
	assertConversations(t, dump(t, s), Expected([]Commit{f, g}))
}

// failAfter streams c's records and then fails, as a file that turns out invalid does.
func failAfter(c Commit, err error) Commit {
	c.Conversations = func(yield func(store.Conversation) bool) error {
		if serr := store.StreamOf(c.Convs...)(yield); serr != nil {
			return serr
		}
		return err
	}
	return c
}

func testStreamFailureRollsBack(t *testing.T, s store.Store) {
	res := store.Reservation{Quota: "ns/q", Day: "2025-01-15", Source: source, Bytes: 100, Limit: 1000}
	id, err := s.Reserve(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	// Several batches were written before the stream fails: none of them stays.
	invalid := errors.New("record 600: agent_id: missing")
	f := failAfter(bigFile("bad.jsonl", day0, Conv("agent-1", "x", day0, "v1")), invalid)
	f.ReservationID, f.Reservation = id, res
	completed := false
	f.Complete = func(*store.FileRecord) { completed = true }
	if _, err := s.CommitFile(ctx, f.FileCommit); !errors.Is(err, invalid) {
		t.Fatalf("CommitFile = %v, want the stream's error", err)
	}
	if completed {
		t.Error("Complete was called for a failed stream")
	}
	assertNothingCommitted(t, s, "failed stream", f.File.Key, res)
	// The failure is then recorded alone, charging the reservation, as the engine does.
	row := f.File
	row.State, row.Reason, row.Counts = store.FileFailed, reasonInvalidRecords, store.RecordCounts{Valid: 600, Invalid: 1}
	if got := commit(t, s, Commit{FileCommit: store.FileCommit{File: row, ReservationID: id, Reservation: res}}); got != row.Counts {
		t.Errorf("ledger-only commit counts = %+v, want %+v", got, row.Counts)
	}
	got, ok, err := s.LookupFile(ctx, source, "bad.jsonl")
	if err != nil || !ok || got.State != store.FileFailed || got.Counts != row.Counts {
		t.Errorf("ledger row = %+v, %v, %v; want failed with %+v", got, ok, err, row.Counts)
	}
	assertUsage(t, s, res.Quota, res.Day, 100, map[string]int64{source: 100})
	if d := dump(t, s); len(d) != 0 {
		t.Errorf("%d conversations stored", len(d))
	}

}

func testCompleteFillsLedgerRow(t *testing.T, s store.Store) {
	f := File(source, "late.json", day0, Conv("agent-1", "c1", day0, "x"), Conv("agent-1", "c1", day0, "x"))
	f.File.State, f.File.Reason, f.File.Counts = "", "", store.RecordCounts{}
	f.Complete = func(r *store.FileRecord) {
		r.State, r.Reason, r.Message = store.FileIngested, reasonIngested, "late.json: 2 valid records"
		r.Counts.Valid, r.Counts.Invalid, r.Bytes = 2, 1, 321
	}
	want := store.RecordCounts{Valid: 2, Invalid: 1, New: 1, Unchanged: 1}
	if got := commit(t, s, f); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	got, ok, err := s.LookupFile(ctx, source, "late.json")
	if err != nil || !ok || got.State != store.FileIngested || got.Message != "late.json: 2 valid records" || got.Bytes != 321 || got.Counts != want {
		t.Errorf("ledger row = %+v, %v, %v", got, ok, err)
	}
}

func testExactRoundTrip(t *testing.T, s store.Store) {
	// Nanoseconds, a non-UTC zone, unicode and JSON escapes must all come back exactly:
	// the stored row takes part in later comparisons.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2025, 1, 15, 20, 0, 0, 123456789, zone)
	c := Conv("agent-ü", "conv/with spaces\t\"quotes\"", at, "héllo \u2028 \\n")
	c.Raw = []byte(`{"z":1,"a":[1,2,{"b":null}],"z":2,"s":"\u00e9\n"}`) // key order and duplicates kept
	f := File("ns/src", "dir/x.json", time.Date(2025, 1, 16, 1, 2, 3, 999999999, zone), c)
	commit(t, s, f)
	got, ok, err := s.GetConversation(ctx, "ns", c.AgentID, c.ConversationID)
	if err != nil || !ok {
		t.Fatalf("GetConversation = %v, %v", ok, err)
	}
	assertConversations(t, []store.Conversation{got}, f.Convs)

	// One nanosecond later activity still replaces.
	c2 := Conv(c.AgentID, c.ConversationID, at.Add(time.Nanosecond), "x")
	if n := commit(t, s, File("ns/src", "dir/y.json", day0, c2)); n.Updated != 1 {
		t.Errorf("a record 1ns later: counts %+v, want 1 updated", n)
	}
	// One nanosecond earlier does not.
	c3 := Conv(c.AgentID, c.ConversationID, at, "y")
	if n := commit(t, s, File("ns/src", "dir/z.json", day0.Add(time.Hour), c3)); n.Unchanged != 1 {
		t.Errorf("a record 1ns earlier: counts %+v, want 1 unchanged", n)
	}
}

func testAtomicity(t *testing.T, s store.Store) {
	limit := int64(1 << 20)
	res := store.Reservation{Quota: "ns/q", Day: "2025-01-15", Source: source, Bytes: 100, Limit: limit}
	id, err := s.Reserve(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	good := []store.Conversation{Conv("agent-1", "c1", day0, "a"), Conv("agent-1", "c2", day0, "b")}
	// Raw is not a case: a Conversation's Raw is valid, compacted JSON by contract (the
	// engine's parser produced it; its fuzz tests check every stored record), and the
	// SQLite store no longer parses it again (migration 0006).
	bad := map[string]Commit{
		// A record violating a constraint after others were written in the transaction.
		"empty agent id": File(source, "bad1.json", day0, append(good, Conv("", "c3", day0, "c"))...),
	}
	names := make([]string, 0, len(bad))
	for n := range bad {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := bad[name]
		f.ReservationID, f.Reservation = id, res
		if _, err := s.CommitFile(ctx, f.FileCommit); err == nil {
			t.Fatalf("%s: CommitFile succeeded, want an error", name)
		} else if !strings.Contains(err.Error(), "commit file") {
			t.Errorf("%s: error %q does not name the operation", name, err)
		}
		assertNothingCommitted(t, s, name, f.File.Key, res)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	f := File(source, "canceled.json", day0, good...)
	f.ReservationID, f.Reservation = id, res
	if _, err := s.CommitFile(canceled, f.FileCommit); !errors.Is(err, context.Canceled) {
		t.Fatalf("CommitFile(canceled) = %v, want context.Canceled", err)
	}
	assertNothingCommitted(t, s, "canceled context", f.File.Key, res)

	// The reservation survived every failure: a good commit charges it exactly once.
	f = File(source, "good.json", day0, good...)
	f.ReservationID, f.Reservation = id, res
	commit(t, s, f)
	assertUsage(t, s, res.Quota, res.Day, 100, map[string]int64{source: 100})
	// It is gone now, so a second reservation of the whole limit fits.
	if _, err := s.Reserve(ctx, store.Reservation{Quota: res.Quota, Day: res.Day, Source: source, Bytes: limit - 100, Limit: limit}); err != nil {
		t.Errorf("Reserve after charge: %v", err)
	}
}

func assertNothingCommitted(t *testing.T, s store.Store, name, key string, res store.Reservation) {
	t.Helper()
	if d := dump(t, s); len(d) != 0 {
		t.Errorf("%s: %d conversations stored after a failed commit", name, len(d))
	}
	if _, ok, err := s.LookupFile(ctx, source, key); ok || err != nil {
		t.Errorf("%s: ledger row present (%v, %v) after a failed commit", name, ok, err)
	}
	assertUsage(t, s, res.Quota, res.Day, 0, map[string]int64{})
}

func assertUsage(t testing.TB, s store.Store, quota, day string, total int64, per map[string]int64) {
	t.Helper()
	gotTotal, gotPer, err := s.Usage(ctx, quota, day)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if gotTotal != total || !reflect.DeepEqual(gotPer, per) {
		t.Errorf("Usage(%s, %s) = %d %v, want %d %v", quota, day, gotTotal, gotPer, total, per)
	}
	// SourceUsage agrees with Usage for every source, and a source without usage has 0.
	for _, src := range append(slices.Sorted(maps.Keys(per)), "ns/no-usage") {
		gotTotal, gotOwn, err := s.SourceUsage(ctx, quota, day, src)
		if err != nil {
			t.Fatalf("SourceUsage: %v", err)
		}
		if gotTotal != total || gotOwn != per[src] {
			t.Errorf("SourceUsage(%s, %s, %s) = %d, %d; want %d, %d", quota, day, src, gotTotal, gotOwn, total, per[src])
		}
	}
}

// orderFiles is a set of overlapping files: few identities, few distinct times and
// last-modified values, so every tie-break of store.Newer is exercised, and identical
// content appears in several objects.
func orderFiles() []Commit { return orderFilesOf(source) }

// orderFilesOf is orderFiles with file f committed by sources[f%len(sources)].
func orderFilesOf(sources ...string) []Commit {
	rng := rand.New(rand.NewSource(42))
	var files []Commit
	for f := 0; f < 8; f++ {
		var convs []store.Conversation
		for i := 0; i < 12; i++ {
			agent := fmt.Sprintf("agent-%d", rng.Intn(2))
			id := fmt.Sprintf("c%02d", rng.Intn(10))
			at := day0.Add(time.Duration(rng.Intn(3)) * time.Minute)
			convs = append(convs, Conv(agent, id, at, fmt.Sprintf("body-%d", rng.Intn(2))))
		}
		lm := day0.Add(time.Duration(rng.Intn(3)) * time.Hour)
		files = append(files, File(sources[f%len(sources)], fmt.Sprintf("k/%d.json", rng.Intn(5)*10+f), lm, convs...))
	}
	return files
}

func testOrderIndependence(t *testing.T, open func(t *testing.T) store.Store) {
	files := orderFiles()
	want := Expected(files)
	for seed := int64(1); seed <= 10; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			s := open(t)
			order := rand.New(rand.NewSource(seed)).Perm(len(files))
			for _, i := range order {
				commit(t, s, files[i])
			}
			assertConversations(t, dump(t, s), want)
		})
	}
}

// ConcurrentCommits commits overlapping files from one goroutine each, alternating
// between stores a and b, and checks the result is the store.Newer-maximum: first all in
// one namespace, then spread over three, whose commits may overlap and must each still
// converge within their namespace.
func ConcurrentCommits(t *testing.T, a, b store.Store) {
	first := orderFiles()
	concurrentCommits(t, a, b, first)
	assertConversations(t, dump(t, a), Expected(first))
	spread := orderFilesOf("tenant-x/s", "tenant-y/s", "tenant-z/s")
	concurrentCommits(t, a, b, spread)
	assertConversations(t, dump(t, a), Expected(append(first, spread...)))
}

func concurrentCommits(t *testing.T, a, b store.Store, files []Commit) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(files))
	for i, f := range files {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.CommitFile(ctx, f.FileCommit); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent CommitFile: %v", err)
	}
}

// testLookupFiles: one call answers a listed page, across the chunks a backend may split
// it into, and only for the asked source.
func testLookupFiles(t *testing.T, s store.Store) {
	const n = 1234
	keys := make([]string, 0, n+2)
	for i := range n {
		key := fmt.Sprintf("page/%05d.json", i)
		keys = append(keys, key)
		if i%3 == 0 {
			continue // every third key has no row
		}
		if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: key, ETag: fmt.Sprint(i), Size: int64(i), State: store.FileIngested}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordFile(ctx, store.FileRecord{Source: "other/src", Key: "page/00000.json", ETag: "x", State: store.FileFailed}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LookupFiles(ctx, source, keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := n - (n+2)/3; len(got) != want {
		t.Fatalf("LookupFiles found %d rows, want %d", len(got), want)
	}
	for i, key := range keys {
		f, ok := got[key]
		if ok != (i%3 != 0) {
			t.Fatalf("%s: found=%v", key, ok)
		}
		if ok && (f.ETag != fmt.Sprint(i) || f.Size != int64(i) || f.Source != source) {
			t.Fatalf("%s: row %+v", key, f)
		}
	}
	if empty, err := s.LookupFiles(ctx, source, nil); err != nil || len(empty) != 0 {
		t.Fatalf("LookupFiles(nil) = %v, %v", empty, err)
	}
}

func testLedger(t *testing.T, s store.Store) {
	if _, ok, err := s.LookupFile(ctx, source, "missing.json"); ok || err != nil {
		t.Fatalf("LookupFile(missing) = %v, %v; want false, nil", ok, err)
	}
	first := time.Date(2025, 1, 15, 8, 0, 0, 0, time.UTC)
	rec := store.FileRecord{
		Source: source, Key: "big.zip", ETag: `"e1"`, Size: 42, LastModified: first.Add(-time.Hour),
		State: store.FileDeferred, Reason: reasonQuotaExceeded, Message: "quota ns/q full for 2025-01-15",
		FirstSeen: first, UpdatedAt: first,
	}
	if err := s.RecordFile(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.LookupFile(ctx, source, "big.zip")
	if err != nil || !ok {
		t.Fatalf("LookupFile = %v, %v", ok, err)
	}
	want := rec
	want.Attempts = 1
	assertFile(t, got, want)

	// A later commit of the same object: attempts counted, first_seen kept.
	f := File(source, "big.zip", first.Add(time.Hour), Conv("agent-1", "c1", day0, "x"))
	f.File.ETag, f.File.FirstSeen, f.File.UpdatedAt = `"e2"`, first.Add(2*time.Hour), first.Add(2*time.Hour)
	f.File.Counts.Invalid = 3
	commit(t, s, f)
	got, _, err = s.LookupFile(ctx, source, "big.zip")
	if err != nil {
		t.Fatal(err)
	}
	want = f.File
	want.Counts = store.RecordCounts{Valid: 1, Invalid: 3, New: 1}
	want.Attempts = 2
	want.FirstSeen = first
	assertFile(t, got, want)

	// A zero FirstSeen/UpdatedAt means now.
	before := time.Now().Add(-time.Second)
	if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: "now.json", State: store.FileIgnored,
		Reason: reasonUnsupportedFormat, Message: `unsupported extension ".csv"`}); err != nil {
		t.Fatal(err)
	}
	got, _, err = s.LookupFile(ctx, source, "now.json")
	if err != nil {
		t.Fatal(err)
	}
	if got.FirstSeen.Before(before) || got.UpdatedAt.Before(before) {
		t.Errorf("zero times stored as %v / %v, want about now", got.FirstSeen, got.UpdatedAt)
	}

	// A file without conversations still gets its ledger row.
	if got := commit(t, s, File(source, "empty.jsonl", day0)); got != (store.RecordCounts{}) {
		t.Errorf("empty commit counts = %+v, want zero", got)
	}
	if _, ok, err := s.LookupFile(ctx, source, "empty.jsonl"); !ok || err != nil {
		t.Errorf("LookupFile(empty.jsonl) = %v, %v; want the row", ok, err)
	}

	if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: "x", State: "bogus"}); err == nil {
		t.Errorf("RecordFile with state %q succeeded, want an error", "bogus")
	}
}

func assertFile(t testing.TB, got, want store.FileRecord) {
	t.Helper()
	for _, p := range []*time.Time{&got.LastModified, &got.FirstSeen, &got.UpdatedAt, &want.LastModified, &want.FirstSeen, &want.UpdatedAt} {
		*p = p.UTC().Round(0)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ledger row\n got  %+v\n want %+v", got, want)
	}
}

func testListFiles(t *testing.T, s store.Store) {
	states := []store.FileState{store.FileIngested, store.FileFailed, store.FileIngested, store.FileDeferred, store.FileIgnored, store.FileIngested}
	for i, st := range states {
		rec := store.FileRecord{Source: source, Key: fmt.Sprintf("f%d", i), State: st, UpdatedAt: day0.Add(time.Duration(i) * time.Minute), FirstSeen: day0}
		if err := s.RecordFile(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordFile(ctx, store.FileRecord{Source: "other/src", Key: "f9", State: store.FileIngested, UpdatedAt: day0, FirstSeen: day0}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		state store.FileState
		limit int
		want  []string
	}{
		{store.FileIngested, 0, []string{"f5", "f2", "f0"}},
		{store.FileIngested, 2, []string{"f5", "f2"}},
		{store.FileFailed, 0, []string{"f1"}},
		{store.FileDeferred, 10, []string{"f3"}},
		{store.FileIgnored, 0, []string{"f4"}},
		{"", 0, []string{"f5", "f4", "f3", "f2", "f1", "f0"}},
		{"", 4, []string{"f5", "f4", "f3", "f2"}},
	}
	for _, tt := range tests {
		got, err := s.ListFiles(ctx, source, tt.state, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{}
		for _, f := range got {
			if f.Source != source {
				t.Errorf("ListFiles(%s) returned a row of %s", source, f.Source)
			}
			keys = append(keys, f.Key)
		}
		if !reflect.DeepEqual(keys, tt.want) {
			t.Errorf("ListFiles(%q, limit %d) = %v, want %v", tt.state, tt.limit, keys, tt.want)
		}
	}
}

func testDeleteSource(t *testing.T, s store.Store) {
	f := File(source, "a.json", day0, Conv("agent-1", "c1", day0, "x"))
	other := File("other/src", "a.json", day0, Conv("agent-1", "c2", day0, "y"))
	res := store.Reservation{Quota: "ns/q", Day: "2025-01-15", Source: source, Bytes: 10, Limit: 40}
	id, err := s.Reserve(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	f.ReservationID, f.Reservation = id, res
	commit(t, s, f)
	commit(t, s, other)
	if _, err := s.Reserve(ctx, res); err != nil { // outstanding, dropped with the source
		t.Fatal(err)
	}
	otherRes := res
	otherRes.Source = "other/src"
	if _, err := s.Reserve(ctx, otherRes); err != nil { // outstanding, kept
		t.Fatal(err)
	}

	if err := s.DeleteSource(ctx, source); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LookupFile(ctx, source, "a.json"); ok {
		t.Error("ledger row of the deleted source remains")
	}
	if _, ok, _ := s.LookupFile(ctx, "other/src", "a.json"); !ok {
		t.Error("ledger row of another source was deleted")
	}
	assertConversations(t, dump(t, s), Expected([]Commit{f, other}))
	// Charged usage stays; of the reservations only other/src's 10 bytes are still held.
	assertUsage(t, s, res.Quota, res.Day, 10, map[string]int64{source: 10})
	res.Bytes = 20
	if _, err := s.Reserve(ctx, res); err != nil {
		t.Errorf("Reserve 20 of 40 with 10 used and 10 held: %v", err)
	}
	res.Bytes = 1
	if _, err := s.Reserve(ctx, res); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Errorf("Reserve 1 of 40 with 10 used and 30 held = %v, want ErrQuotaExceeded", err)
	}
}

func testDeleteFiles(t *testing.T, s store.Store) {
	cutoff := day0.Add(time.Hour)
	rows := []struct {
		key     string
		updated time.Time
	}{
		{"kept-old", day0},                        // not asked for: stays
		{"gone-old", day0},                        // asked, old: deleted
		{"gone-recent", cutoff.Add(time.Minute)},  // asked but written after the listing began: stays
		{"gone-at-cutoff", cutoff},                // not before olderThan: stays
		{"gone-old-2", day0.Add(-24 * time.Hour)}, // deleted
	}
	for _, r := range rows {
		if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: r.key, State: store.FileIngested, UpdatedAt: r.updated, FirstSeen: day0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordFile(ctx, store.FileRecord{Source: "other/src", Key: "gone-old", State: store.FileIngested, UpdatedAt: day0, FirstSeen: day0}); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteFiles(ctx, source, []string{"gone-old", "gone-recent", "gone-at-cutoff", "gone-old-2", "never-there"}, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("DeleteFiles = %d, want 2", n)
	}
	got, err := s.ListFiles(ctx, source, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range got {
		keys = append(keys, f.Key)
	}
	sort.Strings(keys)
	if want := []string{"gone-at-cutoff", "gone-recent", "kept-old"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("after delete: %v, want %v", keys, want)
	}
	if _, ok, _ := s.LookupFile(ctx, "other/src", "gone-old"); !ok {
		t.Error("DeleteFiles removed another source's row")
	}
	if n, err := s.DeleteFiles(ctx, source, nil, cutoff); n != 0 || err != nil {
		t.Errorf("DeleteFiles(nil) = %d, %v", n, err)
	}
	// More keys than one statement of a backend holds.
	many := make([]string, 1500)
	for i := range many {
		many[i] = fmt.Sprintf("many/%05d", i)
		if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: many[i], State: store.FileIngested, UpdatedAt: day0, FirstSeen: day0}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DeleteFiles(ctx, source, many, cutoff); n != len(many) || err != nil {
		t.Errorf("DeleteFiles(%d keys) = %d, %v", len(many), n, err)
	}
}

// testRangeFiles: the ledger reads by key range in S3's listing order, UTF-8 byte order,
// whatever the database's collation: a linguistic order (en_US) would put "a-b" after
// "a/c", or "Z" after "a", and a discovery would prune rows it never compared.
func testRangeFiles(t *testing.T, s store.Store) {
	keys := []string{"a/c", "a-b", "a.b", "Z", "a", "ab", "a/b/c", "é", "z", "~", "a b", "A", "日本/1", "e\u0301", "0", "a/c/"}
	for _, k := range keys {
		if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: k, ETag: "e-" + k, State: store.FileIngested}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordFile(ctx, store.FileRecord{Source: "other/src", Key: "b", State: store.FileIngested}); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(keys)
	sort.Strings(want) // Go compares strings bytewise, as S3 lists keys
	rangeKeys := func(after, through string, limit int) []string {
		t.Helper()
		rows, err := s.RangeFiles(ctx, source, after, through, limit)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, f := range rows {
			if f.Source != source || f.ETag != "e-"+f.Key {
				t.Fatalf("row %+v", f)
			}
			out = append(out, f.Key)
		}
		return out
	}
	if got := rangeKeys("", "", 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("whole range: %q, want %q", got, want)
	}
	for lo := range want {
		for hi := lo; hi < len(want); hi++ {
			if got := rangeKeys(want[lo], want[hi], 0); !reflect.DeepEqual(got, want[lo+1:hi+1]) {
				t.Fatalf("(%q, %q]: %q, want %q", want[lo], want[hi], got, want[lo+1:hi+1])
			}
		}
		if got := rangeKeys(want[lo], "", 2); !reflect.DeepEqual(got, want[lo+1:min(lo+3, len(want))]) {
			t.Fatalf("(%q, end] limit 2: %q, want %q", want[lo], got, want[lo+1:min(lo+3, len(want))])
		}
	}
	// A bound that is not a stored key: only keys after "zz" in byte order ("~", "é" and
	// "日本/1").
	var after []string
	for _, k := range want {
		if k > "zz" {
			after = append(after, k)
		}
	}
	if got := rangeKeys("zz", "", 0); !reflect.DeepEqual(got, after) || len(after) != 3 {
		t.Fatalf("after zz: %q, want %q", got, after)
	}
}

func testCountFiles(t *testing.T, s store.Store) {
	if got, err := s.CountFiles(ctx, source); err != nil || len(got) != 0 {
		t.Fatalf("CountFiles of an empty ledger = %v, %v", got, err)
	}
	states := []store.FileState{store.FileIngested, store.FileIngested, store.FileFailed, store.FileDeferred, store.FileIgnored, store.FileIngested}
	for i, st := range states {
		if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: fmt.Sprintf("k%d", i), State: st}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordFile(ctx, store.FileRecord{Source: "other/src", Key: "k0", State: store.FileFailed}); err != nil {
		t.Fatal(err)
	}
	got, err := s.CountFiles(ctx, source)
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.FileState]int64{store.FileIngested: 3, store.FileFailed: 1, store.FileDeferred: 1, store.FileIgnored: 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CountFiles = %v, want %v", got, want)
	}
}

// testListingState: the state round-trips exactly (mark times to the nanosecond, keys
// byte for byte), is replaced whole, is per source, and goes with DeleteSource.
func testListingState(t *testing.T, s store.Store) {
	if _, found, err := s.ListingState(ctx, source); found || err != nil {
		t.Fatalf("ListingState before any save: found=%v, %v", found, err)
	}
	st := store.ListingState{
		Scope:    "bucket/conversations/ include=**/*.json",
		LastFull: day0,
		Marks: []store.ListingMark{
			{At: day0, Key: "conversations/2025/01/15/a.json"},
			{At: day0.Add(time.Hour + 123*time.Nanosecond), Key: "conversations/2025/01/15/日本.json"},
		},
	}
	if err := s.SaveListingState(ctx, source, st); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveListingState(ctx, "other/src", store.ListingState{Scope: "other", LastFull: day0}); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.ListingState(ctx, source)
	if err != nil || !found {
		t.Fatalf("ListingState: found=%v, %v", found, err)
	}
	if got.Scope != st.Scope || !got.LastFull.Equal(st.LastFull) || len(got.Marks) != 2 {
		t.Fatalf("ListingState = %+v, want %+v", got, st)
	}
	for i := range st.Marks {
		if !got.Marks[i].At.Equal(st.Marks[i].At) || got.Marks[i].Key != st.Marks[i].Key {
			t.Fatalf("mark %d = %+v, want %+v", i, got.Marks[i], st.Marks[i])
		}
	}
	// Replaced whole: no marks left over.
	st2 := store.ListingState{Scope: "s2", LastFull: day0.Add(24 * time.Hour)}
	if err := s.SaveListingState(ctx, source, st2); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.ListingState(ctx, source); err != nil || got.Scope != "s2" || !got.LastFull.Equal(st2.LastFull) || len(got.Marks) != 0 {
		t.Fatalf("after replace: %+v, %v", got, err)
	}
	if err := s.DeleteSource(ctx, source); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.ListingState(ctx, source); found || err != nil {
		t.Fatalf("ListingState after DeleteSource: found=%v, %v", found, err)
	}
	if _, found, err := s.ListingState(ctx, "other/src"); !found || err != nil {
		t.Fatalf("DeleteSource removed another source's listing state: found=%v, %v", found, err)
	}
}

func testReserve(t *testing.T, s store.Store) {
	r := store.Reservation{Quota: "ns/q", Day: "2025-01-15", Source: source, Bytes: 40, Limit: 100}
	id1, err := s.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if id1 == 0 || id2 == 0 || id1 == id2 {
		t.Fatalf("reservation ids %d, %d: want distinct and non-zero", id1, id2)
	}
	_, err = s.Reserve(ctx, r)
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("third Reserve of 40/100 = %v, want ErrQuotaExceeded", err)
	}
	if !strings.Contains(err.Error(), "ns/q") {
		t.Errorf("quota error %q does not name the quota", err)
	}
	// Exactly the limit fits.
	r.Bytes = 20
	if _, err := s.Reserve(ctx, r); err != nil {
		t.Errorf("Reserve up to exactly the limit: %v", err)
	}
	// Another day and another quota are independent.
	if _, err := s.Reserve(ctx, store.Reservation{Quota: "ns/q", Day: "2025-01-16", Bytes: 100, Limit: 100}); err != nil {
		t.Errorf("Reserve on another day: %v", err)
	}
	if _, err := s.Reserve(ctx, store.Reservation{Quota: "ns/q2", Day: "2025-01-15", Bytes: 100, Limit: 100}); err != nil {
		t.Errorf("Reserve on another quota: %v", err)
	}
	// Release frees the bytes without charging them; releasing twice is harmless.
	if err := s.Release(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, id1); err != nil {
		t.Errorf("second Release: %v", err)
	}
	r.Bytes = 40
	if _, err := s.Reserve(ctx, r); err != nil {
		t.Errorf("Reserve after Release: %v", err)
	}
	assertUsage(t, s, "ns/q", "2025-01-15", 0, map[string]int64{})
	if _, err := s.Reserve(ctx, store.Reservation{Quota: "ns/q", Day: "x", Bytes: -1, Limit: 100}); err == nil {
		t.Error("Reserve of negative bytes succeeded")
	}
}

// ReserveConcurrent reserves from 32 goroutines, alternating between stores a and b (two
// pools on one database, or the same store twice): exactly floor(limit/size) succeed.
func ReserveConcurrent(t *testing.T, a, b store.Store) {
	const workers, size, limit = 32, 64, 1000
	r := store.Reservation{Quota: "ns/q", Day: "2025-01-15", Source: source, Bytes: size, Limit: limit}
	var granted, exceeded int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Reserve(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				granted++
			case errors.Is(err, store.ErrQuotaExceeded):
				exceeded++
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Reserve: %v", err)
	}
	if granted*size > limit || granted != limit/size || granted+exceeded != workers {
		t.Errorf("granted %d × %d bytes (exceeded %d) against limit %d; want exactly %d granted", granted, size, exceeded, limit, limit/size)
	}
}

func testCharge(t *testing.T, s store.Store) {
	r := store.Reservation{Quota: "ns/q", Day: "2025-01-15", Source: source, Bytes: 30, Limit: 100}
	id, err := s.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ChargeReservation(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.ChargeReservation(ctx, id); err == nil {
		t.Error("charging a reservation twice succeeded")
	}
	// A commit whose reservation is gone (a restart's ReleaseAll) charges its own copy.
	other := r
	other.Source, other.Bytes = "other/src", 25
	id2, err := s.Reserve(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	f := File("other/src", "a.json", day0, Conv("agent-1", "c1", day0, "x"))
	f.ReservationID, f.Reservation = id2, other
	commit(t, s, f)
	// Two commits of one source add up.
	id3, err := s.Reserve(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	f = File("other/src", "b.json", day0, Conv("agent-1", "c2", day0, "x"))
	f.ReservationID, f.Reservation = id3, other
	commit(t, s, f)
	assertUsage(t, s, "ns/q", "2025-01-15", 80, map[string]int64{source: 30, "other/src": 50})
	assertUsage(t, s, "ns/q", "2025-01-16", 0, map[string]int64{})
	// Used bytes count against the limit: 80 used + 30 > 100.
	if _, err := s.Reserve(ctx, r); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Errorf("Reserve beyond used bytes = %v, want ErrQuotaExceeded", err)
	}
}

func testReleaseAll(t *testing.T, s store.Store) {
	r := store.Reservation{Quota: "ns/q", Day: "2025-01-15", Source: source, Bytes: 50, Limit: 100}
	for i := 0; i < 2; i++ {
		if _, err := s.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Reserve(ctx, r); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("Reserve over the limit = %v, want ErrQuotaExceeded", err)
	}
	if err := s.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Reserve(ctx, r); err != nil {
			t.Errorf("Reserve after ReleaseAll: %v", err)
		}
	}
	assertUsage(t, s, "ns/q", "2025-01-15", 0, map[string]int64{})
}

func testListConversations(t *testing.T, s store.Store) {
	var convs []store.Conversation
	for _, id := range []string{"c10", "c02", "C1", "c1", "b"} {
		convs = append(convs, Conv("agent-1", id, day0, "x"))
	}
	convs = append(convs, Conv("agent-2", "a", day0, "x"))
	f := File(source, "a.json", day0, convs...)
	commit(t, s, f)
	ids := func(cs []store.Conversation) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.ConversationID)
		}
		return out
	}
	got, err := s.ListConversations(ctx, namespace, "agent-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Bytewise order, like Go's string comparison, in every backend.
	if want := []string{"C1", "b", "c02", "c1", "c10"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("ListConversations = %v, want %v", ids(got), want)
	}
	byID := map[string]store.Conversation{}
	for _, c := range f.Convs {
		byID[c.AgentID+"/"+c.ConversationID] = c
	}
	for _, c := range got {
		assertConversations(t, []store.Conversation{c}, []store.Conversation{byID[c.AgentID+"/"+c.ConversationID]})
	}
	got, err = s.ListConversations(ctx, namespace, "agent-1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"C1", "b"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("ListConversations(limit 2) = %v, want %v", ids(got), want)
	}
	if got, err := s.ListConversations(ctx, namespace, "nobody", 0); err != nil || len(got) != 0 {
		t.Errorf("ListConversations(nobody) = %v, %v", got, err)
	}
}

// testSourceTotals: a source's lifetime totals count what commits stored as new or
// updated, in the commit's transaction: a rolled-back commit counts nothing, a ledger row
// alone counts nothing, re-ingesting an object adds its new commit's counts to the
// earlier ones (its ledger row forgets them), and DeleteSource forgets them.
func testSourceTotals(t *testing.T, s store.Store) {
	tr, ok := s.(store.TotalsReader)
	if !ok {
		t.Fatalf("%T does not keep source totals (store.TotalsReader)", s)
	}
	want := func(n int64) {
		t.Helper()
		got, err := tr.SourceTotals(ctx, source)
		if err != nil || got.Conversations != n {
			t.Fatalf("SourceTotals = %+v, %v; want %d conversations", got, err, n)
		}
	}
	want(0)
	commit(t, s, File(source, "a.json", day0, Conv("agent-1", "t1", day0, "x"), Conv("agent-1", "t2", day0, "y")))
	want(2)
	// One new, one unchanged (t1 again, same content, older object).
	commit(t, s, File(source, "b.json", day0.Add(-time.Hour), Conv("agent-1", "t1", day0, "x"), Conv("agent-1", "t3", day0, "z")))
	want(3)
	// The same object re-uploaded with t2 updated: its row's counts are replaced, the
	// totals add.
	commit(t, s, File(source, "a.json", day0.Add(time.Hour), Conv("agent-1", "t1", day0, "x"), Conv("agent-1", "t2", day0.Add(time.Minute), "y2")))
	want(4)
	if _, err := s.CommitFile(ctx, failAfter(File(source, "c.json", day0, Conv("agent-1", "t4", day0, "w")), errors.New("record 2: invalid")).FileCommit); err == nil {
		t.Fatal("a failed stream committed")
	}
	want(4)
	if err := s.RecordFile(ctx, store.FileRecord{Source: source, Key: "d.csv", State: store.FileIgnored, LastModified: day0,
		Counts: store.RecordCounts{New: 9}}); err != nil {
		t.Fatal(err)
	}
	want(4)
	// PII counts add up per validator and action, in the commit; a rolled-back commit
	// adds nothing, and a failed file's row (committed alone) adds what it carries.
	withPII := func(c Commit, pii ...store.PIITotal) Commit { c.File.PII = pii; return c }
	wantPII := func(want ...store.PIITotal) {
		t.Helper()
		got, err := tr.SourceTotals(ctx, source)
		if err != nil || fmt.Sprint(got.PII) != fmt.Sprint(want) {
			t.Fatalf("SourceTotals.PII = %+v, %v; want %+v", got.PII, err, want)
		}
	}
	commit(t, s, withPII(File(source, "p1.json", day0, Conv("agent-1", "p1", day0, "x")),
		store.PIITotal{Validator: "email", Action: "Redact", Records: 1, Matches: 2}))
	commit(t, s, withPII(File(source, "p2.json", day0, Conv("agent-1", "p2", day0, "x")),
		store.PIITotal{Validator: "email", Action: "Redact", Records: 3, Matches: 3},
		store.PIITotal{Validator: "card", Action: "Flag", Records: 1, Matches: 1},
		store.PIITotal{Validator: "phone", Action: "Flag"})) // nothing counted: no row
	if _, err := s.CommitFile(ctx, withPII(failAfter(File(source, "p3.json", day0, Conv("agent-1", "p3", day0, "w")), errors.New("record 2: invalid")),
		store.PIITotal{Validator: "email", Action: "Redact", Records: 50, Matches: 50}).FileCommit); err == nil {
		t.Fatal("a failed stream committed")
	}
	rejected := withPII(File(source, "p4.json", day0), store.PIITotal{Validator: "email", Action: "Reject", Records: 2, Matches: 4})
	rejected.File.State, rejected.Conversations = store.FileFailed, nil
	commit(t, s, rejected)
	wantPII(store.PIITotal{Validator: "card", Action: "Flag", Records: 1, Matches: 1},
		store.PIITotal{Validator: "email", Action: "Redact", Records: 4, Matches: 5},
		store.PIITotal{Validator: "email", Action: "Reject", Records: 2, Matches: 4})
	want(6)
	other, err := tr.SourceTotals(ctx, "other/src")
	if err != nil || other.Conversations != 0 || other.PII != nil {
		t.Errorf("totals of another source %+v, %v", other, err)
	}
	if err := s.DeleteSource(ctx, source); err != nil {
		t.Fatal(err)
	}
	want(0)
	wantPII()
}
