package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// releaseFails is a store whose next failures Releases fail (a fake for the error path;
// TestFailedReleaseRealPostgres makes a real database fail).
type releaseFails struct {
	store.Store
	failures atomic.Int32
}

func (s *releaseFails) Release(ctx context.Context, id int64) error {
	if s.failures.Add(-1) >= 0 {
		return errors.New("release: connection reset by peer")
	}
	return s.Store.Release(ctx, id)
}

// A failed quota Release does not hold the bytes for the rest of the day: it is retried
// at once, and what still failed is released by the next run. The quota fits exactly one
// copy of the file, so a held reservation would defer it.
func TestFailedReleaseDoesNotHoldQuota(t *testing.T) {
	const bkt = "release-fails"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	body := conversationFile("agent-r", "r-1")
	if _, err := s3.Put(bkt, "r/a.json", body); err != nil {
		t.Fatal(err)
	}
	for _, failures := range []int32{1, 100} {
		t.Run(fmt.Sprintf("%d failures", failures), func(t *testing.T) {
			q := quota.Quota{Key: "ns/exact", DailyLimit: int64(len(body)), MaxFileSize: 1 << 20, Location: time.UTC}
			f := newFixture(t, bkt, "r/", q)
			fake := &releaseFails{Store: f.store}
			fake.failures.Store(failures)
			f.runner = discovery.NewRunner(fake, ingest.New(fake), f.runner.Now, 1, 1)
			timeout := &failOpen{Client: f.client, err: &bucket.Error{Reason: bucket.ReasonTimeout, Message: "no progress"}}
			res := f.runner.Run(context.Background(), timeout, f.job)
			if (res.Err != nil) != (failures > 3) {
				t.Fatalf("run with %d failing releases: error %v", failures, res.Err)
			}
			fake.failures.Store(0) // the store is healthy again
			if res := f.run(t); res.Ingested != 1 || res.Deferred != 0 {
				t.Fatalf("after a failed release: %+v; the reservation still holds the quota", res)
			}
		})
	}
}

// The same against a real PostgreSQL whose first DELETE from reservations fails (a
// trigger raises once).
func TestFailedReleaseRealPostgres(t *testing.T) {
	const bkt = "release-fails-pg"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	body := conversationFile("agent-r", "r-2")
	if _, err := s3.Put(bkt, "r/a.json", body); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dsn := pgtest.Start(t)
	pg, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// nextval is not rolled back with the failed statement, so only the first DELETE fails.
	if _, err := conn.Exec(ctx, `CREATE SEQUENCE release_failures;
		CREATE FUNCTION fail_first_release() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('release_failures') = 1 THEN RAISE EXCEPTION 'injected: the release failed'; END IF;
			RETURN OLD;
		END $$;
		CREATE TRIGGER fail_first_release BEFORE DELETE ON reservations FOR EACH ROW EXECUTE FUNCTION fail_first_release();`); err != nil {
		t.Fatal(err)
	}
	q := quota.Quota{Key: "ns/exact", DailyLimit: int64(len(body)), MaxFileSize: 1 << 20, Location: time.UTC}
	f := newFixture(t, bkt, "r/", q)
	f.runner = discovery.NewRunner(pg, ingest.New(pg), f.runner.Now, 1, 1)
	timeout := &failOpen{Client: f.client, err: &bucket.Error{Reason: bucket.ReasonTimeout, Message: "no progress"}}
	if res := f.runner.Run(ctx, timeout, f.job); res.Err != nil {
		t.Fatalf("a release that failed once: %v", res.Err)
	}
	var calls int64
	if err := conn.QueryRow(ctx, `SELECT last_value FROM release_failures`).Scan(&calls); err != nil || calls < 2 {
		t.Fatalf("the trigger ran %d times (%v): the failed release was not retried", calls, err)
	}
	if res := f.run(t); res.Ingested != 1 || res.Deferred != 0 {
		t.Fatalf("after a failed release: %+v; the reservation still holds the quota", res)
	}
}
