package discovery_test

import (
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// Objects the globs exclude and objects older than maxFileAge are never downloaded and
// are counted as such; an object already ingested still counts as ingested when it
// ages past maxFileAge; the ledger rows of excluded objects are not pruned (they are
// still in the bucket).
func TestFilters(t *testing.T) {
	const bkt = "filters"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	keys := []string{"c/2026/03/10/a.json", "c/2026/03/10/b.json", "c/2026/tmp/c.json", "c/2026/03/10/d.jsonl", "c/notes.txt"}
	for _, k := range keys {
		body := conversationFile("agent-f", k)
		if strings.HasSuffix(k, ".jsonl") {
			body = body[1 : len(body)-1] // one object on one line
		}
		if _, err := s3.Put(bkt, k, body); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, bkt, "c/", quota.Quota{})
	uploaded := time.Now()

	// Everything is older than maxFileAge: nothing is downloaded, nothing recorded.
	f.now = uploaded.Add(48 * time.Hour)
	f.job.Filter = discovery.Filter{Include: []string{"**/*.{json,jsonl}"}, Exclude: []string{"**/tmp/**"}, MaxFileAge: 24 * time.Hour}
	res := f.run(t)
	if res.Excluded != 2 || res.TooOld != 3 || res.Listed != 0 || res.Downloaded != 0 || f.ct.Count(bucket.OpGetObject) != 0 {
		t.Fatalf("all too old: %+v", res)
	}
	if res.Filter.MaxFileAge != 24*time.Hour || len(res.Filter.Include) != 1 {
		t.Fatalf("the result does not report the filter it applied: %+v", res.Filter)
	}

	// Young enough: the three selected objects are ingested; tmp/ and .txt are not.
	f.now = uploaded.Add(time.Hour)
	res = f.run(t)
	if res.Excluded != 2 || res.TooOld != 0 || res.Listed != 3 || res.Ingested != 3 || res.Downloaded != 3 {
		t.Fatalf("young: %+v", res)
	}

	// Aged past maxFileAge after ingestion: still counted as ingested, not downloaded.
	f.now = uploaded.Add(72 * time.Hour)
	res = f.run(t)
	if res.TooOld != 0 || res.Ingested != 3 || res.Unchanged != 3 || res.Downloaded != 0 {
		t.Fatalf("aged after ingestion: %+v", res)
	}

	// Excluding an ingested object keeps its ledger row: it is still in the bucket.
	f.job.Filter = discovery.Filter{Exclude: []string{"2026/03/10/a.json"}}
	res = f.run(t)
	if res.Pruned != 0 || res.Excluded != 1 {
		t.Fatalf("excluded after ingestion: %+v", res)
	}
}
