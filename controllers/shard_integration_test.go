package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/shard"
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// runLog records, across replicas, who holds each source's fence and every store write
// made for a source, and flags a write made without the fence or two holders at once.
type runLog struct {
	mu         sync.Mutex
	holders    map[string]map[string]int // source → replica → fences held
	runs       map[string]int            // replica → fences taken (runs)
	refused    int                       // fences refused because another replica held them
	violations []string
}

func (l *runLog) acquired(replica, source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holders[source] == nil {
		l.holders[source] = map[string]int{}
	}
	for other, n := range l.holders[source] {
		if other != replica && n > 0 {
			l.violations = append(l.violations, fmt.Sprintf("%s runs %s while %s still does", replica, source, other))
		}
	}
	l.holders[source][replica]++
	l.runs[replica]++
}

func (l *runLog) released(replica, source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holders[source][replica]--
}

func (l *runLog) wrote(replica, source, op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holders[source][replica] <= 0 {
		l.violations = append(l.violations, fmt.Sprintf("%s: %s of %s outside a run holding its fence", replica, op, source))
	}
}

// recordingStore is one replica's PostgreSQL store, reporting to the runLog. Fences are
// logged as taken after the lock is held and as released before it is given back, so
// two logged holders at once are two real ones.
type recordingStore struct {
	*postgres.Store
	replica string
	log     *runLog
	// hold, when set, keeps every CommitFile from starting until it is closed, whatever
	// its context says (a commit already on its way to the server); entered is closed
	// when the first one waits.
	hold, entered chan struct{}
	enterOnce     sync.Once
}

func (s *recordingStore) TryFence(ctx context.Context, source string) (storeapi.Fence, bool, error) {
	f, ok, err := s.Store.TryFence(ctx, source)
	if err != nil || !ok {
		if err == nil {
			s.log.mu.Lock()
			s.log.refused++
			s.log.mu.Unlock()
		}
		return f, ok, err
	}
	s.log.acquired(s.replica, source)
	return &recordedFence{Fence: f, release: func() { s.log.released(s.replica, source) }}, true, nil
}

func (s *recordingStore) Reserve(ctx context.Context, r storeapi.Reservation) (int64, error) {
	s.log.wrote(s.replica, r.Source, "Reserve")
	return s.Store.Reserve(ctx, r)
}

func (s *recordingStore) RecordFile(ctx context.Context, f storeapi.FileRecord) error {
	s.log.wrote(s.replica, f.Source, "RecordFile")
	return s.Store.RecordFile(ctx, f)
}

func (s *recordingStore) CommitFile(ctx context.Context, c storeapi.FileCommit) (storeapi.RecordCounts, error) {
	s.log.wrote(s.replica, c.File.Source, "CommitFile")
	if s.hold != nil {
		s.enterOnce.Do(func() { close(s.entered) })
		<-s.hold
		// Already on its way to the server: it completes whatever its run's context says.
		ctx = context.WithoutCancel(ctx)
	}
	return s.Store.CommitFile(ctx, c)
}

type recordedFence struct {
	storeapi.Fence
	once    sync.Once
	release func()
}

func (f *recordedFence) Release() {
	f.once.Do(f.release)
	f.Fence.Release()
}

// startShardedManager runs one replica: both controllers for ns on st, with a shard
// elector holding Leases in leaseNS on the real clock (short durations, so a test
// rebalances within seconds). The discovery clock stays the suite's fake clock.
func startShardedManager(ctx context.Context, t *testing.T, st storeapi.Store, ns, leaseNS, id string, shards int) *replica {
	t.Helper()
	leases, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return startShardedManagerWith(ctx, t, st, ns, leaseNS, id, shards, leases)
}

// replica is a running sharded manager: its elector and its own metrics registry.
type replica struct {
	stop    func()
	elector *shard.Elector
	reg     *prometheus.Registry
}

// hasSeries reports whether the replica exports the metric for a source.
func (r *replica) hasSeries(t *testing.T, metric, ns, name string) bool {
	t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["source"] == name {
				return true
			}
		}
	}
	return false
}

// startShardedManagerWith is startShardedManager with the elector's Lease client given.
func startShardedManagerWith(ctx context.Context, t *testing.T, st storeapi.Store, ns, leaseNS, id string, shards int, leases client.Client) *replica {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:     env.Scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller: ctrlConfigSkipNameValidation(),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	replicaMetrics := controllers.NewMetrics(reg)
	src := &controllers.S3SourceReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("data-import-operator"), Store: st, Clock: clk, Metrics: replicaMetrics,
		Ceilings: suiteCeilings, Identity: controllers.IdentityOptions{STSEndpoint: s3.Endpoint, ReferenceRecheck: time.Second},
	}
	elector, err := shard.New(shard.Options{
		Client: leases, Namespace: leaseNS, Identity: id, Shards: shards,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RenewPeriod: 300 * time.Millisecond,
		OnAcquired: src.ShardAcquired, OnReleasing: src.ShardReleasing, Log: ctrl.Log.WithName(id),
	})
	if err != nil {
		t.Fatal(err)
	}
	src.Shards = elector
	policy, err := suitePolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A spool directory per replica, as each pod has its own: a manager starting removes
	// what it finds there as a killed process's.
	if err := src.SetupWithManager(mgr, controllers.SourceOptions{ConcurrentSources: 2, ConcurrentFiles: 4, FilesPerSource: 2, SpoolDir: t.TempDir(), EndpointPolicy: policy}); err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.IngestionQuotaReconciler{Client: mgr.GetClient(), Store: st, Clock: clk, Metrics: replicaMetrics, Ceilings: suiteCeilings}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	return &replica{elector: elector, reg: reg, stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager %s: %v", id, err)
		}
	}}
}

// Two replicas on one PostgreSQL share the sources of a namespace while files keep
// arriving and the shards keep moving (the second replica stops and starts again; shard
// Leases are deleted under their holders). No source is ever run by both replicas at
// once, no write for a source happens outside its run, the quota is never exceeded, and
// the store ends equal to a single replica's run of the same objects (on SQLite).
func TestShardedReplicasRebalanceDuringUploads(t *testing.T) {
	const (
		ns, refNS, leaseNS, bkt = "sharded", "sharded-ref", "sharded-leases", "sharded"
		sources, rounds, shards = 6, 8, 8
	)
	ctx := context.Background()
	for _, n := range []string{ns, refNS, leaseNS} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	createBucket(t, bkt)
	limit := resource.MustParse("50M")
	zero := metav1.Duration{}
	for _, n := range []string{ns, refNS} {
		createQuota(t, n, "default", v1.IngestionQuotaSpec{DailyLimit: &limit, RefreshCooldown: &zero})
	}

	dsn := pgtest.Start(t)
	log := &runLog{holders: map[string]map[string]int{}, runs: map[string]int{}}
	open := func(id string) *recordingStore {
		pg, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pg.Close() })
		return &recordingStore{Store: pg, replica: id, log: log}
	}
	stA, stB := open("a"), open("b")
	repA := startShardedManager(ctx, t, stA, ns, leaseNS, "a", shards)
	defer func() { repA.stop() }()
	repB := startShardedManager(ctx, t, stB, ns, leaseNS, "b", shards)
	bRunning := true
	defer func() {
		if bRunning {
			repB.stop()
		}
	}()

	// The quota's usage, sampled all along, never passes its limit.
	day := clk.Now().UTC().Format("2006-01-02")
	var maxUsed int64
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			if used, _, err := stA.Store.Usage(ctx, ns+"/default", day); err == nil && used > maxUsed {
				maxUsed = used
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	names := make([]string, sources)
	for i := range names {
		names[i] = fmt.Sprintf("src-%d", i)
		newSource(t, ns, names[i], bkt, names[i]+"/", nil)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	objects := 0
	for round := range rounds {
		for i, name := range names {
			// Each round adds a file per source; conversations recur across rounds and
			// sources (agent "shared"), newer versions replacing older ones.
			var convs []map[string]any
			for c := range 4 {
				ts := fmt.Sprintf("2025-01-%02dT10:%02d:00Z", 1+round, c)
				convs = append(convs, conversation("shared", fmt.Sprintf("c-%d", (round+c+i)%10), ts, fmt.Sprintf("r%d s%d c%d", round, i, c)))
				convs = append(convs, conversation(name, fmt.Sprintf("own-%d-%d", round, c), ts, "own"))
			}
			put(t, bkt, fmt.Sprintf("%s/r%02d.jsonl", name, round), jsonLines(t, convs...))
			objects++
			setAnnotation(t, ns, name, v1.RefreshAnnotation, fmt.Sprintf("round-%d", round))
		}
		// Move shards while those runs go.
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		switch round % 3 {
		case 0:
			repB.stop()
			bRunning = false
		case 1:
			repB = startShardedManager(ctx, t, stB, ns, leaseNS, "b", shards)
			bRunning = true
		case 2:
			var leases coordinationv1.LeaseList
			if err := k8s.List(ctx, &leases, client.InNamespace(leaseNS), client.MatchingLabels{shard.LabelRole: "shard"}); err != nil {
				t.Fatal(err)
			}
			for _, l := range leases.Items {
				if rng.IntN(2) == 0 {
					_ = k8s.Delete(ctx, &l)
				}
			}
		}
	}
	if !bRunning {
		repB = startShardedManager(ctx, t, stB, ns, leaseNS, "b", shards)
		bRunning = true
	}
	// One last refresh picks up everything uploaded; wait until every source handled it.
	for _, name := range names {
		setAnnotation(t, ns, name, v1.RefreshAnnotation, "final")
	}
	perSource := rounds
	for _, name := range names {
		eventually(t, ns+"/"+name+" handled the final refresh", func() error {
			src := getSource(t, ns, name)
			if src.Status.LastHandledRefresh != "final" || meta.IsStatusConditionTrue(src.Status.Conditions, v1.ConditionReconciling) {
				return fmt.Errorf("lastHandledRefresh %q, conditions %v", src.Status.LastHandledRefresh, src.Status.Conditions)
			}
			if f := src.Status.Files; f == nil || f.Ingested != int64(perSource) {
				return fmt.Errorf("files %+v, want %d ingested", src.Status.Files, perSource)
			}
			return nil
		})
	}
	stopSampling()
	<-sampled
	// Each source's series live on the replica serving it, and only there.
	const lastSuccess = "dataimport_last_successful_discovery_timestamp_seconds"
	for _, name := range names {
		eventually(t, ns+"/"+name+"'s metrics on its owner only", func() error {
			key := ns + "/" + name
			for _, r := range []*replica{repA, repB} {
				if owns, has := r.elector.Owns(key), r.hasSeries(t, lastSuccess, ns, name); owns != has {
					return fmt.Errorf("replica owning it: %v, exporting %s: %v", owns, lastSuccess, has)
				}
			}
			return nil
		})
	}

	// The single-replica reference: the same objects, one manager, SQLite.
	ref, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	stopRef, err := startManager(ctx, ref, []string{refNS}, suiteCeilings)
	if err != nil {
		t.Fatal(err)
	}
	defer stopRef()
	for _, name := range names {
		s := newSource(t, refNS, name, bkt, name+"/", nil)
		eventually(t, refNS+"/"+name+" ingested", func() error {
			src := getSource(t, refNS, s.Name)
			if f := src.Status.Files; f == nil || f.Ingested != int64(perSource) {
				return fmt.Errorf("files %+v", src.Status.Files)
			}
			return nil
		})
	}

	log.mu.Lock()
	violations, runs, refused := log.violations, fmt.Sprint(log.runs), log.refused
	log.mu.Unlock()
	for _, v := range violations {
		t.Error(v)
	}
	t.Logf("runs per replica %s; fences refused while the other replica still ran the source: %d; %d objects", runs, refused, objects)

	agents := append([]string{"shared"}, names...)
	for _, agent := range agents {
		got, err := stA.ListConversations(ctx, ns, agent, 10000)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.ListConversations(ctx, refNS, agent, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := conversationsOf(got, ns), conversationsOf(want, refNS); g != w {
			t.Errorf("agent %s: sharded store differs from the single-replica run:\n got %s\nwant %s", agent, g, w)
		}
	}
	var ledgerBytes int64
	for _, name := range names {
		got, err := stA.ListFiles(ctx, ns+"/"+name, "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.ListFiles(ctx, refNS+"/"+name, "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := ledgerOf(got), ledgerOf(want); g != w {
			t.Errorf("%s: ledger differs from the single-replica run:\n got %s\nwant %s", name, g, w)
		}
		for _, f := range got {
			ledgerBytes += f.Bytes
		}
	}
	used, _, err := stA.Store.Usage(ctx, ns+"/default", day)
	if err != nil {
		t.Fatal(err)
	}
	if maxUsed > limit.Value() || used > limit.Value() {
		t.Errorf("quota usage reached %d (now %d), above its limit %d", maxUsed, used, limit.Value())
	}
	// A run cancelled between download and commit charges what it downloaded, so usage
	// may exceed the ledger's bytes, never fall short of them.
	if used < ledgerBytes {
		t.Errorf("usage %d is less than the %d bytes the ledger charged: a commit's usage was lost", used, ledgerBytes)
	}
	t.Logf("usage %d bytes for %d bytes in the ledger, limit %d", used, ledgerBytes, limit.Value())
}

// conversationsOf is a comparable rendering of conversations, namespaces stripped from
// their sources.
func conversationsOf(cs []storeapi.Conversation, ns string) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s %s %s %s %s %d %s", c.AgentID, c.ConversationID, c.ContentHash, c.ActivityTime.UTC().Format(time.RFC3339),
			strings.TrimPrefix(c.Source, ns+"/"), c.ObjectKey, c.Position, c.Raw))
	}
	sort.Strings(out)
	return fmt.Sprintf("%d: %s", len(out), strings.Join(out, "; "))
}

// ledgerOf is a comparable rendering of ledger rows: what a file is and what became of
// it. New/Updated/Unchanged depend on the order files were committed in, so they are
// left out.
func ledgerOf(fs []storeapi.FileRecord) string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %d %s %d valid=%d invalid=%d", f.Key, f.ETag, f.Size, f.State, f.Bytes, f.Counts.Valid, f.Counts.Invalid))
	}
	sort.Strings(out)
	return fmt.Sprintf("%d: %s", len(out), strings.Join(out, "; "))
}

// cutOff is a source whose run on replica a is stuck in a commit already on its way to
// the server, a cut off from the API server, and replica b started: b takes the shard
// once a's Lease expired.
type cutOff struct {
	ns, name string
	log      *runLog
	stB      *recordingStore
	// finish lets a's commit complete and reconnects a.
	finish func()
}

// cutOffReplica sets the scene in namespace ns (and ns-leases), with one shard, and
// returns once b has taken the shard and tried to run the source: the fence refused it.
func cutOffReplica(t *testing.T, ns string) *cutOff {
	t.Helper()
	leaseNS, bkt, name := ns+"-leases", ns, "slow"
	ctx := context.Background()
	for _, n := range []string{ns, leaseNS} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	createBucket(t, bkt)
	zero := metav1.Duration{}
	createQuota(t, ns, "default", v1.IngestionQuotaSpec{RefreshCooldown: &zero})
	dsn := pgtest.Start(t)
	log := &runLog{holders: map[string]map[string]int{}, runs: map[string]int{}}
	open := func(id string) *recordingStore {
		pg, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pg.Close() })
		return &recordingStore{Store: pg, replica: id, log: log}
	}
	stA, stB := open("a"), open("b")
	stA.hold, stA.entered = make(chan struct{}), make(chan struct{})

	var mu sync.Mutex
	cut := false
	refuse := func() error {
		mu.Lock()
		defer mu.Unlock()
		if cut {
			return errors.New("dial tcp: connection refused")
		}
		return nil
	}
	leasesA := interceptor.NewClient(k8sWithWatch(t), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := refuse(); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := refuse(); err != nil {
				return err
			}
			return c.List(ctx, list, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := refuse(); err != nil {
				return err
			}
			return c.Update(ctx, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := refuse(); err != nil {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	// One shard: whoever holds it runs the source.
	repA := startShardedManagerWith(ctx, t, stA, ns, leaseNS, "a", 1, leasesA)
	t.Cleanup(repA.stop)
	var once sync.Once
	finish := func() {
		once.Do(func() {
			close(stA.hold)
			mu.Lock()
			cut = false
			mu.Unlock()
		})
	}
	t.Cleanup(finish) // before a stops (cleanups run last first)
	put(t, bkt, name+"/a.jsonl", jsonLines(t, conversation("fence-agent", "f-1", "2025-01-15T14:30:00Z", "held")))
	newSource(t, ns, name, bkt, name+"/", nil)
	select {
	case <-stA.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("a never reached its commit")
	}
	repB := startShardedManager(ctx, t, stB, ns, leaseNS, "b", 1)
	t.Cleanup(repB.stop)

	mu.Lock()
	cut = true
	mu.Unlock()
	eventually(t, "b held back by the fence", func() error {
		log.mu.Lock()
		defer log.mu.Unlock()
		if log.refused == 0 {
			return errors.New("no fence refused yet")
		}
		return nil
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.runs["b"] != 0 || len(log.violations) != 0 {
		t.Fatalf("b ran while a's commit was in flight: %d runs, %v", log.runs["b"], log.violations)
	}
	return &cutOff{ns: ns, name: name, log: log, stB: stB, finish: finish}
}

// A replica cut off from the API server with a commit in flight stops serving its shard
// and the other replica takes it over once the Lease expired, but the commit cannot be
// interrupted: the source's PostgreSQL fence holds the new owner's run back until the
// old run ended, and only then does it run.
func TestFenceHoldsBackTheTakeoverOfACutOffReplica(t *testing.T) {
	c := cutOffReplica(t, "sharded-fence")
	// a's commit completes; then b runs the source (and finds the file ingested).
	c.finish()
	eventually(t, "b folded the file", func() error {
		c.log.mu.Lock()
		bRuns := c.log.runs["b"]
		c.log.mu.Unlock()
		src := getSource(t, c.ns, c.name)
		if f := src.Status.Files; bRuns == 0 || f == nil || f.Ingested != 1 {
			return fmt.Errorf("b's runs %d, files %+v", bRuns, src.Status.Files)
		}
		return nil
	})
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	for _, v := range c.log.violations {
		t.Error(v)
	}
	if _, ok, err := c.stB.GetConversation(context.Background(), c.ns, "fence-agent", "f-1"); err != nil || !ok {
		t.Errorf("f-1: found=%v err=%v", ok, err)
	}
	t.Logf("runs %v, fences refused %d", c.log.runs, c.log.refused)
}

// Deleting the source meanwhile: b, now its owner, removes its ledger only once a's run
// ended, so a's commit cannot write a ledger row after the ledger was removed.
func TestDeletionWaitsForTheCutOffReplica(t *testing.T) {
	c := cutOffReplica(t, "sharded-delete")
	ctx := context.Background()
	if err := k8s.Delete(ctx, getSource(t, c.ns, c.name)); err != nil {
		t.Fatal(err)
	}
	c.log.mu.Lock()
	refused := c.log.refused
	c.log.mu.Unlock()
	// b's deletion tries the fence too, and is refused while a's commit is in flight.
	eventually(t, "b's deletion held back by the fence", func() error {
		c.log.mu.Lock()
		defer c.log.mu.Unlock()
		if c.log.refused <= refused+1 {
			return fmt.Errorf("refused %d times", c.log.refused)
		}
		return nil
	})
	if src := getSource(t, c.ns, c.name); len(src.Finalizers) == 0 {
		t.Fatal("the source's finalizer went while a's commit was in flight")
	}
	c.finish()
	eventually(t, "the source deleted", func() error {
		src := &v1.S3Source{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: c.name}, src); err == nil {
			return fmt.Errorf("still there, finalizers %v", src.Finalizers)
		}
		return nil
	})
	rows, err := c.stB.ListFiles(ctx, c.ns+"/"+c.name, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Errorf("ledger rows left after the deletion: %+v", rows)
	}
}

func k8sWithWatch(t *testing.T) client.WithWatch {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
