package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/failpoint"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// runTracker owns the discovery runs in flight: at most one per source. A reconcile starts
// a run and returns; the run's completion sends an event that triggers the reconcile which
// folds its Result into status. Reconciles never wait on downloads.
type runTracker struct {
	runner *discovery.Runner
	store  store.Store
	// ready is closed once this process leads and has dropped stale reservations; runs
	// wait for it.
	ready     chan struct{}
	readyOnce sync.Once
	// sources bounds the runs executing at once; others wait for a slot in their
	// goroutine, those a user asked for ahead of the rest.
	sources *runSlots
	events  chan event.GenericEvent

	// base parents every run; shutdown cancels it when the manager stops.
	base     context.Context
	shutdown context.CancelFunc

	// fencer, when the store has one, fences each run against other processes (see
	// store.Fencer); owns, in sharded mode, tells whether this replica serves a source.
	fencer store.Fencer
	owns   func(types.NamespacedName) bool

	mu sync.Mutex
	// stopped is set, under mu, once Start is shutting down: no run may begin then, so
	// every wg.Add happens before Start's wg.Wait (sync.WaitGroup's rule).
	stopped  bool
	running  map[types.NamespacedName]*activeRun
	finished map[types.NamespacedName]finishedRun
	memos    map[types.NamespacedName]runMemo
	wg       sync.WaitGroup
}

// runMemo is what this process last decided for a source. The informer cache may still
// hold a status from before the last patch; decisions take the newer of the two, so a
// stale read never starts a second run or handles a refresh twice.
type runMemo struct {
	lastFinished time.Time
	// handledRefresh and handledReconcileAt are the annotation values handled by a run this
	// process started (status records them once that run finished).
	handledRefresh     string
	handledReconcileAt string
	startedGeneration  int64
	// started is true once this process started a run of the source: a DiscoveryRunning
	// condition in status is then this process's own (perhaps a stale read), never a run
	// that a previous process left unfinished.
	started bool
	// throttledRefresh is the refresh value already announced as throttled; queuedRefresh
	// the one announced as queued behind a run in flight.
	throttledRefresh string
	queuedRefresh    string
	// stepFailedSinceRun is set when a step failed (Ready=False without a failed run) after
	// the last run this process started: its passing now is a recovery, even within the
	// second of that run.
	stepFailedSinceRun bool
	// limitAtRun is the quota's daily limit under which the last run this process started
	// deferred its files (0: no run yet); a higher limit now is a reason to run.
	limitAtRun int64
	// stalledReason is the Stalled reason last announced by an event.
	stalledReason string
	// serviceAccount is the web identity last read from the source's ServiceAccount, and
	// when (see stepIdentity).
	serviceAccount     *bucket.WebIdentity
	serviceAccountRead secretRead
}

// runTrigger is why a run started and which requests it handles; status records the
// requests as handled only once the run finished.
type runTrigger struct {
	reason               string
	started              time.Time
	refresh, reconcileAt string
	// validationHash identifies the validation settings the run checks files against.
	validationHash string
	// dailyLimit is the quota's daily limit when the run started.
	dailyLimit int64
}

// requested reports whether a user asked for the run (refresh or reconcile-request
// annotation): it then takes a run slot before runs nobody is waiting for.
func (t runTrigger) requested() bool { return t.refresh != "" || t.reconcileAt != "" }

// finishedRun is a run's result with what started it.
type finishedRun struct {
	result  *discovery.Result
	trigger runTrigger
}

// runSnapshot is one consistent view of a source's run state.
type runSnapshot struct {
	result  *discovery.Result
	trigger runTrigger
	running bool
	// inFlight is the trigger of the run in flight, so every reconcile while it runs
	// writes the same start to status, even when the patch of the one that started it
	// failed.
	inFlight runTrigger
	memo     runMemo
}

type activeRun struct {
	cancel  context.CancelFunc
	done    chan struct{}
	trigger runTrigger
}

func newRunTracker(runner *discovery.Runner, store store.Store, concurrentSources int) *runTracker {
	if concurrentSources < 1 {
		concurrentSources = 1
	}
	base, shutdown := context.WithCancel(context.Background())
	return &runTracker{
		base:     base,
		shutdown: shutdown,
		runner:   runner,
		store:    store,
		ready:    make(chan struct{}),
		sources:  newRunSlots(concurrentSources),
		events:   make(chan event.GenericEvent, 1024),
		running:  map[types.NamespacedName]*activeRun{},
		finished: map[types.NamespacedName]finishedRun{},
		memos:    map[types.NamespacedName]runMemo{},
	}
}

// Start is a manager Runnable: runs get the manager's context, and on shutdown Start
// waits until every in-flight file has committed or rolled back.
func (t *runTracker) Start(ctx context.Context) error {
	// With fences (PostgreSQL), the run that takes a source's fence drops that source's
	// stale reservations, and no other process's live ones (a previous leader or replica
	// may still be finishing a download). Without (SQLite, one process), only the leader
	// downloads, so reservations left in the store were held by a leader that is gone: a
	// download that never committed. Dropping them here, not at process start, never
	// touches the holds of a leader still running. Spool files are this pod's own: what
	// is there belongs to a killed process.
	if t.fencer == nil {
		if err := t.store.ReleaseAll(ctx); err != nil {
			return fmt.Errorf("releasing stale quota reservations: %w", err)
		}
	}
	removed, err := discovery.CleanSpool(t.runner.Engine.TempDir)
	if err != nil {
		return err
	}
	if removed > 0 {
		log.FromContext(ctx).Info("removed the spool files of a killed process", "files", removed, "dir", t.runner.Engine.TempDir)
	}
	t.readyOnce.Do(func() { close(t.ready) })
	<-ctx.Done()
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.shutdown()
	t.wg.Wait()
	return nil
}

// NeedLeaderElection: only the leader runs discoveries, unless sources are sharded.
func (t *runTracker) NeedLeaderElection() bool { return t.owns == nil }

// snapshot reads a finished result, whether a run is in flight and the memo under one
// lock, so a run finishing in between cannot look like no run at all.
func (t *runTracker) snapshot(key types.NamespacedName) runSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, running := t.running[key]
	f := t.finished[key]
	snap := runSnapshot{result: f.result, trigger: f.trigger, running: running, memo: t.memos[key]}
	if running {
		snap.inFlight = r.trigger
	}
	return snap
}

// remember updates a source's memo.
func (t *runTracker) remember(key types.NamespacedName, f func(*runMemo)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.memos[key]
	f(&m)
	t.memos[key] = m
}

// start begins a run unless one is in flight; it reports whether it started one.
// trig says why and which refresh requests the run handles.
func (t *runTracker) start(src *v1.S3Source, client bucket.Client, job discovery.Job, trig runTrigger) bool {
	key := types.NamespacedName{Namespace: src.Namespace, Name: src.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.running[key]; ok || t.stopped {
		return false
	}
	// Checked under t.mu: stopWhere, run when a shard is handed back, then sees this run.
	if t.owns != nil && !t.owns(key) {
		return false
	}
	m := t.memos[key]
	m.startedGeneration = src.Generation
	m.started = true
	m.limitAtRun = trig.dailyLimit
	m.stepFailedSinceRun = false
	if trig.refresh != "" {
		m.handledRefresh = trig.refresh
	}
	if trig.reconcileAt != "" {
		m.handledReconcileAt = trig.reconcileAt
	}
	t.memos[key] = m
	t.launch(src, trig, func(ctx context.Context) *discovery.Result { return t.runner.Run(ctx, client, job) })
	return true
}

// startKeys begins a run of event-named keys unless a run is in flight; it reports
// whether it started one. It leaves the memo alone: it is no discovery of the prefix.
func (t *runTracker) startKeys(src *v1.S3Source, client bucket.Client, job discovery.Job, keys []string) bool {
	key := types.NamespacedName{Namespace: src.Namespace, Name: src.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.running[key]; ok || t.stopped {
		return false
	}
	if t.owns != nil && !t.owns(key) {
		return false
	}
	t.launch(src, runTrigger{}, func(ctx context.Context) *discovery.Result { return t.runner.RunKeys(ctx, client, job, keys) })
	return true
}

// launch runs do in its own goroutine as the source's one run; t.mu is held.
func (t *runTracker) launch(src *v1.S3Source, trig runTrigger, do func(context.Context) *discovery.Result) {
	key := types.NamespacedName{Namespace: src.Namespace, Name: src.Name}
	ctx, cancel := context.WithCancel(t.base)
	r := &activeRun{cancel: cancel, done: make(chan struct{}), trigger: trig}
	t.running[key] = r
	t.wg.Add(1)
	notify := src.DeepCopy()
	go func() {
		defer t.wg.Done()
		defer close(r.done)
		defer cancel()
		var res *discovery.Result
		select {
		case <-t.ready:
		case <-ctx.Done():
		}
		if release := t.fence(ctx, cancel, key.String()); release != nil {
			defer release()
		}
		if t.sources.acquire(ctx, trig.requested()) {
			res = do(ctx)
			t.sources.release()
			failpoint.Inject(failpoint.RunFinished, key.String())
		}
		t.mu.Lock()
		delete(t.running, key)
		if res != nil && ctx.Err() == nil {
			t.finished[key] = finishedRun{result: res, trigger: trig}
			if !res.Targeted {
				m := t.memos[key]
				m.lastFinished = res.Finished
				t.memos[key] = m
			}
		}
		t.mu.Unlock()
		select {
		case t.events <- event.GenericEvent{Object: notify}:
		case <-ctx.Done(): // shutting down or deleted: nobody folds this run
		}
	}()
}

// ack forgets a finished run once status holding it was written, so a failed patch
// loses nothing.
func (t *runTracker) ack(key types.NamespacedName, res *discovery.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished[key].result == res {
		delete(t.finished, key)
	}
}

// stop cancels a source's run and waits for it to roll back or commit its files.
// It reports whether no run is left in flight.
func (t *runTracker) stop(ctx context.Context, key types.NamespacedName) bool {
	t.mu.Lock()
	r, ok := t.running[key]
	delete(t.finished, key)
	delete(t.memos, key)
	t.mu.Unlock()
	if !ok {
		return true
	}
	r.cancel()
	select {
	case <-r.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// fenceRetry is how often a run whose source another process still runs tries again.
const fenceRetry = time.Second

// fence waits until this process holds source's fence, when the store has fences. A
// lost fence cancels the run. It returns the release, or nil (no fences, ctx ended).
func (t *runTracker) fence(ctx context.Context, cancel context.CancelFunc, source string) (release func()) {
	if t.fencer == nil {
		return nil
	}
	for {
		f, ok, err := t.fencer.TryFence(ctx, source)
		if err == nil && ok {
			go func() {
				select {
				case <-f.Lost():
					cancel()
				case <-ctx.Done():
				}
			}()
			return f.Release
		}
		// Held elsewhere (a replica that had this source is still stopping its run) or
		// the store is unreachable: try again; the run has not started.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(fenceRetry):
		}
	}
}

// stopWhere stops every run whose source matches and waits for them, e.g. the sources
// of a shard this replica hands back.
func (t *runTracker) stopWhere(ctx context.Context, match func(types.NamespacedName) bool) {
	t.mu.Lock()
	var keys []types.NamespacedName
	for key := range t.running {
		if match(key) {
			keys = append(keys, key)
		}
	}
	for key := range t.memos {
		if match(key) {
			delete(t.memos, key)
			delete(t.finished, key)
		}
	}
	t.mu.Unlock()
	for _, key := range keys {
		t.stop(ctx, key)
	}
}

// runResultPriority is the queue priority of the reconcile that folds a finished run:
// above every informer event (0, or handler.LowPriority for the initial list).
const runResultPriority = 100

// refreshRequestPriority is the queue priority of the reconcile that starts a run a user
// asked for: ahead of spec changes and timers (0), which may be thousands after an edit
// of many sources or a restart, behind folding finished runs (whose status lag it would
// otherwise add to). With runSlots it makes a refresh wait for neither the queue nor the
// run slots of discoveries nobody is waiting for.
const refreshRequestPriority = 50

// runResultHandler enqueues the source of a finished run at runResultPriority.
type runResultHandler struct{}

var _ handler.EventHandler = runResultHandler{}

func (runResultHandler) Create(context.Context, event.CreateEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}
func (runResultHandler) Update(context.Context, event.UpdateEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}
func (runResultHandler) Delete(context.Context, event.DeleteEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

func (runResultHandler) Generic(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Object.GetNamespace(), Name: e.Object.GetName()}}
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(runResultPriority)}, req)
		return
	}
	q.Add(req)
}

// refreshRequestHandler enqueues a source at refreshRequestPriority when its refresh or
// reconcile-request annotation changed to a value; the For watch enqueues it too, at 0,
// and the queue keeps the higher priority.
type refreshRequestHandler struct{}

var _ handler.EventHandler = refreshRequestHandler{}

func (refreshRequestHandler) Create(context.Context, event.CreateEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}
func (refreshRequestHandler) Delete(context.Context, event.DeleteEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}
func (refreshRequestHandler) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

func (refreshRequestHandler) Update(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if e.ObjectOld == nil || e.ObjectNew == nil || !refreshRequested(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()) {
		return
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.ObjectNew.GetNamespace(), Name: e.ObjectNew.GetName()}}
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(refreshRequestPriority)}, req)
		return
	}
	q.Add(req)
}

// refreshRequested reports whether an annotation asking for a run got a new value.
func refreshRequested(old, cur map[string]string) bool {
	for _, a := range []string{v1.RefreshAnnotation, v1.ReconcileRequestAnnotation} {
		if cur[a] != "" && cur[a] != old[a] {
			return true
		}
	}
	return false
}
