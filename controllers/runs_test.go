package controllers

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// blockingBucket lists one object and blocks its download until the context ends, like
// a stalled S3 read at shutdown. An in-process fake: only the tracker is under test.
type blockingBucket struct{ opened chan struct{} }

func (b *blockingBucket) List(_ context.Context, _ string, fn func([]bucket.Object) error, _ ...bucket.ListOption) error {
	return fn([]bucket.Object{{Key: "p/a.json", ETag: "e", Size: 10, LastModified: time.Now()}})
}

func (b *blockingBucket) Open(ctx context.Context, _ string, _ ...bucket.OpenOption) (io.ReadCloser, bucket.Object, error) {
	close(b.opened)
	<-ctx.Done()
	return nil, bucket.Object{}, &bucket.Error{Reason: bucket.ReasonCanceled, Message: "canceled", Err: ctx.Err()}
}

// On manager shutdown the tracker cancels runs in flight and waits for them; nothing of
// the cancelled download is committed or charged, and its result is not folded.
func TestRunTrackerShutdownWaitsForRuns(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tracker := newRunTracker(discovery.NewRunner(st, ingest.New(st), time.Now, 2, 2), st, 1)
	ctx, stop := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- tracker.Start(ctx) }()

	src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Generation: 1}}
	b := &blockingBucket{opened: make(chan struct{})}
	quota := quota.Quota{Key: "ns/default", DailyLimit: 1000, MaxFileSize: 100, Location: time.UTC}
	if !tracker.start(src, b, discovery.Job{Namespace: "ns", Source: "ns/s", Bucket: "b", Prefix: "p/", Quota: quota}, runTrigger{}) {
		t.Fatal("the run did not start")
	}
	if tracker.start(src, b, discovery.Job{Namespace: "ns", Source: "ns/s"}, runTrigger{}) {
		t.Fatal("a second run started for the same source")
	}
	select {
	case <-b.opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the download never started")
	}
	stop()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after shutdown")
	}
	snap := tracker.snapshot(types.NamespacedName{Namespace: "ns", Name: "s"})
	if snap.running || snap.result != nil {
		t.Fatalf("after shutdown: running=%v result=%+v", snap.running, snap.result)
	}
	used, _, err := st.Usage(context.Background(), "ns/default", time.Now().UTC().Format(time.DateOnly))
	if err != nil || used != 0 {
		t.Fatalf("usage %d (err %v) for a download cancelled before any byte", used, err)
	}
}

// On PostgreSQL a tracker starting as the new leader (or a sharded replica) leaves the
// reservations of a process still running alone: a previous leader finishing a download
// holds its source's fence and its quota, and dropping its reservation would let usage
// pass the limit when it commits. Stale reservations are dropped per source, by the run
// that takes the source's fence.
func TestRunTrackerStartKeepsLiveReservationsOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	old, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, ok, err := old.TryFence(ctx, "ns/s")
	if err != nil || !ok {
		t.Fatalf("fence: ok=%v err=%v", ok, err)
	}
	defer f.Release()
	day := time.Now().UTC().Format(time.DateOnly)
	if _, err := old.Reserve(ctx, storeapi.Reservation{Quota: "ns/default", Day: day, Source: "ns/s", Bytes: 80, Limit: 100}); err != nil {
		t.Fatal(err)
	}

	tracker := newRunTracker(discovery.NewRunner(st, ingest.New(st), time.Now, 2, 2), st, 1)
	tracker.fencer = st
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = tracker.Start(tctx) }()
	select {
	case <-tracker.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the tracker never became ready")
	}
	if _, err := st.Reserve(ctx, storeapi.Reservation{Quota: "ns/default", Day: day, Source: "ns/t", Bytes: 30, Limit: 100}); !errors.Is(err, storeapi.ErrQuotaExceeded) {
		t.Fatalf("reserving 30 of 100 beside a live 80: %v; want the quota exceeded (the live reservation was dropped)", err)
	}
}
