package bucket_test

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
)

// benchPrefix holds benchObjects() objects, put once per process (only when a benchmark runs).
const benchPrefix = "bench/"

var (
	benchSeedOnce sync.Once
	benchSeedErr  error
)

// benchObjects is 100,000 unless BUCKET_BENCH_OBJECTS says otherwise (a quicker run).
func benchObjects() int {
	if n, err := strconv.Atoi(os.Getenv("BUCKET_BENCH_OBJECTS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// BenchmarkList100k lists a 100,000-object prefix through bucket.Client.List and through a
// bare paginated ListObjectsV2 loop, alternating in each iteration so both see the same
// server state, and reports each one's time, their ratio and their request counts.
func BenchmarkList100k(b *testing.B) {
	n := benchObjects()
	benchSeedOnce.Do(func() {
		start := time.Now()
		_, benchSeedErr = srv.PutN(testBucket, benchPrefix, n, func(i int) []byte { return fmt.Appendf(nil, `{"i":%d}`, i) })
		b.Logf("put %d objects in %s", n, time.Since(start).Round(time.Millisecond))
	})
	if benchSeedErr != nil {
		b.Fatal(benchSeedErr)
	}
	ctx := context.Background()
	client, clientCount := newClient(b, rootConfig())
	bareCount := &bucket.CountingTransport{}
	bare := srv.BareLister(bareCount.Wrap(http.DefaultTransport))

	var clientTime, bareTime time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		listed := 0
		if err := client.List(ctx, benchPrefix, func(page []bucket.Object) error {
			listed += len(page)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		clientTime += time.Since(start)

		start = time.Now()
		bareListed, err := bare.Count(ctx, testBucket, benchPrefix)
		if err != nil {
			b.Fatal(err)
		}
		bareTime += time.Since(start)
		if listed != n || bareListed != n {
			b.Fatalf("listed %d (client) and %d (bare), want %d", listed, bareListed, n)
		}
	}
	b.StopTimer()
	perOp := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(perOp(clientTime), "client-ms/op")
	b.ReportMetric(perOp(bareTime), "bare-ms/op")
	b.ReportMetric(float64(clientTime)/float64(bareTime), "client/bare")
	b.ReportMetric(float64(clientCount.Count(bucket.OpListObjectsV2))/float64(b.N), "client-lists/op")
	b.ReportMetric(float64(bareCount.Count(bucket.OpListObjectsV2))/float64(b.N), "bare-lists/op")
	b.ReportMetric(float64(clientCount.Count(bucket.OpGetObject)), "client-gets")
}
