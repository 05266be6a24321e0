package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	dto "github.com/prometheus/client_model/go"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
	"github.com/avon-ai/data-import-operator/internal/testsupport/proc"
)

const (
	namespace = "scale"
	bucket    = "scale"
	secret    = "scale-keys"
)

type bench struct {
	opts options
	dir  string

	kube       *kube.Env
	s3         *minio.Server
	pgStop     func() error
	dsn        string // the store every replica opens
	mgrs       []*replica
	cl         client.Client
	apiHTTP    *http.Client
	managerBin string
	kubeconfig string
	proxy      *s3Counter
	// shardSettle is how long each start of the replicas took to split the shards.
	shardSettle []float64

	// This program's own LIST, GET and PATCH of s3sources, told apart from the manager's.
	polls, gets, patches atomic.Int64
	// The API server's renewals of its own identity Lease (kube-system/apiserver-*, every
	// 10 s): its own writes, told apart from the manager's.
	apiserverLeases atomic.Int64
	respecs         int
}

// snapshot is every counter the report differences, taken at one moment.
type snapshot struct {
	at       time.Time
	api      map[string]*dto.MetricFamily
	s3       map[string]float64
	s3Source map[string]float64 // S3 requests by source (the key's first segment)
	replicas []replicaSnap
	held     map[int]string   // shard → holder
	own      map[string]int64 // this program's requests, as "VERB resource"
}

// replicaSnap is one replica's metrics and process figures.
type replicaSnap struct {
	id      string
	manager map[string]*dto.MetricFamily
	proc    procStats
}

func (b *bench) run(ctx context.Context) (*report, error) {
	rep := &report{Sources: b.opts.sources, FilesPerSource: b.opts.files, Replicas: b.opts.replicas, Shards: b.opts.shards,
		Store: b.opts.store, ConcurrentSources: b.opts.concurrentSources}
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	if err := b.seed(ctx); err != nil {
		return nil, err
	}
	if err := b.startManagers(ctx); err != nil {
		return nil, err
	}

	// Convergence: every source created, discovered and its files ingested.
	before, err := b.snap(ctx)
	if err != nil {
		return nil, err
	}
	peak := b.sampleRSS(ctx)
	created := time.Now()
	if err := b.createSources(ctx); err != nil {
		return nil, err
	}
	rep.CreateSeconds = time.Since(created).Seconds()
	if err := b.waitAll(ctx, 30*time.Minute, func(s *v1.S3Source) bool {
		return s.Status.Files != nil && s.Status.Files.Ingested == int64(b.opts.files) && s.Status.LastDiscoveryTime != nil
	}); err != nil {
		return nil, fmt.Errorf("convergence: %w", err)
	}
	rep.ConvergenceSeconds = time.Since(created).Seconds()
	converged, err := b.snap(ctx)
	if err != nil {
		return nil, err
	}
	rep.Convergence = b.phase(before, converged, int64(b.opts.sources))

	// Idle: nothing changes; what does the manager still do?
	time.Sleep(b.opts.idle)
	idle, err := b.snap(ctx)
	if err != nil {
		return nil, err
	}
	rep.Idle = b.phase(converged, idle, 0)
	rep.IdleSeconds = b.opts.idle.Seconds()
	rep.IdleWritesPerHour, rep.IdleS3PerHour = scaledToHour(writes(rep.Idle.API), rep.IdleSeconds), scaledToHour(rep.Idle.S3, rep.IdleSeconds)
	for _, r := range idle.replicas {
		rep.AtRest = append(rep.AtRest, atRest{ID: r.id, FDs: r.proc.fds, Goroutines: value(r.manager, "go_goroutines", nil),
			RSSMiB: float64(r.proc.rssBytes) / (1 << 20)})
	}

	// Refresh latency with nothing else going on.
	if rep.RefreshIdle, err = b.refreshProbes(ctx, "idle", nil); err != nil {
		return nil, err
	}
	// Then behind discoveries already waiting for a run slot that no user asked for: every
	// other source's spec changes (its interval), which starts the same run an hourly
	// discovery would (list, nothing new to download), and only once all those are queued
	// are the probes refreshed.
	schedStart := time.Now()
	if err := b.respecAllButProbes(ctx); err != nil {
		return nil, err
	}
	if rep.RefreshScheduled, err = b.refreshProbes(ctx, "sched", nil); err != nil {
		return nil, err
	}
	if err := b.waitAll(ctx, 30*time.Minute, func(s *v1.S3Source) bool {
		return s.Status.LastDiscoveryTime != nil && !s.Status.LastDiscoveryTime.Time.Before(schedStart.Truncate(time.Second))
	}); err != nil {
		return nil, fmt.Errorf("discovering every changed source: %w", err)
	}
	rep.ScheduledAllSeconds = time.Since(schedStart).Seconds()
	afterSched, err := b.snap(ctx)
	if err != nil {
		return nil, err
	}
	rep.Scheduled = b.phase(idle, afterSched, 0)

	// Then with every other source refreshing at the same moment as the probes.
	loadStart := time.Now()
	rep.RefreshLoad, err = b.refreshProbes(ctx, "load", func() error { return b.refreshAllButProbes(ctx, "load") })
	if err != nil {
		return nil, err
	}
	if err := b.waitAll(ctx, 30*time.Minute, func(s *v1.S3Source) bool {
		return s.Status.LastDiscoveryTime != nil && !s.Status.LastDiscoveryTime.Time.Before(loadStart.Truncate(time.Second))
	}); err != nil {
		return nil, fmt.Errorf("refreshing every source: %w", err)
	}
	rep.RefreshAllSeconds = time.Since(loadStart).Seconds()
	afterLoad, err := b.snap(ctx)
	if err != nil {
		return nil, err
	}
	rep.Refreshes = b.phase(afterSched, afterLoad, 0)

	// Restart: new processes settle every source without downloading anything.
	if err := b.stopManagers(); err != nil {
		return nil, err
	}
	restarted := time.Now()
	if err := b.startManagers(ctx); err != nil {
		return nil, err
	}
	if err := b.waitSettled(ctx, restarted); err != nil {
		return nil, fmt.Errorf("settling after the restart: %w", err)
	}
	rep.RestartSettleSeconds = time.Since(restarted).Seconds()
	time.Sleep(5 * time.Second) // anything a settled manager still starts shows up here
	settled, err := b.snap(ctx)
	if err != nil {
		return nil, err
	}
	rep.Restart = b.phase(afterLoad, settled, 0)
	rep.DownloadsAfterRestart = int64(rep.Restart.S3["GetObject"])
	rep.PeakRSSMiB = float64(peak()) / (1 << 20)
	for _, r := range settled.replicas {
		rep.PeakRSSMiB = max(rep.PeakRSSMiB, float64(r.proc.peakRSSBytes)/(1<<20))
	}
	rep.ShardSettleSeconds = b.shardSettle
	rep.Events, err = b.countEvents(ctx)
	return rep, err
}

func (b *bench) start(ctx context.Context) error {
	root, err := testsupport.RepoRoot()
	if err != nil {
		return err
	}
	var errs [4]error
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); b.kube, errs[0] = kube.Start() }()
	go func() {
		defer wg.Done()
		b.s3, errs[1] = minio.StartServer(minio.Options{})
	}()
	go func() {
		defer wg.Done()
		b.managerBin, errs[2] = proc.GoBuild(ctx, root, "manager", "./cmd")
	}()
	go func() { defer wg.Done(); errs[3] = b.startStore(ctx) }()
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	if b.proxy, err = startS3Counter(b.s3.Endpoint); err != nil {
		return err
	}
	if b.cl, err = b.kube.Client(); err != nil {
		return err
	}
	if b.apiHTTP, err = rest.HTTPClientFor(b.kube.Config); err != nil {
		return err
	}
	if err := b.countAPIServerLeases(ctx); err != nil {
		return err
	}
	b.kubeconfig, err = b.kube.Kubeconfig(b.dir)
	return err
}

// countAPIServerLeases counts, from a watch, the renewals of the API server's identity
// Lease (PUT leases in apiserver_request_total, as the manager's Lease writes are).
func (b *bench) countAPIServerLeases(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(b.kube.Config)
	if err != nil {
		return err
	}
	leases := cs.CoordinationV1().Leases(metav1.NamespaceSystem)
	list, err := leases.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	rv := list.ResourceVersion
	go func() {
		for ctx.Err() == nil {
			w, err := leases.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				time.Sleep(time.Second)
				continue
			}
			for ev := range w.ResultChan() {
				l, ok := ev.Object.(*coordinationv1.Lease)
				if !ok {
					continue
				}
				rv = l.ResourceVersion
				if ev.Type == watch.Modified && strings.HasPrefix(l.Name, "apiserver-") {
					b.apiserverLeases.Add(1)
				}
			}
		}
	}()
	return nil
}

// startStore starts the store the replicas share: a SQLite file, or a PostgreSQL server
// of its own (synchronous_commit=off, as internal/testsupport/postgres runs it for tests).
func (b *bench) startStore(ctx context.Context) error {
	if b.opts.store == "sqlite" {
		b.dsn = "sqlite://" + filepath.Join(b.dir, "store.db")
		return nil
	}
	srv, stop, err := pgtest.StartServer(ctx)
	if err != nil {
		return err
	}
	b.pgStop = stop
	b.dsn, err = srv.CreateDatabase(ctx, "scale")
	return err
}

func (b *bench) stop() {
	_ = b.stopManagers()
	if b.pgStop != nil {
		_ = b.pgStop()
	}
	if b.proxy != nil {
		b.proxy.close()
	}
	if b.s3 != nil {
		b.s3.Stop()
	}
	if b.kube != nil {
		_ = b.kube.Stop()
	}
}

// seed creates the namespace, the tenant's Secret and quota, and the objects.
func (b *bench) seed(ctx context.Context) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secret},
			StringData: map[string]string{controllers.SecretAccessKeyID: b.s3.RootUser, controllers.SecretSecretAccessKey: b.s3.RootPassword}},
		&v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "default"},
			Spec: v1.IngestionQuotaSpec{RefreshCooldown: &metav1.Duration{}}},
	}
	for _, o := range objs {
		if err := b.cl.Create(ctx, o); err != nil {
			return err
		}
	}
	if err := b.s3.CreateBucket(bucket); err != nil {
		return err
	}
	start := time.Now()
	err := parallel(b.opts.sources, b.opts.workers, func(i int) error {
		for f := range b.opts.files {
			id := fmt.Sprintf("c-%d-%d", i, f)
			body := fmt.Appendf(nil, `[{"conversation_id":%q,"agent_id":"agent","timestamp":"2025-01-15T14:30:00Z","messages":[`+
				`{"message_id":"m-1","conversation_id":%q,"role":"customer","sender_id":"u-1","content":"hello","timestamp":"2025-01-15T14:30:00Z"}]}]`, id, id)
			if _, err := b.s3.Put(bucket, fmt.Sprintf("%s%d.json", prefixOf(i), f), body); err != nil {
				return err
			}
		}
		return nil
	})
	fmt.Fprintf(os.Stderr, "seeded %d objects in %s\n", b.opts.sources*b.opts.files, time.Since(start).Round(time.Second))
	return err
}

func prefixOf(i int) string { return fmt.Sprintf("s%05d/", i) }
func nameOf(i int) string   { return fmt.Sprintf("s%05d", i) }

func (b *bench) createSources(ctx context.Context) error {
	return parallel(b.opts.sources, b.opts.workers, func(i int) error {
		return b.cl.Create(ctx, &v1.S3Source{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: nameOf(i)},
			Spec: v1.S3SourceSpec{Bucket: bucket, Prefix: prefixOf(i), Endpoint: b.proxy.URL, ForcePathStyle: true, Region: minio.Region,
				Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: secret}}},
		})
	})
}

// waitAll polls the sources until every one satisfies done.
func (b *bench) waitAll(ctx context.Context, timeout time.Duration, done func(*v1.S3Source) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		var list v1.S3SourceList
		b.polls.Add(1)
		if err := b.cl.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return err
		}
		n := 0
		for i := range list.Items {
			if done(&list.Items[i]) {
				n++
			}
		}
		if n == b.opts.sources {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d sources done after %s", n, b.opts.sources, timeout)
		}
		if err := b.exited(); err != nil {
			return err
		}
		time.Sleep(2 * time.Second)
	}
}

// refreshProbes asks the probe sources for a refresh, all at once, after load() started
// whatever else should be going on, and reports how long each took to be handled: from the
// annotation written to a status that shows the refresh handled by a finished run.
func (b *bench) refreshProbes(ctx context.Context, value string, load func() error) (latency, error) {
	var loadErr error
	var loadDone sync.WaitGroup
	if load != nil {
		loadDone.Add(1)
		go func() { defer loadDone.Done(); loadErr = load() }()
	}
	secs := make([]float64, b.opts.probes)
	err := parallel(b.opts.probes, b.opts.probes, func(i int) error {
		name := nameOf(probeIndex(i, b.opts.sources, b.opts.probes))
		want := fmt.Sprintf("%s-%d-%d", value, i, time.Now().UnixNano())
		start := time.Now()
		if err := b.annotate(ctx, name, want); err != nil {
			return err
		}
		for {
			var s v1.S3Source
			b.gets.Add(1)
			if err := b.cl.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
				return err
			}
			if s.Status.LastHandledRefresh == want && s.Status.LastDiscoveryTime != nil && !s.Status.LastDiscoveryTime.Time.Before(start.Truncate(time.Second)) &&
				!meta(s.Status.Conditions, v1.ConditionReconciling) {
				secs[i] = time.Since(start).Seconds()
				return nil
			}
			if time.Since(start) > 30*time.Minute {
				return fmt.Errorf("refresh of %s not handled after 30m", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	loadDone.Wait()
	return latencyOf(secs), errors.Join(err, loadErr)
}

func meta(conds []metav1.Condition, typ string) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// probeIndex spreads the probes over the sources.
func probeIndex(i, sources, probes int) int { return i * sources / max(probes, 1) }

func (b *bench) isProbe(i int) bool {
	for p := range b.opts.probes {
		if probeIndex(p, b.opts.sources, b.opts.probes) == i {
			return true
		}
	}
	return false
}

func (b *bench) refreshAllButProbes(ctx context.Context, value string) error {
	return parallel(b.opts.sources, b.opts.workers, func(i int) error {
		if b.isProbe(i) {
			return nil
		}
		return b.annotate(ctx, nameOf(i), value)
	})
}

// respecAllButProbes changes the interval of every source but the probes (to 61m, and
// back to the default on a second call): each starts a discovery for the changed spec.
func (b *bench) respecAllButProbes(ctx context.Context) error {
	b.respecs++
	interval := `"61m"`
	if b.respecs%2 == 0 {
		interval = "null"
	}
	patch := fmt.Appendf(nil, `{"spec":{"interval":%s}}`, interval)
	return parallel(b.opts.sources, b.opts.workers, func(i int) error {
		if b.isProbe(i) {
			return nil
		}
		b.patches.Add(1)
		return b.cl.Patch(ctx, &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: nameOf(i)}}, client.RawPatch("application/merge-patch+json", patch))
	})
}

func (b *bench) annotate(ctx context.Context, name, value string) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, v1.RefreshAnnotation, value)
	b.patches.Add(1)
	return b.cl.Patch(ctx, &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}, client.RawPatch("application/merge-patch+json", patch))
}

func (b *bench) countEvents(ctx context.Context) (map[string]int, error) {
	var list eventsv1.EventList
	if err := b.cl.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, e := range list.Items {
		n := 1
		if e.Series != nil {
			n = int(e.Series.Count)
		}
		out[e.Type+"/"+e.Reason] += n
	}
	return out, nil
}

// sampleRSS samples each replica's RSS every second (VmHWM resets with the process) and
// returns a function reporting the largest peak of one process.
func (b *bench) sampleRSS(ctx context.Context) func() int64 {
	var peak atomic.Int64
	go func() {
		for ctx.Err() == nil {
			for _, r := range b.mgrs {
				if r.proc == nil || r.proc.Exited() {
					continue
				}
				if st, err := readProc(r.proc.Pid()); err == nil && st.peakRSSBytes > peak.Load() {
					peak.Store(st.peakRSSBytes)
				}
			}
			time.Sleep(time.Second)
		}
	}()
	return peak.Load
}

func (b *bench) snap(ctx context.Context) (snapshot, error) {
	s := snapshot{at: time.Now(), own: map[string]int64{
		"LIST s3sources": b.polls.Load(), "GET s3sources": b.gets.Load(), "PATCH s3sources": b.patches.Load(),
		"PUT leases": b.apiserverLeases.Load()}}
	var err error
	if s.api, err = scrape(ctx, b.apiHTTP, strings.TrimSuffix(b.kube.Config.Host, "/")+"/metrics"); err != nil {
		return s, fmt.Errorf("API server metrics: %w", err)
	}
	s.s3, s.s3Source = b.proxy.snapshot()
	for _, r := range b.mgrs {
		rs := replicaSnap{id: r.id}
		if rs.manager, err = scrape(ctx, http.DefaultClient, r.metrics); err != nil {
			return s, fmt.Errorf("metrics of %s: %w", r.id, err)
		}
		if rs.proc, err = readProc(r.proc.Pid()); err != nil {
			return s, err
		}
		s.replicas = append(s.replicas, rs)
	}
	s.held, err = b.holders(ctx)
	return s, err
}

// phase is what happened between two snapshots. API requests are the API server's
// counts, less this program's own (creates of sources, its polling lists) and the renewals
// of the API server's own Lease. A replica's
// CPU is the difference when both snapshots are of the same process, else what the new
// process used since it started. Work is split by replica: discoveries and files from
// each replica's metrics, S3 requests by the source they name and the replica whose
// shard Lease held that source at the end of the phase.
func (b *bench) phase(from, to snapshot, ownCreates int64) phaseReport {
	p := phaseReport{Seconds: to.at.Sub(from.at).Seconds(), API: map[string]float64{}, S3: map[string]float64{}}
	keep := map[string]string{}
	apiTo := sumBy(to.api, "apiserver_request_total", keep, "verb", "resource")
	apiFrom := sumBy(from.api, "apiserver_request_total", keep, "verb", "resource")
	for k, v := range apiTo {
		if d := v - apiFrom[k]; d > 0 {
			p.API[k] = d
		}
	}
	p.API["CREATE s3sources"] -= float64(ownCreates)
	for k, v := range to.own {
		p.API[k] -= float64(v - from.own[k])
	}
	for k, v := range p.API {
		if v <= 0 {
			delete(p.API, k)
		}
	}
	for k, v := range to.s3 {
		if d := v - from.s3[k]; d > 0 {
			p.S3[k] = d
		}
	}
	// This program uploads to MinIO directly, not through the proxy.

	byID := map[string]*replicaPhase{}
	var lag histogram
	for i, r := range to.replicas {
		rp := replicaPhase{ID: r.id}
		var prev *replicaSnap
		if i < len(from.replicas) && from.replicas[i].id == r.id {
			prev = &from.replicas[i]
		}
		same := prev != nil && prev.proc.pid == r.proc.pid
		rp.CPUSeconds = r.proc.cpuSeconds
		l := histogramOf(r.manager, "dataimport_status_lag_seconds")
		rp.Discoveries = histogramCount(r.manager, "dataimport_discovery_duration_seconds")
		rp.FilesIngested = value(r.manager, "dataimport_files_processed_total", map[string]string{"result": "ingested"})
		if same {
			rp.CPUSeconds -= prev.proc.cpuSeconds
			l = l.minus(histogramOf(prev.manager, "dataimport_status_lag_seconds"))
			rp.Discoveries -= histogramCount(prev.manager, "dataimport_discovery_duration_seconds")
			rp.FilesIngested -= value(prev.manager, "dataimport_files_processed_total", map[string]string{"result": "ingested"})
		}
		lag = lag.plus(l)
		p.ManagerCPUSeconds += rp.CPUSeconds
		p.Discoveries += rp.Discoveries
		p.FilesIngested += rp.FilesIngested
		p.Replicas = append(p.Replicas, rp)
	}
	for i := range p.Replicas {
		byID[p.Replicas[i].ID] = &p.Replicas[i]
	}
	for src, v := range to.s3Source {
		if d := v - from.s3Source[src]; d > 0 {
			if rp := byID[b.ownerOf(src, to.held)]; rp != nil {
				rp.S3Requests += d
			}
		}
	}
	for i := range b.opts.sources {
		if rp := byID[b.ownerOf(nameOf(i), to.held)]; rp != nil {
			rp.Sources++
		}
	}
	for _, id := range to.held {
		if rp := byID[id]; rp != nil {
			rp.Shards++
		}
	}
	p.StatusLagP50, p.StatusLagP99, p.StatusLagCount = lag.quantile(0.5), lag.quantile(0.99), lag.total
	return p
}

// parallel runs f(0..n-1), at most workers at a time, and returns the first error.
func parallel(n, workers int, f func(int) error) error {
	var g errgroup.Group
	g.SetLimit(max(1, workers))
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	return g.Wait()
}
