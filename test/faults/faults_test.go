package faults

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/failpoint"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/backend"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// scenario is one fault: a manager armed at a failpoint, and what the suite does once
// the manager holds there.
type scenario struct {
	name    string
	backend string // "sqlite" or "postgres"
	// point and match arm the failpoint; an empty point is the fault-free run.
	point, match string
	// before, when set, runs once the S3Source exists and before the failpoint is awaited.
	before func(t *testing.T, r *rig)
	// fault injects the fault and restarts what it killed; it returns how many faults it
	// injected.
	fault func(t *testing.T, r *rig) int
}

// rig is one scenario's store, spool directory and manager.
type rig struct {
	dsn, spool, log string
	mgr             *manager
	fp              *armed
	// since is when the import may settle: after the restart or the retry.
	since   time.Time
	refresh string
	days    map[string]bool
	// objects is how many objects the bucket holds under the prefix.
	objects int
	// previous is when the discovery before the interrupted one finished.
	previous *metav1.Time
}

func TestFaultInjection(t *testing.T) {
	bySQLite := []scenario{
		{name: "manager killed during downloads", backend: "sqlite", point: failpoint.Download, fault: killManager},
		{name: "manager killed during a commit (SQLite WAL recovery)", backend: "sqlite", point: failpoint.Commit, match: bigKey, fault: killManager},
		{name: "manager killed between commit and status patch", backend: "sqlite", point: failpoint.RunFinished, fault: killManager},
		{name: "MinIO killed during a download", backend: "sqlite", point: failpoint.Download, match: bigKey, fault: killMinIO},
		{name: "manager killed during a commit, then again during the recovery's download", backend: "sqlite",
			point: failpoint.Commit, match: bigKey, fault: killManagerTwice},
	}
	byPostgres := []scenario{
		{name: "PostgreSQL stopped during a commit", backend: "postgres", point: failpoint.Commit, match: bigKey, fault: crashPostgres},
		{name: "manager killed during downloads", backend: "postgres", point: failpoint.Download, fault: killManager},
		{name: "manager killed during a commit", backend: "postgres", point: failpoint.Commit, match: bigKey, fault: killManager},
		{name: "manager killed between commit and status patch", backend: "postgres", point: failpoint.RunFinished, fault: killManager},
		{name: "manager killed during a download, then again during the recovery's commit", backend: "postgres",
			point: failpoint.Download, match: bigKey, fault: killManagerTwice},
	}
	var faults, mismatches int
	report := func(t *testing.T, bad []string) {
		t.Helper()
		for _, b := range bad {
			t.Error(b)
		}
		mismatches += len(bad)
	}

	var sqliteBase, pgBase *snapshot
	t.Run("fault-free/sqlite", func(t *testing.T) {
		sqliteBase, _ = runScenario(t, scenario{backend: "sqlite"})
		report(t, sqliteBase.invariants())
	})
	if sqliteBase == nil {
		t.Fatal("the fault-free SQLite run did not complete")
	}
	for _, sc := range bySQLite {
		t.Run("sqlite/"+sc.name, func(t *testing.T) {
			got, n := runScenario(t, sc)
			faults += n
			report(t, diff(sqliteBase, got))
			logCounters(t, sqliteBase, got)
		})
	}
	t.Run("fault-free/postgres", func(t *testing.T) {
		pgBase, _ = runScenario(t, scenario{backend: "postgres"})
		// Both stores hold the same import.
		report(t, diff(sqliteBase, pgBase))
	})
	if pgBase == nil {
		t.Fatal("the fault-free PostgreSQL run did not complete")
	}
	for _, sc := range byPostgres {
		t.Run("postgres/"+sc.name, func(t *testing.T) {
			got, n := runScenario(t, sc)
			faults += n
			report(t, diff(pgBase, got))
			logCounters(t, pgBase, got)
		})
	}

	// A discovery after the first one, killed: objects uploaded after the first import.
	late := lateObjects()
	var lateBase *snapshot
	t.Run("fault-free/sqlite with objects uploaded later", func(t *testing.T) {
		putObjects(t, late)
		lateBase, _ = runScenario(t, scenario{backend: "sqlite"})
		report(t, lateBase.invariants())
	})
	if lateBase == nil {
		t.Fatal("the fault-free SQLite run with the later objects did not complete")
	}
	t.Run("sqlite/manager killed during a later discovery's commit", func(t *testing.T) {
		got, n := runScenario(t, scenario{backend: "sqlite", point: failpoint.Commit, match: prefix + "late-",
			before: func(t *testing.T, r *rig) {
				r.previous = settle(context.Background(), t, r).Status.LastDiscoveryTime
				putObjects(t, late)
				r.objects += len(late)
				requestRefresh(t, r)
			},
			fault: killManagerExpectResume})
		faults += n
		report(t, diff(lateBase, got))
		logCounters(t, lateBase, got)
	})

	line := fmt.Sprintf("faults injected: %d, files: %d, conversations: %d, mismatches: %d",
		faults, len(w.objects)+len(late), len(lateBase.conversations), mismatches)
	t.Log(line)
	fmt.Println(line)
}

var scenarios int

// runScenario imports the corpus into a fresh store, injecting sc's fault, waits until
// the import settled and returns what it left.
func runScenario(t *testing.T, sc scenario) (*snapshot, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	scenarios++
	dir := t.TempDir()
	keys, err := w.s3.ListKeys(bucketName, prefix)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{spool: filepath.Join(dir, "spool"), log: filepath.Join(dir, "manager.log"), days: map[string]bool{today(): true}, objects: len(keys)}
	if err := os.Mkdir(r.spool, 0o700); err != nil {
		t.Fatal(err)
	}
	switch sc.backend {
	case "sqlite":
		r.dsn = "sqlite://" + filepath.Join(dir, "store.db")
	case "postgres":
		var err error
		if r.dsn, err = w.pg.CreateDurableDatabase(ctx, "scenario_"+strconv.Itoa(scenarios)); err != nil {
			t.Fatal(err)
		}
	}
	bin := w.manager
	if sc.point != "" {
		bin = w.faulty
		r.fp = &armed{point: sc.point, match: sc.match, dir: filepath.Join(dir, "failpoints")}
		if err := os.Mkdir(r.fp.dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r.mgr = startManager(t, bin, r.dsn, r.spool, r.log, r.fp)
	defer func() {
		// The manager removes the ledger and the finalizer; the next scenario starts clean.
		deleteSource(ctx, t, r)
		r.mgr.stop(t)
	}()
	r.since = time.Now()
	createSource(ctx, t)
	injected := 0
	if sc.before != nil {
		sc.before(t, r)
	}
	if sc.point != "" {
		detail := waitHit(ctx, t, r)
		t.Logf("the manager holds at failpoint %s (%s)", sc.point, detail)
		injected = sc.fault(t, r)
	}
	src := settle(ctx, t, r)
	r.days[today()] = true
	snap, err := takeSnapshot(ctx, r.dsn, spoolDirOf(r.spool), slices.Sorted(maps.Keys(r.days)), src)
	if err != nil {
		t.Fatalf("reading what the import left: %v", err)
	}
	return snap, injected
}

func createSource(ctx context.Context, t *testing.T) {
	t.Helper()
	src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: sourceName}, Spec: v1.S3SourceSpec{
		Bucket: bucketName, Prefix: prefix, Region: minio.Region, Endpoint: w.s3.Endpoint, ForcePathStyle: true,
		QuotaRef:    quotaName,
		Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "s3-credentials"}},
	}}
	if err := w.kube.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
}

// deleteSource deletes the S3Source and waits until the manager let it go; a manager
// that cannot (the scenario failed) has the finalizer removed for it.
func deleteSource(ctx context.Context, t *testing.T, r *rig) {
	key := client.ObjectKey{Namespace: namespace, Name: sourceName}
	src := &v1.S3Source{}
	if err := w.kube.Get(ctx, key, src); apierrors.IsNotFound(err) {
		return
	}
	_ = w.kube.Delete(context.Background(), src)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := w.kube.Get(context.Background(), key, src); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("the manager did not remove the deleted S3Source's finalizer within 30s:\n%s", tail(r.log))
	src.Finalizers = nil
	_ = w.kube.Update(context.Background(), src)
}

// waitHit waits until the manager holds at the armed failpoint and returns its detail.
func waitHit(ctx context.Context, t *testing.T, r *rig) string {
	t.Helper()
	hit := filepath.Join(r.fp.dir, failpoint.HitFile(r.fp.point))
	for {
		if b, err := os.ReadFile(hit); err == nil {
			return string(b)
		}
		select {
		case <-r.mgr.done:
			t.Fatalf("the manager exited before failpoint %s:\n%s", r.fp.point, tail(r.log))
		case <-ctx.Done():
			t.Fatalf("the manager never reached failpoint %s:\n%s", r.fp.point, tail(r.log))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// release lets the manager go on from the failpoint.
func release(t *testing.T, r *rig) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.fp.dir, failpoint.ReleaseFile(r.fp.point)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// killManager kills the manager held at the failpoint with SIGKILL and starts the
// production build on the same store and spool directory.
func killManager(t *testing.T, r *rig) int {
	kill(t, r)
	r.mgr = startManager(t, w.manager, r.dsn, r.spool, r.log, nil)
	return 1
}

// killManagerTwice kills the manager held at the failpoint, restarts it armed at the
// other point (Commit after a Download, Download after a Commit), kills it there too,
// then starts the production build: a crash during the recovery from a crash.
func killManagerTwice(t *testing.T, r *rig) int {
	kill(t, r)
	next := failpoint.Download
	if r.fp.point == failpoint.Download {
		next = failpoint.Commit
	}
	r.fp = &armed{point: next, dir: filepath.Join(r.fp.dir, "again")}
	if err := os.Mkdir(r.fp.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r.mgr = startManager(t, w.faulty, r.dsn, r.spool, r.log, r.fp)
	t.Logf("restarted; the manager holds at failpoint %s (%s)", next, waitHit(context.Background(), t, r))
	kill(t, r)
	r.mgr = startManager(t, w.manager, r.dsn, r.spool, r.log, nil)
	return 2
}

// killManagerExpectResume kills the manager held in a discovery that is not the source's
// first and restarts it. The restarted manager should resume the interrupted discovery by
// itself; when no discovery finished within resumeWait, the suite says so and asks for a
// refresh
// (issue #9 section 3: the refresh was already marked handled and status shows the
// previous run, so the files would wait for the next interval).
func killManagerExpectResume(t *testing.T, r *rig) int {
	n := killManager(t, r)
	deadline := time.Now().Add(resumeWait)
	for time.Now().Before(deadline) {
		src := &v1.S3Source{}
		if err := w.kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: sourceName}, src); err != nil {
			t.Fatal(err)
		}
		// Not Reconciling=DiscoveryRunning: the killed manager patched that when the run
		// started, and it stays until a run finishes.
		if src.Status.LastDiscoveryTime != nil && src.Status.LastDiscoveryTime.After(r.previous.Time) {
			t.Log("the restarted manager resumed the interrupted discovery by itself")
			return n
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the restarted manager did not resume the interrupted discovery within %s (issue #9 section 3); asking for a refresh", resumeWait)
	requestRefresh(t, r)
	return n
}

// resumeWait is how long a restarted manager is given to finish the interrupted discovery
// by itself; the remaining files take a few seconds.
const resumeWait = 20 * time.Second

// putObjects uploads objs, and removes them when the test ends so later scenarios see the
// corpus alone.
func putObjects(t *testing.T, objs []object) {
	t.Helper()
	for _, o := range objs {
		if _, err := w.s3.Put(bucketName, o.key, o.body); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.s3.Delete(bucketName, o.key) })
	}
}

// kill kills the manager held at its failpoint with SIGKILL.
func kill(t *testing.T, r *rig) {
	t.Helper()
	r.mgr.kill()
	left := spoolFiles(t, r)
	if r.fp.point == failpoint.Download && len(left) == 0 {
		t.Errorf("the manager was killed during a download, but the spool directory holds no partial download")
	}
	wal := ""
	if path, ok := strings.CutPrefix(r.dsn, "sqlite://"); ok {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		wal = fmt.Sprintf("; the SQLite WAL holds %d bytes", fi.Size())
		// The large file's transaction outgrew SQLite's page cache: its uncommitted pages
		// are in the WAL, which the next open must discard.
		if r.fp.point == failpoint.Commit && r.fp.match == bigKey && fi.Size() < bigRecords*1000 {
			t.Errorf("killed inside the commit of %s, but the WAL holds only %d bytes: the transaction did not reach it", bigKey, fi.Size())
		}
	}
	t.Logf("killed with SIGKILL; the spool directory holds %v%s", left, wal)
	r.since = time.Now()
}

// logCounters shows status.conversationsIngested beside the store: a lifetime counter
// folded from run results, so a run killed before its status patch is not counted
// (issue #9 section 3 makes it crash-safe; this suite does not compare it yet).
func logCounters(t *testing.T, want, got *snapshot) {
	t.Helper()
	t.Logf("status.conversationsIngested %d (fault-free %d); the store holds %d conversations",
		got.statusConversations, want.statusConversations, len(got.conversations))
}

// killMinIO kills MinIO during a download, lets the run fail the files it was reading,
// restarts MinIO on the same data and port and asks for a discovery.
func killMinIO(t *testing.T, r *rig) int {
	w.s3.Kill()
	restarted := false
	defer func() {
		if !restarted {
			_ = w.s3.Restart() // later scenarios need it
		}
	}()
	release(t, r)
	// The run ends once every file is committed or failed: status shows it.
	src := waitSource(t, r, "the run interrupted by the outage to finish", func(src *v1.S3Source) bool {
		return src.Status.LastDiscoveryTime != nil
	})
	row := ledgerRow(t, r, bigKey)
	if row.State != store.FileFailed || row.Reason != "DownloadFailed" {
		t.Errorf("after MinIO was killed during its download, %s is %s/%s (%s), want failed/DownloadFailed: the kill did not interrupt the download",
			bigKey, row.State, row.Reason, row.Message)
	}
	t.Logf("MinIO killed: the run finished with %+v; %s: %s", src.Status.Files, bigKey, row.Message)
	if err := w.s3.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	// Failed downloads are retried at the next discovery, an interval away: ask for it.
	requestRefresh(t, r)
	return 1
}

// crashPostgres stops PostgreSQL in immediate mode while the manager is inside a commit,
// lets the commit fail, restarts PostgreSQL on the same data and asks for a discovery.
func crashPostgres(t *testing.T, r *rig) int {
	w.pg.Crash()
	restarted := false
	defer func() {
		if !restarted {
			_ = w.pg.Restart(context.Background())
		}
	}()
	release(t, r)
	waitSource(t, r, "the run to fail on the store", func(src *v1.S3Source) bool {
		return meta.IsStatusConditionFalse(src.Status.Conditions, v1.ConditionReady)
	})
	if err := w.pg.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	// The failed run is retried after a backoff of 30s or more: ask for it now.
	requestRefresh(t, r)
	return 1
}

func requestRefresh(t *testing.T, r *rig) {
	t.Helper()
	r.since = time.Now()
	r.refresh = strconv.FormatInt(r.since.UnixNano(), 10)
	src := &v1.S3Source{}
	if err := w.kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: sourceName}, src); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(src.DeepCopy())
	if src.Annotations == nil {
		src.Annotations = map[string]string{}
	}
	src.Annotations[v1.RefreshAnnotation] = r.refresh
	if err := w.kube.Patch(context.Background(), src, patch); err != nil {
		t.Fatal(err)
	}
}

// settle waits until a discovery after r.since finished with every object of the
// corpus in a final state: no download left to retry, no run in flight.
func settle(ctx context.Context, t *testing.T, r *rig) *v1.S3Source {
	t.Helper()
	since := metav1.NewTime(r.since.Truncate(time.Second))
	return waitSource(t, r, "the import to settle", func(src *v1.S3Source) bool {
		st := src.Status
		f := st.Files
		if st.LastDiscoveryTime == nil || st.LastDiscoveryTime.Before(&since) || f == nil ||
			!meta.IsStatusConditionTrue(st.Conditions, v1.ConditionReady) ||
			meta.IsStatusConditionTrue(st.Conditions, v1.ConditionReconciling) ||
			(r.refresh != "" && st.LastHandledRefresh != r.refresh) ||
			f.Discovered != int64(r.objects) || f.Deferred != 0 || f.Ingested+f.Failed+f.Ignored != f.Discovered {
			return false
		}
		for _, e := range st.RecentFileErrors {
			if e.Reason == "DownloadFailed" {
				return false // retried by the next discovery
			}
		}
		return true
	})
}

// waitSource polls the S3Source until done, for at most two minutes.
func waitSource(t *testing.T, r *rig, what string, done func(*v1.S3Source) bool) *v1.S3Source {
	t.Helper()
	key := client.ObjectKey{Namespace: namespace, Name: sourceName}
	deadline := time.Now().Add(2 * time.Minute)
	src := &v1.S3Source{}
	for {
		if err := w.kube.Get(context.Background(), key, src); err != nil {
			t.Fatal(err)
		}
		if done(src) {
			return src
		}
		select {
		case <-r.mgr.done:
			t.Fatalf("the manager exited while waiting for %s:\n%s", what, tail(r.log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 2m for %s; status: %+v\n%s", what, src.Status, tail(r.log))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ledgerRow(t *testing.T, r *rig, key string) store.FileRecord {
	t.Helper()
	st, err := backend.Open(context.Background(), r.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	row, ok, err := st.LookupFile(context.Background(), namespace+"/"+sourceName, key)
	if err != nil || !ok {
		t.Fatalf("ledger row of %s: found %v, %v", key, ok, err)
	}
	return row
}

func spoolFiles(t *testing.T, r *rig) []string {
	t.Helper()
	entries, err := os.ReadDir(spoolDirOf(r.spool))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
