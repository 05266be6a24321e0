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
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
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
	mgr        *proc.Process
	cl         client.Client
	apiHTTP    *http.Client
	managerBin string
	kubeconfig string
	metrics    string // the manager's /metrics URL
	probes     string // the manager's /readyz URL
	proxy      *s3Counter

	// This program's own LIST, GET and PATCH of s3sources, told apart from the manager's.
	polls, gets, patches atomic.Int64
}

// snapshot is every counter the report differences, taken at one moment.
type snapshot struct {
	at      time.Time
	api     map[string]*dto.MetricFamily
	s3      map[string]float64
	manager map[string]*dto.MetricFamily
	proc    procStats
	own     map[string]int64 // this program's requests, as "VERB resource"
}

func (b *bench) run(ctx context.Context) (*report, error) {
	rep := &report{Sources: b.opts.sources, FilesPerSource: b.opts.files}
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	if err := b.seed(ctx); err != nil {
		return nil, err
	}
	if err := b.startManager(ctx); err != nil {
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
	rep.AtRestFDs = idle.proc.fds
	rep.AtRestGoroutines = value(idle.manager, "go_goroutines", nil)
	rep.AtRestRSSMiB = float64(idle.proc.rssBytes) / (1 << 20)

	// Refresh latency with nothing else going on, then with every other source refreshing.
	if rep.RefreshIdle, err = b.refreshProbes(ctx, "idle", nil); err != nil {
		return nil, err
	}
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
	rep.Refreshes = b.phase(idle, afterLoad, 0)

	// Restart: a new process settles every source without downloading anything.
	if err := b.mgr.Stop(time.Minute); err != nil {
		return nil, err
	}
	restarted := time.Now()
	if err := b.startManager(ctx); err != nil {
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
	rep.PeakRSSMiB = float64(max(peak(), settled.proc.peakRSSBytes)) / (1 << 20)
	rep.Events, err = b.countEvents(ctx)
	return rep, err
}

func (b *bench) start(ctx context.Context) error {
	root, err := testsupport.RepoRoot()
	if err != nil {
		return err
	}
	var errs [3]error
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); b.kube, errs[0] = kube.Start() }()
	go func() {
		defer wg.Done()
		b.s3, errs[1] = minio.StartServer(minio.Options{})
	}()
	go func() {
		defer wg.Done()
		b.managerBin, errs[2] = proc.GoBuild(ctx, root, "manager", "./cmd")
	}()
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
	b.kubeconfig, err = b.kube.Kubeconfig(b.dir)
	return err
}

func (b *bench) stop() {
	if b.mgr != nil {
		_ = b.mgr.Stop(time.Minute)
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

func (b *bench) startManager(ctx context.Context) error {
	metrics, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	probes, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	spool := filepath.Join(b.dir, "spool")
	if err := os.MkdirAll(spool, 0o750); err != nil {
		return err
	}
	args := []string{"--store", "sqlite://" + filepath.Join(b.dir, "store.db"),
		"--metrics-bind-address", metrics, "--health-probe-bind-address", probes,
		"--allowed-endpoints", b.proxy.URL, "--spool-dir", spool, "--max-file-size", "10M"}
	if b.opts.managerFlags != "" {
		args = append(args, strings.Fields(b.opts.managerFlags)...)
	}
	logPath := filepath.Join(b.dir, "manager.log")
	if b.mgr != nil {
		logPath = filepath.Join(b.dir, "manager-restarted.log")
	}
	p, err := proc.Start("the manager", logPath, []string{"KUBECONFIG=" + b.kubeconfig}, b.managerBin, args...)
	if err != nil {
		return err
	}
	b.mgr, b.metrics, b.probes = p, "http://"+metrics+"/metrics", "http://"+probes+"/readyz"
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return p.WaitHTTP(wctx, b.probes)
}

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
		if b.mgr.Exited() {
			return fmt.Errorf("the manager exited; see %s", b.mgr.Log())
		}
		time.Sleep(2 * time.Second)
	}
}

// waitSettled waits until the restarted manager reconciled every source once and its
// queue is empty.
func (b *bench) waitSettled(ctx context.Context, since time.Time) error {
	for {
		fams, err := scrape(ctx, http.DefaultClient, b.metrics)
		if err != nil {
			return err
		}
		reconciled := 0.0
		for _, v := range sumBy(fams, "controller_runtime_reconcile_total", map[string]string{"controller": "s3source"}, "result") {
			reconciled += v
		}
		depth := value(fams, "workqueue_depth", map[string]string{"name": "s3source"})
		if reconciled >= float64(b.opts.sources) && depth == 0 {
			return nil
		}
		if time.Since(since) > 30*time.Minute {
			return fmt.Errorf("%v reconciles, queue depth %v after 30m", reconciled, depth)
		}
		time.Sleep(100 * time.Millisecond)
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

// sampleRSS samples the manager's RSS every second (VmHWM resets with the process) and
// returns a function reporting the peak seen across processes.
func (b *bench) sampleRSS(ctx context.Context) func() int64 {
	var peak atomic.Int64
	go func() {
		for ctx.Err() == nil {
			if b.mgr != nil {
				if st, err := readProc(b.mgr.Pid()); err == nil && st.peakRSSBytes > peak.Load() {
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
		"LIST s3sources": b.polls.Load(), "GET s3sources": b.gets.Load(), "PATCH s3sources": b.patches.Load()}}
	var err error
	if s.api, err = scrape(ctx, b.apiHTTP, strings.TrimSuffix(b.kube.Config.Host, "/")+"/metrics"); err != nil {
		return s, fmt.Errorf("API server metrics: %w", err)
	}
	s.s3 = b.proxy.snapshot()
	if s.manager, err = scrape(ctx, http.DefaultClient, b.metrics); err != nil {
		return s, fmt.Errorf("manager metrics: %w", err)
	}
	s.proc, err = readProc(b.mgr.Pid())
	return s, err
}

// phase is what happened between two snapshots. API requests are the API server's
// counts, less this program's own (creates of sources, its polling lists); the manager's
// CPU is only comparable when both snapshots are of the same process.
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
	if to.proc.cpuSeconds >= from.proc.cpuSeconds {
		p.ManagerCPUSeconds = to.proc.cpuSeconds - from.proc.cpuSeconds
	}
	lag := histogramOf(to.manager, "dataimport_status_lag_seconds")
	if from.manager != nil && sameProcess(from, to) {
		lag = lag.minus(histogramOf(from.manager, "dataimport_status_lag_seconds"))
	}
	p.StatusLagP50, p.StatusLagP99, p.StatusLagCount = lag.quantile(0.5), lag.quantile(0.99), lag.total
	return p
}

func sameProcess(a, b snapshot) bool {
	return value(a.manager, "process_start_time_seconds", nil) == value(b.manager, "process_start_time_seconds", nil)
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
