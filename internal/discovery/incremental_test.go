package discovery_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

func dayKey(name string) string { return "c/2026/03/10/" + name + ".json" }

func put(t *testing.T, bkt string, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := s3.Put(bkt, dayKey(n), conversationFile("agent-inc", n)); err != nil {
			t.Fatal(err)
		}
	}
}

// An incremental source lists only after its mark, finds uploads up to the safety window
// late, misses later ones until the next full listing, and only full listings prune.
func TestIncrementalListing(t *testing.T) {
	const bkt = "incremental-listing"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	var first []string
	for i := range 10 {
		first = append(first, fmt.Sprintf("%02d", i))
	}
	put(t, bkt, first...)
	f := newFixture(t, bkt, "c/", quota.Quota{})
	f.job.Listing = discovery.Listing{Incremental: true, FullEvery: 24 * time.Hour, SafetyWindow: time.Hour}
	t0 := f.now

	step := func(name string, at time.Duration, mode string, startAfter string, listed, downloaded, lists int64) *discovery.Result {
		t.Helper()
		f.now = t0.Add(at)
		res := f.run(t)
		if res.Listing.Mode != mode || res.Listing.StartAfter != startAfter || res.Listing.Listed != listed || res.Downloaded != downloaded {
			t.Fatalf("%s: listing %+v, downloaded %d; want %s after %q, %d listed, %d downloaded", name, res.Listing, res.Downloaded, mode, startAfter, listed, downloaded)
		}
		if got := int64(f.ct.Count(bucket.OpListObjectsV2)); got != lists {
			t.Errorf("%s: %d ListObjectsV2 requests, want %d", name, got, lists)
		}
		return res
	}

	step("first run: no state yet", 0, discovery.ModeFull, "", 10, 10, 1)
	// Within the window of the only mark there is nothing to start from.
	step("no mark a window old", 30*time.Minute, discovery.ModeFull, "", 10, 0, 1)

	put(t, bkt, "10")
	res := step("new file", 2*time.Hour, discovery.ModeIncremental, dayKey("09"), 1, 1, 1)
	if res.Listed != 11 || res.Ingested != 11 || !res.Listing.LastFull.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("incremental totals come from the ledger: %+v", res)
	}

	// 09b arrives late (it sorts before 10, listed already) but within the window: the
	// mark of the run at +30m (09) is the newest a window old, so 09b is found.
	put(t, bkt, "09b")
	step("late upload within the window", 2*time.Hour+45*time.Minute, discovery.ModeIncremental, dayKey("09"), 2, 1, 1)

	// 08b arrives later than the window allows and an object is deleted: incremental runs
	// neither find it nor prune.
	put(t, bkt, "08b")
	if err := s3.Delete(bkt, dayKey("00")); err != nil {
		t.Fatal(err)
	}
	res = step("too late for the window", 5*time.Hour, discovery.ModeIncremental, dayKey("10"), 0, 0, 1)
	if res.Pruned != 0 || res.Listed != 12 {
		t.Fatalf("an incremental run pruned or miscounted: %+v", res)
	}
	// The full listing is due a day after the last one began: it catches 08b and prunes 00.
	res = step("daily full listing", 24*time.Hour+30*time.Minute, discovery.ModeFull, "", 12, 1, 1)
	if res.Pruned != 1 || res.Ingested != 12 {
		t.Fatalf("full listing: %+v", res)
	}
	if _, ok, _ := f.store.LookupFile(context.Background(), f.job.Source, dayKey("00")); ok {
		t.Fatal("the full listing did not prune the deleted object")
	}

	// Another prefix is another scope: no mark of the old one is used.
	f.job.Prefix = "c/2026/"
	step("prefix changed", 26*time.Hour, discovery.ModeFull, "", 12, 0, 1)
	// Full listing stays the default.
	f.job.Listing = discovery.Listing{}
	step("mode Full", 28*time.Hour, discovery.ModeFull, "", 12, 0, 1)
}

// A file deferred by the quota keeps the mark before it: the incremental run after the
// reset lists it again and ingests it.
func TestIncrementalKeepsUnsettledFiles(t *testing.T) {
	const bkt = "incremental-deferred"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "d"}
	put(t, bkt, names...)
	size := int64(len(conversationFile("agent-inc", "a")))
	tight := quota.Quota{Key: "ns/tight", DailyLimit: 3 * size, MaxFileSize: size + 10, Location: time.UTC}
	f := newFixture(t, bkt, "c/", tight)
	f.job.Listing = discovery.Listing{Incremental: true, FullEvery: 72 * time.Hour, SafetyWindow: time.Hour}
	res := f.run(t)
	if res.Deferred != 1 || res.Ingested != 3 {
		t.Fatalf("first run: %+v", res)
	}
	rows, err := f.store.ListFiles(context.Background(), f.job.Source, store.FileDeferred, 0)
	if err != nil || len(rows) != 1 {
		t.Fatalf("deferred rows %v, %v", rows, err)
	}
	deferred := rows[0].Key

	put(t, bkt, "e")
	f.now = f.now.Add(24 * time.Hour) // the quota resets
	res = f.run(t)
	if res.Listing.Mode != discovery.ModeIncremental || res.Listing.StartAfter >= deferred {
		t.Fatalf("listing %+v starts after the deferred %s", res.Listing, deferred)
	}
	if res.Deferred != 0 || res.Ingested != 5 || res.Downloaded != 2 {
		t.Fatalf("after the reset: %+v", res)
	}
	if !slices.Contains(names, deferred[len("c/2026/03/10/"):len(deferred)-len(".json")]) {
		t.Fatalf("deferred key %s", deferred)
	}
}

// The listing state changes only when a run completes: a run that fails (or is killed)
// part-way leaves the previous marks, so the next run starts no later than before.
func TestListingStateOnlyAfterACompletedRun(t *testing.T) {
	const bkt = "incremental-crash"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	put(t, bkt, "a", "b")
	f := newFixture(t, bkt, "c/", quota.Quota{})
	f.job.Listing = discovery.Listing{Incremental: true, FullEvery: 24 * time.Hour, SafetyWindow: time.Hour}
	f.run(t)
	before, found, err := f.store.ListingState(context.Background(), f.job.Source)
	if err != nil || !found || len(before.Marks) != 1 || before.Marks[0].Key != dayKey("b") {
		t.Fatalf("state after the first run: %+v, %v, %v", before, found, err)
	}

	put(t, bkt, "c")
	f.now = f.now.Add(2 * time.Hour)
	res := f.runner.Run(context.Background(), &failAfterPages{Client: f.client, pages: 0}, f.job)
	if res.Err == nil || res.Listing.Mode != discovery.ModeIncremental {
		t.Fatalf("failed run: %+v", res)
	}
	after, _, err := f.store.ListingState(context.Background(), f.job.Source)
	if err != nil || len(after.Marks) != 1 || after.Marks[0] != before.Marks[0] || !after.LastFull.Equal(before.LastFull) {
		t.Fatalf("a failed run changed the listing state: %+v, want %+v", after, before)
	}
	// The next run starts where the failed one did and finds c.
	res = f.run(t)
	if res.Listing.StartAfter != dayKey("b") || res.Downloaded != 1 {
		t.Fatalf("run after the failure: %+v", res)
	}
}
