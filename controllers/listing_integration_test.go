package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// An Incremental source lists only what is new after its first full listing, keeps
// status.files counting the whole ledger, and its daily full listing prunes the objects
// deleted meanwhile.
func TestIncrementalSourceIngestsNewFilesAndFullListingPrunes(t *testing.T) {
	const ns, name, bkt = "incremental", "daily", "incremental-src"
	createBucket(t, bkt)
	day := "conversations/2026/03/10/"
	for _, id := range []string{"c-001", "c-002", "c-003"} {
		put(t, bkt, day+id+".json", jsonArray(t, conversation("agent-1", id, "2026-03-10T08:00:00Z", "hello")))
	}
	createQuota(t, ns, "default", v1.IngestionQuotaSpec{})
	ct := counts.of(bkt)
	start := clk.Now()
	newSource(t, ns, name, bkt, "conversations/", func(s *v1.S3SourceSpec) {
		s.Listing = &v1.Listing{Mode: v1.ListingIncremental}
	})
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 3, Ingested: 3})
	wantListing(t, src, v1.ListingFull, 3, start)
	wantRequests(t, ct, 1, 3)

	// Two hours later: one new file, one deleted. The incremental run lists after the
	// first run's last key, downloads the new file only and prunes nothing.
	put(t, bkt, day+"c-004.json", jsonArray(t, conversation("agent-1", "c-004", "2026-03-10T10:00:00Z", "new")))
	if err := s3.Delete(bkt, day+"c-001.json"); err != nil {
		t.Fatal(err)
	}
	ct.Reset()
	clk.Step(2 * time.Hour)
	second := clk.Now()
	poke(t, ns, name)
	src = waitRun(t, ns, name, second)
	wantListing(t, src, v1.ListingIncremental, 1, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 4, Ingested: 4})
	wantRequests(t, ct, 1, 1)
	if _, ok, _ := store.GetConversation(context.Background(), ns, "agent-1", "c-004"); !ok {
		t.Fatal("the incremental run did not ingest c-004")
	}

	// A day after the first listing the full listing is due: it lists everything and
	// drops the deleted object's ledger row.
	ct.Reset()
	clk.Step(23 * time.Hour)
	third := clk.Now()
	poke(t, ns, name)
	src = waitRun(t, ns, name, third)
	wantListing(t, src, v1.ListingFull, 3, third)
	wantFiles(t, src, v1.FileCounts{Discovered: 3, Ingested: 3})
	wantRequests(t, ct, 1, 0)
	if _, ok, _ := store.LookupFile(context.Background(), ns+"/"+name, day+"c-001.json"); ok {
		t.Fatal("the full listing kept the ledger row of a deleted object")
	}
}

func wantListing(t *testing.T, src *v1.S3Source, mode v1.ListingMode, listed int64, lastFull time.Time) {
	t.Helper()
	l := src.Status.Listing
	if l == nil || l.LastMode != mode || l.ObjectsListed != listed || l.LastFullListingTime == nil || l.LastFullListingTime.Unix() != lastFull.Unix() {
		t.Fatalf("status.listing = %+v, want mode %s, %d listed, last full listing at %v", l, mode, listed, lastFull)
	}
}

// include/exclude and maxFileAge: skipped objects are never downloaded, status counts
// them and shows the filter applied; a pattern that is not a glob stalls the source
// with reason InvalidFilters before any S3 request.
func TestFiltersInStatus(t *testing.T) {
	const ns, name, bkt = "incremental", "filtered", "filtered-src"
	createBucket(t, bkt)
	for _, k := range []string{"c/2026/03/10/a.json", "c/2026/03/10/b.json", "c/tmp/c.json", "c/notes.csv"} {
		put(t, bkt, k, jsonArray(t, conversation("agent-1", "f-"+k[len(k)-6:len(k)-5], "2026-03-10T08:00:00Z", "hello")))
	}
	ct := counts.of(bkt)
	start := clk.Now()
	newSource(t, ns, name, bkt, "c/", func(s *v1.S3SourceSpec) {
		s.Include = []string{"**/*.{json,jsonl}"}
		s.Exclude = []string{"tmp/**"}
		s.MaxFileAge = &metav1.Duration{Duration: 30 * 24 * time.Hour}
	})
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 2, Skipped: 2})
	wantRequests(t, ct, 1, 2)
	if !slices.Equal(src.Status.ObservedInclude, []string{"**/*.{json,jsonl}"}) || !slices.Equal(src.Status.ObservedExclude, []string{"tmp/**"}) ||
		src.Status.ObservedMaxFileAge == nil || src.Status.ObservedMaxFileAge.Duration != 30*24*time.Hour {
		t.Fatalf("observed filter: include %q, exclude %q, maxFileAge %v", src.Status.ObservedInclude, src.Status.ObservedExclude, src.Status.ObservedMaxFileAge)
	}

	const bad = "filtered-bad"
	badCt := counts.of(bad)
	createBucket(t, bad)
	newSource(t, ns, bad, bad, "c/", func(s *v1.S3SourceSpec) { s.Include = []string{"**/*.json", "[a-z"} })
	eventually(t, "Stalled=True/InvalidFilters", func() error {
		c := condition(getSource(t, ns, bad), v1.ConditionStalled)
		if c.Status != metav1.ConditionTrue || c.Reason != v1.ReasonInvalidFilters {
			return fmt.Errorf("Stalled = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		if !strings.Contains(c.Message, `spec.include[1] "[a-z" is not a valid glob pattern`) {
			return fmt.Errorf("message %q does not name the pattern", c.Message)
		}
		return nil
	})
	wantRequests(t, badCt, 0, 0)
}
