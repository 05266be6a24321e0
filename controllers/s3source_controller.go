package controllers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// S3SourceReconciler discovers and ingests the files of each S3Source.
type S3SourceReconciler struct {
	client.Client
	// APIReader reads Secrets and ServiceAccounts from the API server with get: the
	// operator neither caches nor watches them (it holds no list/watch on them).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Store     store.Store
	Clock     clock.PassiveClock
	// NewBucket builds the S3 client of a source; tests wrap it to count requests.
	NewBucket func(ctx context.Context, cfg bucket.Config) (bucket.Client, error)
	Metrics   *Metrics
	// Ceilings bound the quota of every source, including the defaults that apply when
	// its IngestionQuota does not exist.
	Ceilings Ceilings
	// Identity is what the admin allows for cloud identities.
	Identity IdentityOptions
	// Shards, when set, divides the sources between replicas (internal/shard): this one
	// reconciles and runs only the sources it owns, without the leader election. Wire
	// its callbacks to ShardAcquired and ShardReleasing.
	Shards Sharding

	runs           *runTracker
	shardEvents    chan event.GenericEvent
	endpointPolicy *bucket.EndpointPolicy
	events         *eventQueue
	// transports share connections between sources that reach the same endpoint with the
	// same credentials, so idle connections do not grow with the number of sources.
	transports *bucket.TransportPool
}

// SourceOptions are the manager's knobs for discovery.
type SourceOptions struct {
	// ConcurrentSources bounds the discovery runs executing at once.
	ConcurrentSources int
	// ConcurrentFiles bounds the downloads in flight across all runs.
	ConcurrentFiles int
	// FilesPerSource bounds the downloads in flight of one run.
	FilesPerSource int
	// SpoolDir holds downloads (and ZIP copies) while they are parsed; "" means the OS
	// temporary directory. It needs ConcurrentFiles × SpoolCopiesPerDownload × the
	// largest effective maxFileSize free.
	SpoolDir string
	// MaxFileAttempts parks a file after this many attempts that failed for a reason
	// retrying does not fix (0 means discovery.DefaultMaxFileAttempts).
	MaxFileAttempts int
	// EndpointPolicy is where sources may make the operator connect (the manager's
	// --allowed-endpoints, --operator-identity-endpoints, --allowed-cidrs, --denied-cidrs and
	// the API server's addresses). Nil is the strictest policy: AWS only.
	EndpointPolicy *bucket.EndpointPolicy
	// Receiver is the webhook receiver of spec.events.
	Receiver ReceiverOptions
}

// +kubebuilder:rbac:groups=dataimport.avon.ai,resources=s3sources,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dataimport.avon.ai,resources=s3sources/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dataimport.avon.ai,resources=s3sources/finalizers,verbs=update
// +kubebuilder:rbac:groups=dataimport.avon.ai,resources=ingestionquotas,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller and the run tracker with mgr.
func (r *S3SourceReconciler) SetupWithManager(mgr ctrl.Manager, opts SourceOptions) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.NewBucket == nil {
		r.NewBucket = func(ctx context.Context, cfg bucket.Config) (bucket.Client, error) { return bucket.New(ctx, cfg) }
	}
	if r.Metrics == nil {
		r.Metrics = NewMetrics(nil)
	}
	if err := r.Identity.defaults(); err != nil {
		return err
	}
	r.endpointPolicy = opts.EndpointPolicy
	r.transports = bucket.NewTransportPool()
	if r.endpointPolicy == nil {
		r.endpointPolicy = &bucket.EndpointPolicy{}
	}
	engine := ingest.New(r.Store)
	spool, err := discovery.SpoolDir(opts.SpoolDir)
	if err != nil {
		return err
	}
	engine.TempDir = spool
	runner := discovery.NewRunner(r.Store, engine, r.Clock.Now, opts.ConcurrentFiles, opts.FilesPerSource)
	runner.MaxFileAttempts = opts.MaxFileAttempts
	r.runs = newRunTracker(runner, r.Store, opts.ConcurrentSources)
	ctrlOpts, err := r.setupShards(mgr, controller.Options{MaxConcurrentReconciles: 4})
	if err != nil {
		return err
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if err := mgr.Add(r.runs); err != nil {
		return err
	}
	if err := r.setupReceiver(mgr, opts.Receiver); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.S3Source{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A quota's usage changes with every file; only a spec change or new room (see
		// quotaWakeupOf) wakes its sources, and new room only those with deferred files.
		Watches(&v1.IngestionQuota{}, r.quotaHandler()).
		// A namespace's labels decide whether its sources may use the operator's identity.
		// Secrets and ServiceAccounts are not watched: see IdentityOptions.ReferenceRecheck.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.sourcesOfNamespace),
			builder.OnlyMetadata, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		// A finished run jumps the queue: its result reaches status within seconds even
		// while thousands of sources wait (e.g. the initial pass after a restart).
		WatchesRawSource(source.Channel(r.runs.events, runResultHandler{})).
		// A refresh someone asked for goes ahead of spec changes and timers.
		Watches(&v1.S3Source{}, refreshRequestHandler{}).
		WatchesRawSource(source.Channel(r.shardEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(ctrlOpts).
		Named("s3source").
		Complete(r)
}

// quotaNameOf is the IngestionQuota a source uses.
func quotaNameOf(s *v1.S3Source) string {
	if s.Spec.QuotaRef == "" {
		return v1.DefaultQuotaName
	}
	return s.Spec.QuotaRef
}

func (r *S3SourceReconciler) sourcesOfNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1.S3SourceList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetName())); err != nil {
		// A cache restricted to some namespaces knows no sources of the others.
		log.FromContext(ctx).V(1).Info("not mapping a namespace to its S3Sources", "namespace", obj.GetName(), "error", err.Error())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if providerOf(&list.Items[i]) == v1.CredentialsDefault {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

func (r *S3SourceReconciler) sourcesMatching(ctx context.Context, ns string, match func(*v1.S3Source) bool) []reconcile.Request {
	var list v1.S3SourceList
	if err := r.List(ctx, &list, client.InNamespace(ns)); err != nil {
		log.FromContext(ctx).Error(err, "listing S3Sources to map a watched object")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if match(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// sourceScope is what one reconcile read and decided; computeSourceStatus turns it into
// the status, in one place.
type sourceScope struct {
	src    *v1.S3Source
	key    types.NamespacedName
	now    time.Time
	quota  resolvedQuota
	result *discovery.Result // a finished run folded by this reconcile
	// trigger is why the folded run started and which requests it handled.
	trigger runTrigger
	// running is true when a run is in flight after this reconcile; started when this
	// reconcile started it (the spec was acted on); inFlight is why it started.
	running, started bool
	inFlight         runTrigger
	// ackRefresh and ackReconcileAt are requests acknowledged without a run (disabled).
	ackRefresh, ackReconcileAt string
	// refreshThrottled is a pending refresh and when it may run.
	refreshThrottled string
	refreshAt        time.Time
	// failure stops the steps: a reason, message and whether only a spec change can help.
	failure *stepFailure
	// bytesToday is what this source charged in the quota's current window; usedToday
	// what all sources of the quota charged.
	bytesToday, usedToday int64
	// usageRead is true once stepUsage read them.
	usageRead bool
	// totals are the source's lifetime counters in the store; nil for a store that keeps
	// none.
	totals *store.SourceTotals
	// memo is what this process decided last, newer than a stale cached status.
	memo runMemo
	// identity is who the source acts as; nil until stepIdentity resolved it.
	identity *identity
	// validators are spec.validators compiled by stepValidators (nil: none).
	validators *ingest.Validators
	// events is the webhook receiver's state (nil: spec.events unset).
	events *eventsState
}

// handledRefresh is the refresh value last acted on, from status or this process.
func (s *sourceScope) handledRefresh() string {
	if s.memo.handledRefresh != "" {
		return s.memo.handledRefresh
	}
	return s.src.Status.LastHandledRefresh
}

// lastDiscovery is when the latest run finished: a run folded now, this process's memory
// of its last run, or status.
func (s *sourceScope) lastDiscovery() time.Time {
	if s.result != nil && !s.result.Targeted {
		return statusTime(s.result.Finished)
	}
	last := statusTime(s.memo.lastFinished)
	if t := s.src.Status.LastDiscoveryTime; t != nil && t.After(last) {
		last = t.Time
	}
	return last
}

// failuresAfterFold is ConsecutiveFailures once a result folded now is counted.
func (s *sourceScope) failuresAfterFold() int32 {
	switch {
	case s.result == nil || s.result.Targeted: // an event run is no discovery
		return s.src.Status.ConsecutiveFailures
	case s.result.Err != nil:
		return s.src.Status.ConsecutiveFailures + 1
	}
	return 0
}

// specActedOn reports whether the current generation was already discovered.
func (s *sourceScope) specActedOn() bool {
	return s.src.Status.ObservedGeneration >= s.src.Generation || s.memo.startedGeneration >= s.src.Generation
}

type stepFailure struct {
	reason, message string
	stalled         bool
	// recheck: a stall on a Secret or ServiceAccount the operator does not watch; the
	// source looks again after IdentityOptions.ReferenceRecheck.
	recheck bool
}

func (f *stepFailure) Error() string { return f.reason + ": " + f.message }

// Reconcile runs the steps in order and writes status once.
func (r *S3SourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.Shards != nil {
		if !r.Shards.Owns(req.String()) {
			r.notOwned(ctx, req.NamespacedName)
			// Every replica authenticates every source's events (the owner acts on them).
			after, err := r.registerNotOwned(ctx, req.NamespacedName)
			return ctrl.Result{RequeueAfter: after}, err
		}
		defer r.dropMetricsIfHandedBack(req.NamespacedName)
	}
	src := &v1.S3Source{}
	if err := r.Get(ctx, req.NamespacedName, src); err != nil {
		if apierrors.IsNotFound(err) {
			stopCtx, cancel := context.WithTimeout(ctx, stopTimeout)
			defer cancel()
			r.runs.stop(stopCtx, req.NamespacedName)
			r.events.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !src.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, src)
	}
	if !controllerutil.ContainsFinalizer(src, v1.Finalizer) {
		patch := client.MergeFrom(src.DeepCopy())
		controllerutil.AddFinalizer(src, v1.Finalizer)
		if err := r.Patch(ctx, src, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}

	snap := r.runs.snapshot(req.NamespacedName)
	s := &sourceScope{src: src, key: req.NamespacedName, now: r.Clock.Now(), memo: snap.memo, result: snap.result, trigger: snap.trigger, running: snap.running, inFlight: snap.inFlight}
	before := src.Status.DeepCopy()
	var requeue time.Duration
	var stepErr error
	for _, step := range []func(context.Context, *sourceScope) (time.Duration, error){
		r.stepResolveQuota,
		r.stepEvents,
		r.stepUsage,
		r.stepDisabled,
		r.stepValidators,
		r.stepFilters,
		r.stepIdentity,
		r.stepStartRunIfDue,
		r.stepStartEventRun,
	} {
		after, err := step(ctx, s)
		requeue = lowestRequeue(requeue, after)
		if err != nil {
			stepErr = err
			break
		}
	}
	if errors.Is(stepErr, errStop) {
		stepErr = nil
	}
	var sf *stepFailure
	if errors.As(stepErr, &sf) {
		s.failure, stepErr = sf, nil
		r.runs.remember(s.key, func(m *runMemo) { m.stepFailedSinceRun = true })
	}

	src.Status = computeSourceStatus(s, *before)
	if !equality.Semantic.DeepEqual(before, &src.Status) {
		// The optimistic lock turns a patch computed from a stale cached status into a
		// conflict, retried on a fresh read, instead of an overwrite.
		patch := client.MergeFromWithOptions(&v1.S3Source{ObjectMeta: src.ObjectMeta, Status: *before}, client.MergeFromWithOptimisticLock{})
		if err := r.Status().Patch(ctx, src, patch); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, fmt.Errorf("patching status: %w", err)
		}
	}
	if s.result != nil {
		// Counted once: a failed patch above returns before this, and the result is
		// folded again by the retry.
		r.runs.ack(s.key, s.result)
		r.Metrics.StatusLag.WithLabelValues().Observe(max(0, r.Clock.Since(s.result.Finished).Seconds()))
		if s.result.Targeted {
			r.foldedEventRun(src, s)
		} else {
			r.Metrics.observeRun(src, s.result)
			r.emitRunEvents(src, s, before)
		}
	}
	r.announceStall(src, s, before)
	if s.failure != nil && !s.failure.stalled {
		requeue = lowestRequeue(requeue, retryBackoff(src, src.Status.ConsecutiveFailures+1))
	}
	if s.failure != nil && s.failure.recheck {
		requeue = lowestRequeue(requeue, r.Identity.ReferenceRecheck)
	}

	// A timer set while folding a result must not keep the result's high priority.
	return ctrl.Result{RequeueAfter: requeue, Priority: ptr.To(0)}, stepErr
}

// stopTimeout bounds how long a reconcile waits for a cancelled run to roll back its
// in-flight files (a transaction each).
const stopTimeout = 30 * time.Second

// errStop ends the steps without an error (disabled, run in flight).
var errStop = errors.New("stop")

func lowestRequeue(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	case b < a:
		return b
	}
	return a
}

// stepDisabled stops a disabled source: no S3 calls, no runs; the ledger is kept.
func (r *S3SourceReconciler) stepDisabled(ctx context.Context, s *sourceScope) (time.Duration, error) {
	if !s.src.Spec.Disabled {
		r.Metrics.restoreLastSuccess(s.src)
		return 0, nil
	}
	// A paused source must not trip the "no successful discovery" alert.
	r.Metrics.LastSuccess.DeleteLabelValues(s.src.Namespace, s.src.Name)
	if s.running {
		stopCtx, cancel := context.WithTimeout(ctx, stopTimeout)
		defer cancel()
		r.runs.stop(stopCtx, s.key)
		s.running = false
	}
	// A refresh asked for while paused is acknowledged, not silently dropped: status
	// records it as handled and an event says it did not run.
	refresh, reconcileAt := s.pendingRequests()
	for _, req := range []struct{ value, annotation string }{{refresh, v1.RefreshAnnotation}, {reconcileAt, v1.ReconcileRequestAnnotation}} {
		if req.value == "" {
			continue
		}
		r.Recorder.Eventf(s.src, nil, corev1.EventTypeWarning, v1.ReasonRefreshNotRun, "Refresh",
			"%s %q not run: the source is disabled (spec.disabled); re-enabling it discovers what changed", req.annotation, req.value)
	}
	if refresh != "" || reconcileAt != "" {
		s.ackRefresh, s.ackReconcileAt = refresh, reconcileAt
		r.runs.remember(s.key, func(m *runMemo) {
			if refresh != "" {
				m.handledRefresh = refresh
			}
			if reconcileAt != "" {
				m.handledReconcileAt = reconcileAt
			}
		})
	}
	return 0, errStop
}

// stepResolveQuota reads the source's IngestionQuota, or the defaults when it is absent.
func (r *S3SourceReconciler) stepResolveQuota(ctx context.Context, s *sourceScope) (time.Duration, error) {
	q, err := resolveQuota(ctx, r.Client, s.src.Namespace, s.src.Spec.QuotaRef, r.Ceilings)
	if err != nil {
		return 0, err
	}
	s.quota = q
	return 0, nil
}

// stepUsage reads what this source charged today, for status.
func (r *S3SourceReconciler) stepUsage(ctx context.Context, s *sourceScope) (time.Duration, error) {
	day, _ := s.quota.Window(s.now)
	total, own, err := r.Store.SourceUsage(ctx, s.quota.Key, day, s.key.String())
	if err != nil {
		return 0, &stepFailure{reason: v1.ReasonStoreError, message: "reading today's usage: " + err.Error()}
	}
	s.bytesToday, s.usedToday, s.usageRead = own, total, true
	// Lifetime counters come from the store, which keeps them in each file commit's
	// transaction: they agree with the ledger after a crash, and show a run's progress.
	if tr, ok := r.Store.(store.TotalsReader); ok {
		t, err := tr.SourceTotals(ctx, s.key.String())
		if err != nil {
			return 0, &stepFailure{reason: v1.ReasonStoreError, message: "reading the source's totals: " + err.Error()}
		}
		s.totals = &t
	}
	return 0, nil
}

// stepStartRunIfDue starts a run when decideRun finds one due, asked for, or needed; it
// returns when to look again.
func (r *S3SourceReconciler) stepStartRunIfDue(ctx context.Context, s *sourceScope) (time.Duration, error) {
	src := s.src
	if s.running {
		// The run's completion triggers the next reconcile. A refresh that comes meanwhile
		// is not merged into it (the run may have listed already): it runs after it.
		if refresh, reconcileAt := s.pendingRequests(); refresh+reconcileAt != "" && s.memo.queuedRefresh != refresh+reconcileAt {
			r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, v1.ReasonRefreshQueued, "Refresh",
				"refresh %q came while a discovery is running; it runs after that one, once the %s cooldown of IngestionQuota %s from its end has passed",
				refresh+reconcileAt, s.quota.RefreshCooldown, s.quota.Key)
			r.runs.remember(s.key, func(m *runMemo) { m.queuedRefresh = refresh + reconcileAt })
		}
		return 0, errStop
	}
	d := decideRun(s)
	if d.throttled != "" {
		s.refreshThrottled, s.refreshAt = d.throttled, d.readyAt
		switch {
		case d.trigger.reason != "" && s.memo.queuedRefresh != d.throttled:
			// The run starting now does not use the refresh up; once it ended, the refresh
			// is throttled (with its time) like any other.
			r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, v1.ReasonRefreshQueued, "Refresh",
				"refresh %q waits: a discovery started now (%s) and the refresh runs once the %s cooldown of IngestionQuota %s from its end has passed",
				d.throttled, d.trigger.reason, s.quota.RefreshCooldown, s.quota.Key)
			r.runs.remember(s.key, func(m *runMemo) { m.queuedRefresh = d.throttled })
		case d.trigger.reason == "" && s.memo.throttledRefresh != d.throttled:
			r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonRefreshThrottled, "Refresh",
				"refresh %q throttled by the %s cooldown of IngestionQuota %s; it runs at %s",
				d.throttled, s.quota.RefreshCooldown, s.quota.Key, d.readyAt.UTC().Format(time.RFC3339))
			r.runs.remember(s.key, func(m *runMemo) { m.throttledRefresh = d.throttled })
		}
	}
	if d.trigger.reason == "" {
		return d.wait, nil
	}

	client, err := r.bucketClient(ctx, src, s.identity)
	if err != nil {
		return 0, err
	}
	job := jobOf(s)
	// New validation rules (agent allow-list, policy, validators) apply to files already
	// failed; other spec changes leave them alone.
	job.RecheckFailed = d.recheckFailed
	// A user asked for this run: parked files get another chance.
	job.RetryParked = d.trigger.refresh != "" || d.trigger.reconcileAt != ""
	if r.runs.start(src, client, job, d.trigger) {
		s.running, s.started, s.inFlight = true, true, d.trigger
		log.FromContext(ctx).Info("discovery started", "reason", d.trigger.reason, "bucket", src.Spec.Bucket, "prefix", src.Spec.Prefix,
			"recheckFailed", d.recheckFailed, "refresh", d.trigger.refresh, "reconcileAt", d.trigger.reconcileAt)
	}
	return 0, errStop
}

// Listing defaults, as the CRD's (an object written before the field existed has none).
const (
	defaultFullListingInterval = 24 * time.Hour
	defaultSafetyWindow        = time.Hour
)

func listingOf(spec *v1.Listing) discovery.Listing {
	l := discovery.Listing{FullEvery: defaultFullListingInterval, SafetyWindow: defaultSafetyWindow}
	if spec == nil {
		return l
	}
	l.Incremental = spec.Mode == v1.ListingIncremental
	if spec.FullListingInterval != nil {
		l.FullEvery = spec.FullListingInterval.Duration
	}
	if spec.SafetyWindow != nil {
		l.SafetyWindow = spec.SafetyWindow.Duration
	}
	return l
}

// jobOf is the discovery job of the source as its spec and quota say, for every kind of
// run (scheduled, refresh, event-named keys); files failed under the current rules stay
// failed unless the caller says otherwise.
func jobOf(s *sourceScope) discovery.Job {
	src := s.src
	return discovery.Job{
		Namespace: s.key.Namespace, Source: s.key.String(), Bucket: src.Spec.Bucket, Prefix: src.Spec.Prefix,
		Quota: s.quota.Quota, Policy: ingest.InvalidRecordPolicy(src.Spec.OnInvalidRecord),
		DryRun: src.Spec.DryRun, Agents: agentSet(src.Spec.AgentIDs), Validators: s.validators,
		Listing: listingOf(src.Spec.Listing), Filter: filterOf(&src.Spec),
	}
}

func agentSet(ids []string) map[string]struct{} {
	if len(ids) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

func windowChanged(last, now time.Time, loc *time.Location) bool {
	a, _ := quota.Window(last, loc)
	b, _ := quota.Window(now, loc)
	return a != b
}

// nextDiscovery is one interval after the last, plus a jitter fixed per source so many
// sources created together do not list their buckets in the same second.
func nextDiscovery(src *v1.S3Source, last time.Time) time.Time {
	if last.IsZero() {
		return last
	}
	return last.Add(intervalOf(src.Spec.Interval) + Jitter(string(src.UID), intervalOf(src.Spec.Interval)))
}

// dueAt is when the next discovery is due: one interval (plus jitter) after the last, or
// the failure backoff after a failed one.
func dueAt(src *v1.S3Source, last time.Time, failures int32) time.Time {
	if last.IsZero() {
		return last
	}
	if failures > 0 {
		return last.Add(retryBackoff(src, failures))
	}
	return nextDiscovery(src, last)
}

// Jitter is a stable offset in whole seconds in [0, interval/60) derived from the
// source's UID.
func Jitter(uid string, interval time.Duration) time.Duration {
	span := int64(interval / 60 / time.Second)
	if span <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	return time.Duration(h.Sum64()%uint64(span)) * time.Second
}

// statusTime is t as status stores it: metav1.Time keeps whole seconds, and decisions
// use the same precision so a re-read status compares equal.
func statusTime(t time.Time) time.Time { return t.Truncate(time.Second) }

func intervalOf(interval *metav1.Duration) time.Duration {
	if interval != nil && interval.Duration >= time.Minute {
		return interval.Duration
	}
	return time.Hour
}

// failureBackoff retries a failing source sooner than its interval, doubling from 30s
// with each consecutive failure, so a broken bucket never turns into a hot loop.
func failureBackoff(interval *metav1.Duration, failures int32) time.Duration {
	limit := intervalOf(interval)
	d := 30 * time.Second
	for i := int32(1); i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// retryBackoff is the failure backoff of a source: failureBackoff, capped at
// credentialsRetryCap for a source whose credentials the tenant controls, since no watch
// tells the operator when the tenant fixed its Secret or ServiceAccount.
func retryBackoff(src *v1.S3Source, failures int32) time.Duration {
	d := failureBackoff(src.Spec.Interval, failures)
	if tenantCredentials(src) || src.Spec.CASecretRef != nil {
		d = min(d, credentialsRetryCap)
	}
	return d
}

// reconcileDelete stops any run and removes the source's ledger; nothing in S3 is touched
// and conversations already imported stay.
func (r *S3SourceReconciler) reconcileDelete(ctx context.Context, src *v1.S3Source) error {
	if !controllerutil.ContainsFinalizer(src, v1.Finalizer) {
		return nil
	}
	key := client.ObjectKeyFromObject(src)
	stopCtx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	if !r.runs.stop(stopCtx, key) {
		// A file still committing would write ledger rows after they were removed.
		return fmt.Errorf("the discovery of %s did not stop within %s; retrying the deletion", key, stopTimeout)
	}
	release, err := r.fenceSource(ctx, key)
	if err != nil {
		return err
	}
	defer release()
	r.events.forget(key)
	if err := errors.Join(r.Store.DeleteSource(ctx, key.String()), r.Store.DeleteSource(ctx, discovery.DryRunLedger(key.String()))); err != nil {
		return fmt.Errorf("removing the ledger of %s: %w", key, err)
	}
	r.Metrics.forget(src)
	patch := client.MergeFrom(src.DeepCopy())
	controllerutil.RemoveFinalizer(src, v1.Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, src, patch))
}

// emitRunEvents records what a finished run did. Warnings for every failure; a Normal
// event only when the run changed something (see runChanged), so an hourly discovery that
// finds nothing new does not add one event per source per hour to the namespace.
func (r *S3SourceReconciler) emitRunEvents(src *v1.S3Source, s *sourceScope, before *v1.S3SourceStatus) {
	res := s.result
	if res.Err != nil {
		f := runFailure(src, res)
		if f.reason == v1.ReasonEndpointNotAllowed {
			// An address refused at dial time leaves what an endpoint refused before any run
			// leaves: the Ready and Stalled conditions, no event.
			return
		}
		if f.stalled && (stalledWith(before.Conditions, f.reason) || s.memo.stalledReason == f.reason) {
			// A stalled source retried on its backoff failing the same way again: it said
			// so when it stalled, not once per retry.
			return
		}
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, "DiscoveryFailed", "Discover", "%s", f.message)
		return
	}
	if runChanged(res, before) {
		r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, "DiscoverySucceeded", "Discover", "%s", runSummary(res))
	}
	r.emitFileEvents(src, s)
}

// emitFileEvents records what a run (a discovery or an event run) did to files: failed,
// deferred, and personal data found.
func (r *S3SourceReconciler) emitFileEvents(src *v1.S3Source, s *sourceScope) {
	res := s.result
	if res.NewlyFailed > 0 {
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, "FilesFailed", "Ingest", "%d file(s) failed this run; see status.recentFileErrors", res.NewlyFailed)
	}
	if res.NewlyDeferred > 0 {
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonQuotaExceeded, "Ingest",
			"%d file(s) deferred: they do not fit in what is left of today's quota of IngestionQuota %s; they are ingested after the reset, or as soon as the limit is raised", res.NewlyDeferred, s.quota.Key)
	}
	r.emitPIIEvents(src, res)
}

// stalledWith reports whether conds hold Stalled=True with reason.
func stalledWith(conds []metav1.Condition, reason string) bool {
	c := meta.FindStatusCondition(conds, v1.ConditionStalled)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
}

// announceStall records one Warning event when a step stalls the source (a Secret, the
// quota, the validators...), not one per re-check. A run that stalls says so with its
// DiscoveryFailed event; an endpoint refused leaves no event at all (see emitRunEvents).
func (r *S3SourceReconciler) announceStall(src *v1.S3Source, s *sourceScope, before *v1.S3SourceStatus) {
	c := meta.FindStatusCondition(src.Status.Conditions, v1.ConditionStalled)
	if c == nil || c.Status != metav1.ConditionTrue {
		// A retry in flight lifts Stalled for a while; only a recovery ends the stall.
		if s.memo.stalledReason != "" && meta.IsStatusConditionTrue(src.Status.Conditions, v1.ConditionReady) {
			r.runs.remember(s.key, func(m *runMemo) { m.stalledReason = "" })
		}
		return
	}
	if stalledWith(before.Conditions, c.Reason) || s.memo.stalledReason == c.Reason {
		return
	}
	r.runs.remember(s.key, func(m *runMemo) { m.stalledReason = c.Reason })
	if s.result != nil || c.Reason == v1.ReasonEndpointNotAllowed || c.Reason == v1.ReasonOperatorIdentityEndpointNotAllowed {
		return
	}
	r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonSourceStalled, "Stall", "%s", c.Message)
}
