package discovery_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// pruneFixture puts n objects p/k-NNNN.txt (an unsupported extension: each gets an
// ignored ledger row and nothing is downloaded) and ledger rows of objects that are not
// in the bucket, around and between the listing's pages; it returns the gone keys.
func pruneFixture(t *testing.T, bkt string, n int) (*fixture, []string) {
	t.Helper()
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{}
	for i := range n {
		objects[fmt.Sprintf("p/k-%04d.txt", i)] = []byte("x")
	}
	if _, err := s3.PutMany(bkt, objects); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "p/", quota.Quota{})
	gone := []string{
		"a/outside-before",     // before the prefix: in the first page's range
		"p/a-before-first",     // under the prefix, before the first key
		"p/k-0500-deleted",     // inside the first page
		"p/k-0999.txt.deleted", // between the first page's last key and the second's first
		"p/k-1500.txt.deleted", // inside the second page
		"p/zz-after-last",      // after the last listed key
		"q/outside-after",      // after the prefix
		"p/k-2250.txt.deleted", // inside the last page
	}
	for _, k := range gone {
		if err := f.store.RecordFile(context.Background(), store.FileRecord{Source: f.job.Source, Key: k, ETag: "e", State: store.FileIngested,
			FirstSeen: f.now.Add(-time.Hour), UpdatedAt: f.now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	return f, gone
}

func ledgerKeys(t *testing.T, f *fixture) []string {
	t.Helper()
	rows, err := f.store.RangeFiles(context.Background(), f.job.Source, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Key
	}
	return keys
}

// A full listing of several pages removes exactly the rows of objects gone from the
// bucket, wherever they sort: before, between, inside and after the listed pages.
func TestPruneAcrossPages(t *testing.T) {
	const n = 2*bucket.PageSize + 500
	f, gone := pruneFixture(t, "prune-pages", n)
	res := f.run(t)
	if res.Err != nil || res.Listed != n || res.Ignored != n {
		t.Fatalf("result %+v", res)
	}
	if res.Pruned != int64(len(gone)) {
		t.Errorf("pruned %d rows, want %d", res.Pruned, len(gone))
	}
	keys := ledgerKeys(t, f)
	if len(keys) != n {
		t.Fatalf("ledger holds %d rows, want %d", len(keys), n)
	}
	for _, k := range gone {
		if slices.Contains(keys, k) {
			t.Errorf("%s is gone from the bucket but still in the ledger", k)
		}
	}
	if got := f.ct.Count(bucket.OpListObjectsV2); got != 3 {
		t.Errorf("%d ListObjectsV2 requests, want 3", got)
	}
}

// A listing that fails part-way prunes only the key ranges of the pages it saw whole;
// an empty listing prunes nothing.
func TestPruneSafety(t *testing.T) {
	const n = 2*bucket.PageSize + 500
	f, _ := pruneFixture(t, "prune-safety", n)
	client := f.client
	res := f.runner.Run(context.Background(), &failAfterPages{Client: client, pages: 1}, f.job)
	if res.Err == nil {
		t.Fatal("the listing failed but the run reports no error")
	}
	keys := ledgerKeys(t, f)
	for _, k := range []string{"a/outside-before", "p/a-before-first", "p/k-0500-deleted"} {
		if slices.Contains(keys, k) {
			t.Errorf("%s lies in the page that was listed whole but was not pruned", k)
		}
	}
	for _, k := range []string{"p/k-0999.txt.deleted", "p/k-1500.txt.deleted", "p/zz-after-last", "q/outside-after", "p/k-2250.txt.deleted"} {
		if !slices.Contains(keys, k) {
			t.Errorf("%s lies beyond what the failed listing saw but was pruned", k)
		}
	}

	// The prefix matches nothing: a typo must not forget the ledger.
	before := len(ledgerKeys(t, f))
	f.job.Prefix = "typo/"
	if res := f.run(t); res.Err != nil || res.Listed != 0 || res.Pruned != 0 {
		t.Fatalf("empty listing: %+v", res)
	}
	if after := len(ledgerKeys(t, f)); after != before {
		t.Fatalf("an empty listing changed the ledger from %d to %d rows", before, after)
	}
}

// A server that does not list in key order proves nothing gone: the run prunes nothing
// and still classifies every object against its ledger row.
func TestPruneNeedsKeyOrder(t *testing.T) {
	const n = 2*bucket.PageSize + 500
	f, gone := pruneFixture(t, "prune-order", n)
	f.run(t) // every object now has its row
	for _, k := range gone[:3] {
		if err := f.store.RecordFile(context.Background(), store.FileRecord{Source: f.job.Source, Key: k, ETag: "e", State: store.FileIngested,
			FirstSeen: f.now.Add(-time.Hour), UpdatedAt: f.now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	f.now = f.now.Add(time.Hour)
	f.client = &reversedPages{Client: f.client}
	res := f.run(t)
	if res.Err != nil || res.Pruned != 0 || res.Unchanged != n {
		t.Fatalf("unordered listing: %+v", res)
	}
	if keys := ledgerKeys(t, f); len(keys) != n+3 {
		t.Fatalf("ledger holds %d rows, want %d", len(keys), n+3)
	}
}

// failAfterPages fails the listing after it delivered pages pages.
type failAfterPages struct {
	bucket.Client
	pages int
}

func (c *failAfterPages) List(ctx context.Context, prefix string, fn func([]bucket.Object) error, opts ...bucket.ListOption) error {
	seen := 0
	return c.Client.List(ctx, prefix, func(page []bucket.Object) error {
		if seen == c.pages {
			return &bucket.Error{Reason: bucket.ReasonEndpointUnreachable, Message: "injected: the connection dropped"}
		}
		seen++
		return fn(page)
	}, opts...)
}

// reversedPages delivers each page in reverse key order.
type reversedPages struct{ bucket.Client }

func (c *reversedPages) List(ctx context.Context, prefix string, fn func([]bucket.Object) error, opts ...bucket.ListOption) error {
	return c.Client.List(ctx, prefix, func(page []bucket.Object) error {
		slices.Reverse(page)
		return fn(page)
	}, opts...)
}
