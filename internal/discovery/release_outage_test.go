package discovery_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// outage is a store whose commits and releases fail while down, as during a database
// outage that starts after a download reserved its quota. (The real outage, PostgreSQL
// stopped during a commit, is in test/faults.)
type outage struct {
	store.Store
	down atomic.Bool
}

var errOutage = errors.New("connection refused")

func (o *outage) CommitFile(ctx context.Context, c store.FileCommit) (store.RecordCounts, error) {
	if o.down.Load() {
		return store.RecordCounts{}, errOutage
	}
	return o.Store.CommitFile(ctx, c)
}

func (o *outage) Release(ctx context.Context, id int64) error {
	if o.down.Load() {
		return errOutage
	}
	return o.Store.Release(ctx, id)
}

// A reservation whose release failed during an outage is released by the next run, not
// held until the manager restarts: the file it was for fits in the quota again.
func TestFailedReleaseIsRetriedByTheNextRun(t *testing.T) {
	const bkt = "release-retry"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	body := conversationFile("agent-1", "r-1")
	if _, err := s3.Put(bkt, "r/1.json", body); err != nil {
		t.Fatal(err)
	}
	size := int64(len(body))
	// Room for the file once, not for it and a stale hold of it.
	f := newFixture(t, bkt, "r/", quota.Quota{Key: "ns/default", DailyLimit: size * 3 / 2, MaxFileSize: size, Location: time.UTC})
	st := &outage{Store: f.store}
	f.runner.Store, f.runner.Engine.Store = st, st

	st.down.Store(true)
	if res := f.runner.Run(context.Background(), f.client, f.job); res.Err == nil || res.Ingested != 0 {
		t.Fatalf("run during the outage: %+v, want a store error and nothing ingested", res)
	}
	st.down.Store(false)
	f.now = f.now.Add(time.Minute)
	res := f.run(t)
	if res.Ingested != 1 || res.Deferred != 0 {
		t.Fatalf("run after the outage: %d ingested, %d deferred; want the file ingested, not deferred by the stale hold: %+v",
			res.Ingested, res.Deferred, res)
	}
	day, _ := f.job.Quota.Window(f.now)
	if used, _, err := f.store.Usage(context.Background(), f.job.Quota.Key, day); err != nil || used != size {
		t.Fatalf("usage %d, %v; want the file's %d bytes charged once", used, err, size)
	}
}
