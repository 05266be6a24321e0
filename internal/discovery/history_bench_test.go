package discovery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// historyVersion keys the cached history: bump it when the layout below changes.
const historyVersion = "v1"

const (
	historyBucket = "bench-history"
	historyPrefix = "c/"
	// historyPerDay is the guide's example customer: 3,000 files a day, one folder per
	// day (conversations/YYYY/MM/DD/).
	historyPerDay = 3000
	// newPerRun is how many new files arrive between two discoveries.
	newPerRun = 1000
)

// historyObjects is 1,000,000 unless DISCOVERY_BENCH_HISTORY says otherwise.
func historyObjects() int {
	if n, err := strconv.Atoi(os.Getenv("DISCOVERY_BENCH_HISTORY")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

func historyDay(i int) string {
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/historyPerDay).Format("2006/01/02/")
}

// historyCache is the directory that keeps a generated history between runs: MinIO's
// data directory, its root credentials and the filled ledger, under the tools cache.
func historyCache(n int) string {
	base := os.Getenv("DATA_IMPORT_TOOLS_CACHE")
	if base == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		base = filepath.Join(cache, "data-import-operator")
	}
	return filepath.Join(base, fmt.Sprintf("bench-history-%s-%d", historyVersion, n))
}

type historyCreds struct{ User, Password string }

// startHistory starts MinIO on the cached history of n objects, generating it first
// when the cache has none, and returns the server and a copy of the filled ledger.
func startHistory(b *testing.B, n int) (*minio.Server, string) {
	b.Helper()
	dir := historyCache(n)
	done := filepath.Join(dir, "complete")
	ledger := filepath.Join(b.TempDir(), "store.db")
	if _, err := os.Stat(done); err == nil {
		var creds historyCreds
		raw, err := os.ReadFile(filepath.Join(dir, "creds.json"))
		if err == nil {
			err = json.Unmarshal(raw, &creds)
		}
		if err != nil {
			b.Fatal(err)
		}
		srv, err := minio.StartServer(minio.Options{DataDir: filepath.Join(dir, "data"), RootUser: creds.User, RootPassword: creds.Password})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Stop)
		if err := copyFile(filepath.Join(dir, "ledger.db"), ledger); err != nil {
			b.Fatal(err)
		}
		return srv, ledger
	}

	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	creds := historyCreds{User: "bench" + strconv.FormatInt(time.Now().UnixNano(), 36), Password: "bench-" + strconv.FormatInt(time.Now().UnixNano(), 16)}
	raw, _ := json.Marshal(creds)
	if err := os.WriteFile(filepath.Join(dir, "creds.json"), raw, 0o600); err != nil {
		b.Fatal(err)
	}
	srv, err := minio.StartServer(minio.Options{DataDir: filepath.Join(dir, "data"), RootUser: creds.User, RootPassword: creds.Password})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	if err := srv.CreateBucket(historyBucket); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(32)
	var put atomic.Int64
	for i := range n {
		g.Go(func() error {
			_, err := srv.Put(historyBucket, fmt.Sprintf("%s%sconv-%07d.json", historyPrefix, historyDay(i), i), []byte("{}"))
			if c := put.Add(1); c%100_000 == 0 {
				b.Logf("put %d of %d objects in %s", c, n, time.Since(start).Round(time.Second))
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("put %d objects in %s", n, time.Since(start).Round(time.Second))

	// The ledger holds every history object as ingested: filled from one listing so
	// setup downloads nothing; the runs under test cannot tell the difference.
	start = time.Now()
	st, err := sqlite.Open(context.Background(), ledger)
	if err != nil {
		b.Fatal(err)
	}
	client := benchClient(b, srv, nil)
	ctx := context.Background()
	if err := client.List(ctx, historyPrefix, func(page []bucket.Object) error {
		for _, o := range page {
			if err := st.RecordFile(ctx, store.FileRecord{Source: "ns/history", Key: o.Key, ETag: o.ETag, Size: o.Size,
				LastModified: o.LastModified, State: store.FileIngested, Reason: ingest.ReasonIngested}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled the ledger with %d rows in %s", n, time.Since(start).Round(time.Second))
	if err := copyFile(ledger, filepath.Join(dir, "ledger.db")); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	return srv, ledger
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func benchClient(b *testing.B, srv *minio.Server, ct *bucket.CountingTransport) bucket.Client {
	b.Helper()
	cfg := bucket.Config{
		Bucket: historyBucket, Endpoint: srv.Endpoint, ForcePathStyle: true, Region: minio.Region,
		Credentials: &bucket.StaticCredentials{AccessKeyID: srv.RootUser, SecretAccessKey: srv.RootPassword},
	}
	if ct != nil {
		cfg.WrapTransport = ct.Wrap
	}
	c, err := bucket.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// measured is one discovery's cost.
type measured struct {
	wall       time.Duration
	lists      int
	gets       int
	peakHeapMB float64
}

// measure runs one discovery and samples the heap in use (runtime.MemStats.HeapInuse,
// every 5 ms, after a GC) for its peak: the Go heap, not the process RSS.
func measure(b *testing.B, runner *discovery.Runner, client bucket.Client, ct *bucket.CountingTransport, job discovery.Job, check func(*discovery.Result) error) measured {
	b.Helper()
	runtime.GC()
	ct.Reset()
	var peak atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t0 := time.Now()
	res := runner.Run(context.Background(), client, job)
	wall := time.Since(t0)
	close(stop)
	<-sampled
	if res.Err != nil {
		b.Fatalf("discovery: %v", res.Err)
	}
	if err := check(res); err != nil {
		b.Fatalf("%v: %+v", err, res)
	}
	return measured{wall: wall, lists: ct.Count(bucket.OpListObjectsV2), gets: ct.Count(bucket.OpGetObject), peakHeapMB: float64(peak.Load()) / (1 << 20)}
}

// BenchmarkIncrementalVsFull: a prefix holding DISCOVERY_BENCH_HISTORY (default
// 1,000,000) objects of history in the guide's one-folder-a-day layout, all in the
// ledger, and 1,000 new files. In each iteration, in the same run:
//   - full: today's full discovery (mode Full) of history + 1,000 new files;
//   - incremental: the next discovery in mode Incremental after 1,000 more new files;
//   - newonly: the ideal, a full discovery of a prefix that holds only the 1,000 new
//     files (what listing only the new keys costs, downloads included).
//
// It reports each one's LIST and GET requests, wall time and peak Go heap in use, and
// the ratios incr/full and incr/newonly. The history is generated once and cached
// under the tools cache (bench-history-<version>-<n>).
//
//	DISCOVERY_BENCH_HISTORY=100000 go test -run '^$' -bench IncrementalVsFull -benchtime 1x -timeout 120m ./internal/discovery/
func BenchmarkIncrementalVsFull(b *testing.B) {
	n := historyObjects()
	srv, ledger := startHistory(b, n)
	st, err := sqlite.Open(context.Background(), ledger)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ct := &bucket.CountingTransport{}
	client := benchClient(b, srv, ct)
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	runner := discovery.NewRunner(st, ingest.New(st), func() time.Time { return now }, 4, 4)
	q := quota.Quota{Key: "ns/default", DailyLimit: math.MaxInt64 / 2, MaxFileSize: 50_000_000, Location: time.UTC}
	job := discovery.Job{Namespace: "ns", Source: "ns/history", Bucket: historyBucket, Prefix: historyPrefix, Quota: q, Policy: ingest.SkipFile,
		Listing: discovery.Listing{Incremental: true, FullEvery: 24 * time.Hour, SafetyWindow: time.Hour}}
	newDay := historyPrefix + historyDay(n+historyPerDay)
	ctx := context.Background()

	putNew := func(bkt, prefix, batch string) []string {
		keys := make([]string, newPerRun)
		var g errgroup.Group
		g.SetLimit(32)
		for i := range keys {
			keys[i] = fmt.Sprintf("%snew-%s-%04d.json", prefix, batch, i)
			g.Go(func() error {
				_, err := srv.Put(bkt, keys[i], conversationFile("agent-new", keys[i]))
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		return keys
	}
	removeNew := func(keys []string) {
		var g errgroup.Group
		g.SetLimit(32)
		for _, k := range keys {
			g.Go(func() error { return srv.Delete(historyBucket, k) })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		if _, err := st.DeleteFiles(ctx, job.Source, keys, now.Add(1000*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	// The ideal: a prefix that holds only the new files, in its own bucket.
	const onlyBucket = "bench-new-only"
	if err := srv.CreateBucket(onlyBucket); err != nil {
		b.Fatal(err)
	}
	putNew(onlyBucket, "only/", "o")
	onlyClient, err := bucket.New(ctx, bucket.Config{
		Bucket: onlyBucket, Endpoint: srv.Endpoint, ForcePathStyle: true, Region: minio.Region,
		Credentials: &bucket.StaticCredentials{AccessKeyID: srv.RootUser, SecretAccessKey: srv.RootPassword}, WrapTransport: ct.Wrap,
	})
	if err != nil {
		b.Fatal(err)
	}
	onlyJob := job
	onlyJob.Source, onlyJob.Bucket, onlyJob.Prefix, onlyJob.Listing = "ns/only", onlyBucket, "only/", discovery.Listing{}

	var full, incr, only measured
	add := func(sum *measured, m measured) {
		sum.wall += m.wall
		sum.lists += m.lists
		sum.gets += m.gets
		sum.peakHeapMB = max(sum.peakHeapMB, m.peakHeapMB)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		a := putNew(historyBucket, newDay, fmt.Sprintf("a%d", i))
		now = now.Add(50 * time.Hour) // a full listing is due
		b.StartTimer()
		add(&full, measure(b, runner, client, ct, job, func(res *discovery.Result) error {
			if res.Listing.Mode != discovery.ModeFull || res.Listed != int64(n+newPerRun) || res.Downloaded != newPerRun {
				return fmt.Errorf("full discovery")
			}
			return nil
		}))
		b.StopTimer()
		bb := putNew(historyBucket, newDay, fmt.Sprintf("b%d", i))
		now = now.Add(2 * time.Hour) // the full listing's mark is a window old
		b.StartTimer()
		add(&incr, measure(b, runner, client, ct, job, func(res *discovery.Result) error {
			if res.Listing.Mode != discovery.ModeIncremental || res.Listing.Listed != newPerRun || res.Downloaded != newPerRun {
				return fmt.Errorf("incremental discovery")
			}
			return nil
		}))
		b.StopTimer()
		if err := st.DeleteSource(ctx, onlyJob.Source); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		add(&only, measure(b, runner, onlyClient, ct, onlyJob, func(res *discovery.Result) error {
			if res.Listed != newPerRun || res.Downloaded != newPerRun {
				return fmt.Errorf("new-only discovery")
			}
			return nil
		}))
		b.StopTimer()
		removeNew(append(a, bb...))
		b.StartTimer()
	}
	b.StopTimer()
	per := func(v float64) float64 { return v / float64(b.N) }
	ms := func(d time.Duration) float64 { return per(float64(d.Milliseconds())) }
	b.ReportMetric(float64(n), "history-objects")
	b.ReportMetric(ms(full.wall), "full-ms/op")
	b.ReportMetric(ms(incr.wall), "incr-ms/op")
	b.ReportMetric(ms(only.wall), "newonly-ms/op")
	b.ReportMetric(per(float64(full.lists)), "full-lists/op")
	b.ReportMetric(per(float64(incr.lists)), "incr-lists/op")
	b.ReportMetric(per(float64(only.lists)), "newonly-lists/op")
	b.ReportMetric(per(float64(full.gets)), "full-gets/op")
	b.ReportMetric(per(float64(incr.gets)), "incr-gets/op")
	b.ReportMetric(full.peakHeapMB, "full-peak-heap-MB")
	b.ReportMetric(incr.peakHeapMB, "incr-peak-heap-MB")
	b.ReportMetric(only.peakHeapMB, "newonly-peak-heap-MB")
	b.ReportMetric(float64(incr.wall)/float64(full.wall), "incr/full-wall")
	b.ReportMetric(float64(incr.lists)/float64(full.lists), "incr/full-lists")
	b.ReportMetric(float64(incr.wall)/float64(only.wall), "incr/newonly-wall")
	b.ReportMetric(float64(incr.lists+incr.gets)/float64(only.lists+only.gets), "incr/newonly-requests")
}

// BenchmarkFullDiscoveryMemory: a full discovery of the cached history with nothing
// new, for its peak Go heap in use: it must not grow with the number of keys (run it
// with DISCOVERY_BENCH_HISTORY=100000 and =1000000 and compare full-peak-heap-MB).
//
//	DISCOVERY_BENCH_HISTORY=300000 go test -run '^$' -bench FullDiscoveryMemory -benchtime 1x -timeout 120m ./internal/discovery/
func BenchmarkFullDiscoveryMemory(b *testing.B) {
	n := historyObjects()
	srv, ledger := startHistory(b, n)
	st, err := sqlite.Open(context.Background(), ledger)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ct := &bucket.CountingTransport{}
	client := benchClient(b, srv, ct)
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	runner := discovery.NewRunner(st, ingest.New(st), func() time.Time { return now }, 4, 4)
	q := quota.Quota{Key: "ns/default", DailyLimit: math.MaxInt64 / 2, MaxFileSize: 50_000_000, Location: time.UTC}
	job := discovery.Job{Namespace: "ns", Source: "ns/history", Bucket: historyBucket, Prefix: historyPrefix, Quota: q, Policy: ingest.SkipFile}
	var full measured
	b.ResetTimer()
	for range b.N {
		m := measure(b, runner, client, ct, job, func(res *discovery.Result) error {
			if res.Listed != int64(n) || res.Downloaded != 0 {
				return fmt.Errorf("full discovery")
			}
			return nil
		})
		full.wall += m.wall
		full.peakHeapMB = max(full.peakHeapMB, m.peakHeapMB)
	}
	b.ReportMetric(float64(n), "history-objects")
	b.ReportMetric(float64(full.wall.Milliseconds())/float64(b.N), "full-ms/op")
	b.ReportMetric(full.peakHeapMB, "full-peak-heap-MB")
}
