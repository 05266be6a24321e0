package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// commitFails is a store whose CommitFile fails with err (an in-process fake for the
// error path; the real rejections are proven against both databases in storetest).
type commitFails struct {
	store.Store
	err error
}

func (s *commitFails) CommitFile(ctx context.Context, c store.FileCommit) (store.RecordCounts, error) {
	if s.err != nil {
		return store.RecordCounts{}, s.err
	}
	return s.Store.CommitFile(ctx, c)
}

// A store error while committing a file is not a download failure: an unavailable store
// fails the run and blames no file; a store that rejects the content fails the file with
// StoreRejected.
func TestStoreErrorIsNotDownloadFailed(t *testing.T) {
	const bkt = "store-error"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Put(bkt, "s/a.json", conversationFile("agent-s", "s-1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		err        error
		wantRunErr bool
		wantReason string // "" : no ledger row
	}{
		{"store unavailable", errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true, ""},
		{"content rejected", store.Rejected(errors.New("unsupported Unicode escape sequence (SQLSTATE 22P05)")), false, ingest.ReasonStoreRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, bkt, "s/", quota.Quota{})
			fake := &commitFails{Store: f.store, err: tt.err}
			f.runner = discovery.NewRunner(fake, ingest.New(fake), f.runner.Now, 1, 1)
			res := f.runner.Run(context.Background(), f.client, f.job)
			if (res.Err != nil) != tt.wantRunErr || tt.wantRunErr && !errors.Is(res.Err, discovery.ErrStore) {
				t.Fatalf("run error %v, want a store error: %v", res.Err, tt.wantRunErr)
			}
			rows, err := f.store.ListFiles(context.Background(), f.job.Source, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantReason == "" && len(rows) != 0:
				t.Fatalf("ledger %+v, want no row: the file is not to blame", rows)
			case tt.wantReason != "" && (len(rows) != 1 || rows[0].Reason != tt.wantReason || !strings.Contains(rows[0].Message, "SQLSTATE 22P05")):
				t.Fatalf("ledger %+v, want one %s row quoting the store's error", rows, tt.wantReason)
			}
			for _, r := range rows {
				if r.Reason == ingest.ReasonDownloadFailed {
					t.Errorf("%s recorded as %s", r.Key, r.Reason)
				}
			}
			if used, _, err := f.store.Usage(context.Background(), f.job.Quota.Key, "2026-03-10"); err != nil || used != 0 && tt.wantRunErr {
				t.Errorf("usage %d (%v) after a commit the store never made", used, err)
			}
		})
	}
}

// A file that fails for a reason retrying does not fix is parked after MaxFileAttempts
// attempts, is not downloaded again, and is processed again on a refresh (RetryParked)
// or when its ETag changes.
func TestRejectedFileIsParked(t *testing.T) {
	const bkt = "parked"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Put(bkt, "p/a.json", conversationFile("agent-p", "p-1")); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "p/", quota.Quota{})
	fake := &commitFails{Store: f.store, err: store.Rejected(errors.New("index row size 8016 exceeds maximum 2704 (SQLSTATE 54000)"))}
	real := f.runner
	f.runner = discovery.NewRunner(fake, ingest.New(fake), real.Now, 1, 1)
	row := func() store.FileRecord {
		t.Helper()
		r, ok, err := f.store.LookupFile(context.Background(), f.job.Source, "p/a.json")
		if err != nil || !ok {
			t.Fatalf("ledger row: %v, %v", ok, err)
		}
		return r
	}
	for i := 1; i <= discovery.DefaultMaxFileAttempts; i++ {
		f.run(t)
		want := ingest.ReasonStoreRejected
		if i == discovery.DefaultMaxFileAttempts {
			want = ingest.ReasonParked
		}
		if r := row(); r.Reason != want {
			t.Fatalf("after attempt %d: %s (%s), want %s", i, r.Reason, r.Message, want)
		}
	}
	msg := row().Message
	for _, part := range []string{"parked after 3 failed attempts", "SQLSTATE 54000", "refresh-requested-at"} {
		if !strings.Contains(msg, part) {
			t.Errorf("parked message %q does not say %q", msg, part)
		}
	}
	// Parked: not downloaded again, even when a spec change rechecks failed files.
	f.job.RecheckFailed = true
	if res := f.run(t); f.ct.Count(bucket.OpGetObject) != 0 || res.Failed != 1 {
		t.Fatalf("a parked file was downloaded again: %d gets, %+v", f.ct.Count(bucket.OpGetObject), res)
	}
	f.job.RecheckFailed = false

	// A refresh retries it, with its attempts counted from zero: rejected again, it is
	// StoreRejected (attempt 1), not parked at once.
	f.job.RetryParked = true
	f.run(t)
	if r := row(); r.Reason != ingest.ReasonStoreRejected || f.ct.Count(bucket.OpGetObject) != 1 {
		t.Fatalf("after a refresh: %s, %d gets; want StoreRejected after one download", r.Reason, f.ct.Count(bucket.OpGetObject))
	}
	f.job.RetryParked = false
	f.run(t)
	f.run(t)
	if r := row(); r.Reason != ingest.ReasonParked {
		t.Fatalf("after three more rejections: %s, want Parked", r.Reason)
	}
	// A new version is downloaded again; with a working store it is ingested.
	if _, err := s3.Put(bkt, "p/a.json", conversationFile("agent-p", "p-2")); err != nil {
		t.Fatal(err)
	}
	f.runner = real
	if res := f.run(t); res.Ingested != 1 || row().Reason != ingest.ReasonIngested {
		t.Fatalf("a new version of a parked file: %+v, row %+v", res, row())
	}
}

// Transient download failures are retried on every run and never park a file.
func TestTransientDownloadFailuresAreNotParked(t *testing.T) {
	const bkt = "transient"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Put(bkt, "t/a.json", conversationFile("agent-t", "t-1")); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "t/", quota.Quota{})
	flaky := &failOpen{Client: f.client, err: &bucket.Error{Reason: bucket.ReasonTimeout, Message: "the download made no progress for 30s"}}
	for i := range 2 * discovery.DefaultMaxFileAttempts {
		f.runner.Run(context.Background(), flaky, f.job)
		r, _, _ := f.store.LookupFile(context.Background(), f.job.Source, "t/a.json")
		if r.Reason != ingest.ReasonDownloadFailed {
			t.Fatalf("after failed download %d: %s, want DownloadFailed", i+1, r.Reason)
		}
	}
	if res := f.run(t); res.Ingested != 1 {
		t.Fatalf("once S3 answers: %+v", res)
	}
}

// failOpen fails every download with err.
type failOpen struct {
	bucket.Client
	err error
}

func (c *failOpen) Open(context.Context, string, ...bucket.OpenOption) (io.ReadCloser, bucket.Object, error) {
	return nil, bucket.Object{}, c.err
}

// crashChildEnv makes the test binary a discovery process that is killed (SIGKILL) in
// its first commit: a file that kills the manager, as out-of-memory would.
const crashChildEnv = "DISCOVERY_CRASH_CHILD"

func crashChild() {
	cfg := strings.Split(os.Getenv(crashChildEnv), "\n") // db, endpoint, user, password, bucket, prefix
	st, err := sqlite.Open(context.Background(), cfg[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	client, err := bucket.New(context.Background(), bucket.Config{
		Bucket: cfg[4], Endpoint: cfg[1], ForcePathStyle: true, Region: minio.Region,
		Credentials: &bucket.StaticCredentials{AccessKeyID: cfg[2], SecretAccessKey: cfg[3]},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	killer := &killInCommit{Store: st}
	r := discovery.NewRunner(killer, ingest.New(killer), time.Now, 1, 1)
	q := quota.Quota{Key: "ns/default", DailyLimit: 500_000_000, MaxFileSize: 50_000_000, Location: time.UTC}
	res := r.Run(context.Background(), client, discovery.Job{Namespace: "ns", Source: "ns/" + cfg[4], Bucket: cfg[4], Prefix: cfg[5], Quota: q, Policy: ingest.SkipFile})
	fmt.Fprintf(os.Stderr, "the run finished without a commit: %+v\n", res)
	os.Exit(3)
}

type killInCommit struct{ store.Store }

func (k *killInCommit) CommitFile(context.Context, store.FileCommit) (store.RecordCounts, error) {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// A file that kills the manager while it is processed is parked after MaxFileAttempts
// restarts, without a further download: the attempts were counted before processing.
func TestFileThatKillsTheProcessIsParked(t *testing.T) {
	const bkt = "killer"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Put(bkt, "k/a.json", conversationFile("agent-k", "k-1")); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "k/", quota.Quota{})
	db := filepath.Join(t.TempDir(), "crash.db")
	for i := range discovery.DefaultMaxFileAttempts {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+strings.Join([]string{db, s3.Endpoint, s3.RootUser, s3.RootPassword, bkt, "k/"}, "\n"))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: %v, want killed by SIGKILL; output:\n%s", i+1, err, out)
		}
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f.store = st
	f.runner = discovery.NewRunner(st, ingest.New(st), f.runner.Now, 1, 1)
	res := f.run(t)
	if gets := f.ct.Count(bucket.OpGetObject); gets != 0 || res.Failed != 1 {
		t.Fatalf("after %d killed runs: %d downloads, %+v; want the file parked without a download", discovery.DefaultMaxFileAttempts, gets, res)
	}
	r, _, _ := st.LookupFile(context.Background(), f.job.Source, "k/a.json")
	if r.Reason != ingest.ReasonParked || !strings.Contains(r.Message, "parked after 3 failed attempts") || !strings.Contains(r.Message, "crashed") {
		t.Fatalf("ledger row %+v, want Parked after 3 attempts", r)
	}
	// Asked to retry, it is processed again (this process survives its commit).
	f.job.RetryParked = true
	if res := f.run(t); res.Ingested != 1 {
		t.Fatalf("retry of a parked file: %+v", res)
	}
}
