package discovery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

var s3 *minio.Server

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild() // never returns: it kills itself in the commit
	}
	var err error
	if s3, err = minio.StartServer(minio.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	s3.Stop()
	os.Exit(code)
}

func conversationFile(agent, id string) []byte {
	b, _ := json.Marshal([]map[string]any{{
		"conversation_id": id, "agent_id": agent, "timestamp": "2025-01-15T14:30:00Z",
		"messages": []any{map[string]any{"message_id": "m1", "role": "customer", "content": "hi", "timestamp": "2025-01-15T14:30:00Z"}},
	}})
	return b
}

type fixture struct {
	store  *sqlite.Store
	runner *discovery.Runner
	client bucket.Client
	ct     *bucket.CountingTransport
	job    discovery.Job
	now    time.Time
}

func newFixture(t testing.TB, bkt, prefix string, q quota.Quota) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{store: st, ct: &bucket.CountingTransport{}, now: time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)}
	f.runner = discovery.NewRunner(st, ingest.New(st), func() time.Time { return f.now }, 4, 4)
	f.client, err = bucket.New(context.Background(), bucket.Config{
		Bucket: bkt, Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region,
		Credentials:   &bucket.StaticCredentials{AccessKeyID: s3.RootUser, SecretAccessKey: s3.RootPassword},
		WrapTransport: f.ct.Wrap,
	})
	if err != nil {
		t.Fatal(err)
	}
	if q.Key == "" {
		q = quota.Quota{Key: "ns/default", DailyLimit: 500_000_000, MaxFileSize: 50_000_000, Location: time.UTC}
	}
	f.job = discovery.Job{Namespace: "ns", Source: "ns/" + bkt, Bucket: bkt, Prefix: prefix, Quota: q, Policy: ingest.SkipFile}
	return f
}

func (f *fixture) run(t testing.TB) *discovery.Result {
	t.Helper()
	f.ct.Reset()
	res := f.runner.Run(context.Background(), f.client, f.job)
	if res.Err != nil {
		t.Fatalf("run failed: %v", res.Err)
	}
	return res
}

// A rediscovery of N unchanged objects costs ceil(N/1000) list requests and no download;
// K updated objects cost exactly K downloads.
func TestRediscoveryDownloadsOnlyWhatChanged(t *testing.T) {
	const bkt, n = "incremental", 1500
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.PutN(bkt, "c/", n, func(i int) []byte { return conversationFile("agent-1", fmt.Sprintf("conv-%05d", i)) }); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "c/", quota.Quota{})
	res := f.run(t)
	if res.Listed != n || res.Ingested != n || res.Downloaded != n || res.Conversations.New != n {
		t.Fatalf("first run: %+v", res)
	}
	if lists, gets := f.ct.Count(bucket.OpListObjectsV2), f.ct.Count(bucket.OpGetObject); lists != 2 || gets != n {
		t.Fatalf("first run made %d lists and %d gets, want 2 and %d", lists, gets, n)
	}

	f.now = f.now.Add(time.Hour)
	res = f.run(t)
	if res.Unchanged != n || res.Downloaded != 0 || res.Ingested != n {
		t.Fatalf("no-change run: %+v", res)
	}
	if lists, gets := f.ct.Count(bucket.OpListObjectsV2), f.ct.Count(bucket.OpGetObject); lists != 2 || gets != 0 {
		t.Fatalf("no-change run made %d lists and %d gets, want ceil(%d/1000)=2 and 0", lists, gets, n)
	}

	const k = 3
	for i := range k {
		key := fmt.Sprintf("c/%07d.json", i*100)
		if _, err := s3.Put(bkt, key, conversationFile("agent-1", fmt.Sprintf("updated-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	f.now = f.now.Add(time.Hour)
	res = f.run(t)
	if gets := f.ct.Count(bucket.OpGetObject); gets != k || res.Downloaded != k || res.Conversations.New != k {
		t.Fatalf("after %d updates: %d gets, result %+v", k, gets, res)
	}
}

// Quota: files over the size limit are failed without download; files that do not fit
// today are deferred and not charged; after the reset they are ingested.
func TestQuotaLimitsDownloads(t *testing.T) {
	const bkt = "quota-run"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	small := conversationFile("agent-2", "s-1")
	size := int64(len(small))
	for i := range 4 {
		if _, err := s3.Put(bkt, fmt.Sprintf("q/%d.json", i), conversationFile("agent-2", fmt.Sprintf("s-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 0, 4096)
	big = append(big, '[')
	for i := range 20 {
		if i > 0 {
			big = append(big, ',')
		}
		one := conversationFile("agent-2", fmt.Sprintf("big-%02d", i))
		big = append(big, one[1:len(one)-1]...)
	}
	big = append(big, ']')
	if _, err := s3.Put(bkt, "q/big.json", big); err != nil {
		t.Fatal(err)
	}
	tight := quota.Quota{Key: "ns/tight", DailyLimit: 3 * size, MaxFileSize: size + 10, Location: time.UTC}
	f := newFixture(t, bkt, "q/", tight)
	res := f.run(t)
	if res.Listed != 5 || res.Ingested != 3 || res.Deferred != 1 || res.Failed != 1 {
		t.Fatalf("result %+v, want 3 ingested, 1 deferred, 1 failed (too large)", res)
	}
	if gets := f.ct.Count(bucket.OpGetObject); gets != 3 {
		t.Fatalf("%d downloads, want 3: the big file and the deferred one are never downloaded", gets)
	}
	used, _, err := f.store.Usage(context.Background(), tight.Key, "2026-03-10")
	if err != nil || used != 3*size {
		t.Fatalf("usage %d (err %v), want %d", used, err, 3*size)
	}

	// Same day again: nothing fits, nothing is downloaded.
	f.now = f.now.Add(time.Hour)
	res = f.run(t)
	if gets := f.ct.Count(bucket.OpGetObject); gets != 0 || res.Deferred != 1 {
		t.Fatalf("same-day rerun: %d gets, %+v", gets, res)
	}
	// After the reset the deferred file is ingested.
	f.now = time.Date(2026, 3, 11, 0, 0, 1, 0, time.UTC)
	res = f.run(t)
	if gets := f.ct.Count(bucket.OpGetObject); gets != 1 || res.Ingested != 4 || res.Deferred != 0 {
		t.Fatalf("after reset: %d gets, %+v", gets, res)
	}
}

// Cancelling a run (manager shutdown) leaves every file either fully committed or not at
// all, and no quota held.
func TestCancelledRunLeavesNothingHalfDone(t *testing.T) {
	const bkt, n = "cancelled", 300
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.PutN(bkt, "x/", n, func(i int) []byte { return conversationFile("agent-3", fmt.Sprintf("x-%04d", i)) }); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "x/", quota.Quota{})
	ctx, cancel := context.WithCancel(context.Background())
	// Shut down while downloads are in flight: at the 50th download.
	res := f.runner.Run(ctx, &cancelAt{Client: f.client, n: 50, cancel: cancel}, f.job)
	if res.Err == nil {
		t.Fatalf("a cancelled run reported success: %+v", res)
	}
	rows, err := f.store.ListFiles(context.Background(), f.job.Source, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var charged int64
	for _, row := range rows {
		if row.State != store.FileIngested {
			t.Errorf("%s is %s after a cancel, want only ingested rows (or none)", row.Key, row.State)
		}
		charged += row.Bytes
	}
	convs, err := f.store.ListConversations(context.Background(), f.job.Namespace, "agent-3", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != len(rows) {
		t.Errorf("%d conversations stored for %d ledger rows: a file was half-committed", len(convs), len(rows))
	}
	used, _, err := f.store.Usage(context.Background(), "ns/default", "2026-03-10")
	if err != nil || used != charged {
		t.Errorf("usage %d, ledger bytes %d: quota held for files that never committed", used, charged)
	}
	if len(rows) == 0 || len(rows) >= n {
		t.Errorf("%d files committed before the cancel, want some but not all", len(rows))
	}
	// A new run completes the rest.
	res = f.run(t)
	if res.Ingested != n {
		t.Fatalf("the run after the cancel ingested %d of %d", res.Ingested, n)
	}
}

// cancelAt cancels the run's context when its n-th download starts.
type cancelAt struct {
	bucket.Client
	mu     sync.Mutex
	opened int
	n      int
	cancel context.CancelFunc
}

func (c *cancelAt) Open(ctx context.Context, key string, opts ...bucket.OpenOption) (io.ReadCloser, bucket.Object, error) {
	c.mu.Lock()
	c.opened++
	if c.opened == c.n {
		c.cancel()
	}
	c.mu.Unlock()
	return c.Client.Open(ctx, key, opts...)
}

// A dry run validates and reports, stores no conversation and no ledger row, and charges
// the quota for what it downloaded.
func TestDryRunStoresNothing(t *testing.T) {
	const bkt = "dry-run"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	good := conversationFile("agent-4", "dry-1")
	if _, err := s3.Put(bkt, "d/good.json", good); err != nil {
		t.Fatal(err)
	}
	bad := []byte(`[{"conversation_id":"dry-2","timestamp":"2025-01-15T14:30:00Z","messages":[]}]`)
	if _, err := s3.Put(bkt, "d/bad.json", bad); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "d/", quota.Quota{})
	f.job.DryRun = true
	res := f.run(t)
	if res.Ingested != 1 || res.Failed != 1 || res.Downloaded != 2 {
		t.Fatalf("dry run result %+v, want 1 valid, 1 failed, 2 downloaded", res)
	}
	if _, ok, _ := f.store.GetConversation(context.Background(), f.job.Namespace, "agent-4", "dry-1"); ok {
		t.Fatal("a dry run stored a conversation")
	}
	if rows, _ := f.store.ListFiles(context.Background(), f.job.Source, "", 0); len(rows) != 0 {
		t.Fatalf("a dry run wrote %d ledger rows", len(rows))
	}
	used, _, err := f.store.Usage(context.Background(), "ns/default", "2026-03-10")
	if err != nil || used != int64(len(good)+len(bad)) {
		t.Fatalf("usage %d (err %v), want the %d bytes downloaded", used, err, len(good)+len(bad))
	}
}
