package discovery_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// benchObjects is 100,000 unless DISCOVERY_BENCH_OBJECTS says otherwise (a quicker run).
func benchObjects() int {
	if n, err := strconv.Atoi(os.Getenv("DISCOVERY_BENCH_OBJECTS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

var benchSeed sync.Once

// BenchmarkNoChangeDiscovery measures a discovery of N objects that are all unchanged
// (the hourly steady state) against a bare paginated ListObjectsV2 of the same prefix, in
// the same run: the ratio is the cost of the ledger lookups on top of the listing. The
// ledger is filled from one listing (RecordFile per object) so setup does not download
// 100,000 objects; the run under test cannot tell the difference.
//
//	go test -run '^$' -bench NoChangeDiscovery -benchtime 3x -timeout 60m ./internal/discovery/
func BenchmarkNoChangeDiscovery(b *testing.B) {
	const bkt, prefix = "bench-discovery", "c/"
	n := benchObjects()
	f := newFixture(b, bkt, prefix, quota.Quota{})
	ctx := context.Background()
	benchSeed.Do(func() {
		start := time.Now()
		if err := s3.CreateBucket(bkt); err != nil {
			b.Fatal(err)
		}
		if _, err := s3.PutN(bkt, prefix, n, func(i int) []byte { return conversationFile("agent-b", fmt.Sprintf("b-%07d", i)) }); err != nil {
			b.Fatal(err)
		}
		b.Logf("put %d objects in %s", n, time.Since(start).Round(time.Millisecond))
	})
	start := time.Now()
	if err := f.client.List(ctx, prefix, func(page []bucket.Object) error {
		for _, o := range page {
			if err := f.store.RecordFile(ctx, store.FileRecord{Source: f.job.Source, Key: o.Key, ETag: o.ETag, Size: o.Size,
				LastModified: o.LastModified, State: store.FileIngested, Reason: ingest.ReasonIngested}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled the ledger with %d rows in %s", n, time.Since(start).Round(time.Millisecond))

	bareCount := &bucket.CountingTransport{}
	bare := s3.BareLister(bareCount.Wrap(http.DefaultTransport))
	f.ct.Reset()
	var runTime, bareTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		res := f.runner.Run(ctx, f.client, f.job)
		runTime += time.Since(t0)
		if res.Err != nil || res.Unchanged != int64(n) || res.Downloaded != 0 {
			b.Fatalf("discovery: %+v", res)
		}

		t0 = time.Now()
		listed, err := bare.Count(ctx, bkt, prefix)
		if err != nil {
			b.Fatal(err)
		}
		bareTime += time.Since(t0)
		if listed != n {
			b.Fatalf("bare listing saw %d objects, want %d", listed, n)
		}
	}
	b.StopTimer()
	perOp := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(perOp(runTime), "discovery-ms/op")
	b.ReportMetric(perOp(bareTime), "bare-list-ms/op")
	b.ReportMetric(float64(runTime)/float64(bareTime), "discovery/bare")
	b.ReportMetric(float64(f.ct.Count(bucket.OpListObjectsV2))/float64(b.N), "discovery-lists/op")
	b.ReportMetric(float64(bareCount.Count(bucket.OpListObjectsV2))/float64(b.N), "bare-lists/op")
	b.ReportMetric(float64(f.ct.Count(bucket.OpGetObject))/float64(b.N), "gets/op")
}
