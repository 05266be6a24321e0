package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/receiver"
	"github.com/avon-ai/data-import-operator/internal/shard"
)

// ReceiverOptions are the manager's knobs for the webhook receiver.
type ReceiverOptions struct {
	// Address the receiver listens on, e.g. ":9292"; "" or "0" runs no receiver.
	Address string
	// Listener, when set, is used instead of Address (tests pick a free port first).
	Listener net.Listener
	// SNSConfirmHosts are the hosts whose SNS SubscribeURL the operator fetches to confirm
	// a subscription, e.g. "sns.eu-west-1.amazonaws.com" or "*.amazonaws.com"; any other
	// confirmation is only reported in an event. Empty: none (the operator makes no
	// request a webhook body asks for).
	SNSConfirmHosts []string
	// MaxPendingKeys bounds the keys queued per source while a run is in flight; past it
	// the queue is dropped for one full discovery (0: DefaultMaxPendingKeys).
	MaxPendingKeys int
}

// DefaultMaxPendingKeys bounds a source's queued event keys: 10,000 keys are about 1 MB
// of memory and 10 listing pages' worth of HeadObject requests.
const DefaultMaxPendingKeys = 10_000

// mismatchRefresh is how often a wrong token on a source's path may make the source
// re-read its events Secret (the token may have been rotated).
const mismatchRefresh = 10 * time.Second

// eventQueue holds what the receiver accepted until a reconcile starts a run for it.
type eventQueue struct {
	registry *receiver.Registry
	runs     *runTracker
	now      func() time.Time
	max      int
	enabled  bool
	confirm  []string

	mu           sync.Mutex
	pending      map[types.NamespacedName]*pendingKeys
	lastMismatch map[types.NamespacedName]time.Time
	// read is when a source's events Secret was last read and for which spec: the token
	// is registered until the spec changes, a wrong token asks for a re-read (mismatch),
	// or recheck passes, so a reconcile does not read the Secret every time.
	read map[types.NamespacedName]secretRead
}

// secretRead is when a reference the operator does not watch (a Secret, a
// ServiceAccount) was last read, and for which generation of the source.
type secretRead struct {
	generation int64
	at         time.Time
}

// current reports whether the read was for this generation less than recheck ago.
func (r secretRead) current(generation int64, now time.Time, recheck time.Duration) bool {
	return !r.at.IsZero() && r.generation == generation && now.Sub(r.at) < recheck
}

// tokenCurrent reports whether the source's registered token was read for this
// generation less than recheck ago and no wrong token asked for a re-read since.
func (q *eventQueue) tokenCurrent(key types.NamespacedName, generation int64, recheck time.Duration) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.read[key]
	m := q.lastMismatch[key]
	return r.current(generation, q.now(), recheck) && (m.IsZero() || m.Before(r.at))
}

// tokenRead records a successful read of the source's token (see tokenCurrent).
func (q *eventQueue) tokenRead(key types.NamespacedName, generation int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.read[key] = secretRead{generation: generation, at: q.now()}
}

// pendingKeys are a source's queued keys: a set, so a duplicate or replayed event adds
// nothing. overflow asks for one full discovery instead.
type pendingKeys struct {
	keys      map[string]struct{}
	overflow  bool
	signalled bool
}

func parseSource(source string) types.NamespacedName {
	ns, name, _ := cache.SplitMetaNamespaceKey(source)
	return types.NamespacedName{Namespace: ns, Name: name}
}

// enqueue is the receiver's Enqueue: it queues keys and wakes the source once.
func (q *eventQueue) enqueue(source string, keys []string) error {
	key := parseSource(source)
	q.mu.Lock()
	p := q.pending[key]
	if p == nil {
		p = &pendingKeys{keys: map[string]struct{}{}}
		q.pending[key] = p
	}
	if !p.overflow {
		for _, k := range keys {
			p.keys[k] = struct{}{}
		}
		if len(p.keys) > q.max {
			p.overflow, p.keys = true, map[string]struct{}{}
		}
	}
	wake := !p.signalled
	p.signalled = true
	q.mu.Unlock()
	if wake {
		q.wake(key)
	}
	return nil
}

// wake triggers a reconcile of the source without waiting for room in the channel.
func (q *eventQueue) wake(key types.NamespacedName) {
	ev := event.GenericEvent{Object: &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
	select {
	case q.runs.events <- ev:
	default:
		go func() {
			select {
			case q.runs.events <- ev:
			case <-q.runs.base.Done():
			}
		}()
	}
}

// take hands a reconcile the queued keys (or the overflow) and clears them.
func (q *eventQueue) take(key types.NamespacedName) (keys []string, overflow bool) {
	if q == nil {
		return nil, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending[key]
	if p == nil {
		return nil, false
	}
	delete(q.pending, key)
	for k := range p.keys {
		keys = append(keys, k)
	}
	return keys, p.overflow
}

// requeue puts back keys a reconcile took but could not start a run for.
func (q *eventQueue) requeue(key types.NamespacedName, keys []string, overflow bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending[key]
	if p == nil {
		p = &pendingKeys{keys: map[string]struct{}{}}
		q.pending[key] = p
	}
	p.overflow = p.overflow || overflow
	if !p.overflow {
		for _, k := range keys {
			p.keys[k] = struct{}{}
		}
	}
	if len(p.keys) > q.max {
		p.overflow, p.keys = true, map[string]struct{}{}
	}
}

// forget drops a deleted source's registration and queue.
func (q *eventQueue) forget(key types.NamespacedName) {
	if q == nil {
		return // a reconciler built without SetupWithManager (unit tests)
	}
	q.registry.Remove(key.String())
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, key)
	delete(q.lastMismatch, key)
	delete(q.read, key)
}

// mismatch is the receiver's Mismatch: a wrong token may mean the tenant rotated it, so
// the source re-reads its Secret, at most once per mismatchRefresh.
func (q *eventQueue) mismatch(source string) {
	key := parseSource(source)
	q.mu.Lock()
	now := q.now()
	due := now.Sub(q.lastMismatch[key]) >= mismatchRefresh
	if due {
		q.lastMismatch[key] = now
	}
	q.mu.Unlock()
	if due {
		q.wake(key)
	}
}

func (q *eventQueue) ready() bool {
	select {
	case <-q.runs.ready:
		return true
	default:
		return false
	}
}

// eventsState is what stepEvents decided for status.
type eventsState struct {
	path            string
	reason, message string
}

// stepEvents registers the source's webhook path with the token from its Secret. A
// broken events Secret does not stop discovery: EventsReady says what is wrong.
func (r *S3SourceReconciler) stepEvents(ctx context.Context, s *sourceScope) (time.Duration, error) {
	src := s.src
	if src.Spec.Events == nil {
		r.events.forget(s.key)
		return 0, nil
	}
	if r.events == nil || !r.events.enabled {
		r.events.forget(s.key)
		s.events = &eventsState{reason: v1.ReasonReceiverDisabled,
			message: "the operator runs no webhook receiver (--receiver-bind-address=0): ask the platform admin to enable it; scheduled discoveries still run"}
		return 0, nil
	}
	listening := &eventsState{reason: v1.ReasonReceiverListening,
		message: fmt.Sprintf("the receiver accepts S3 event notifications for s3://%s/%s at status.webhookPath with the token as a Bearer token", src.Spec.Bucket, src.Spec.Prefix)}
	if path := r.events.registry.Path(s.key.String()); path != "" && r.events.tokenCurrent(s.key, src.Generation, r.Identity.ReferenceRecheck) {
		listening.path = path
		s.events = listening
		return 0, nil
	}
	name := src.Spec.Events.SecretRef.Name
	data, err := r.secretData(ctx, src.Namespace, name, "events.secretRef")
	var sf *stepFailure
	switch {
	case errors.As(err, &sf):
		r.events.registry.Remove(s.key.String())
		s.events = &eventsState{reason: v1.ReasonInvalidEventsSecret, message: sf.message}
		return r.Identity.ReferenceRecheck, nil
	case err != nil:
		return 0, err
	}
	token := strings.TrimSpace(string(data[v1.EventsTokenKey]))
	if len(token) < receiver.MinTokenBytes {
		r.events.registry.Remove(s.key.String())
		s.events = &eventsState{reason: v1.ReasonInvalidEventsSecret, message: fmt.Sprintf(
			"Secret %s/%s named by spec.events.secretRef needs a %q key of at least %d characters (e.g. head -c 24 /dev/urandom | base64)",
			src.Namespace, name, v1.EventsTokenKey, receiver.MinTokenBytes)}
		return r.Identity.ReferenceRecheck, nil
	}
	listening.path = r.events.registry.Set(receiver.Target{Source: s.key.String(), Bucket: src.Spec.Bucket, Prefix: src.Spec.Prefix, Paused: src.Spec.Disabled},
		src.Namespace, src.Name, token)
	r.events.tokenRead(s.key, src.Generation)
	s.events = listening
	return 0, nil
}

// stepStartEventRun starts a run of the keys events named once no discovery is due or
// running; an overflowed queue (or a failed event run) gets one full discovery instead.
func (r *S3SourceReconciler) stepStartEventRun(ctx context.Context, s *sourceScope) (time.Duration, error) {
	if s.running {
		return 0, errStop
	}
	keys, overflow := r.events.take(s.key)
	if len(keys) == 0 && !overflow {
		return 0, nil
	}
	client, err := r.bucketClient(ctx, s.src, s.identity)
	if err != nil {
		r.events.requeue(s.key, keys, overflow)
		return 0, err
	}
	job := jobOf(s)
	if overflow {
		trig := runTrigger{reason: v1.TriggerEventOverflow, started: s.now, validationHash: validationHash(&s.src.Spec)}
		if r.runs.start(s.src, client, job, trig) {
			s.running, s.started, s.inFlight = true, true, trig
			log.FromContext(ctx).Info("discovery started", "reason", trig.reason, "bucket", s.src.Spec.Bucket, "prefix", s.src.Spec.Prefix)
		}
		return 0, errStop
	}
	if !r.runs.startKeys(s.src, client, job, keys) {
		r.events.requeue(s.key, keys, false)
		return 0, errStop
	}
	s.running = true
	log.FromContext(ctx).V(1).Info("event run started", "keys", len(keys))
	return 0, errStop
}

// foldEvents puts the receiver's state in status.
func foldEvents(st *v1.S3SourceStatus, s *sourceScope, set func(typ string, status metav1.ConditionStatus, reason, msg string)) {
	if s.src.Spec.Events == nil {
		st.WebhookPath = ""
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionEventsReady)
		return
	}
	if s.events == nil {
		return // a step before stepEvents failed: nothing new is known
	}
	st.WebhookPath = s.events.path
	if s.events.path == "" {
		set(v1.ConditionEventsReady, metav1.ConditionFalse, s.events.reason, s.events.message)
		return
	}
	set(v1.ConditionEventsReady, metav1.ConditionTrue, s.events.reason, s.events.message)
}

// foldEventRun adds a finished event run's changes to the totals in status. A failed
// event run changes nothing: the full discovery it falls back to reports.
func foldEventRun(st *v1.S3SourceStatus, s *sourceScope, set func(typ string, status metav1.ConditionStatus, reason, msg string)) {
	res := s.result
	if res.Err != nil {
		return
	}
	finished := metav1.NewTime(statusTime(res.Finished))
	st.LastEventTime = &finished
	if st.Files == nil {
		st.Files = &v1.FileCounts{}
	}
	f := st.Files
	add := func(n *int64, d int64) { *n = max(0, *n+d) }
	add(&f.Discovered, res.Listed)
	add(&f.Ingested, res.Ingested)
	add(&f.Failed, res.Failed)
	add(&f.Deferred, res.Deferred)
	add(&f.Ignored, res.Ignored)
	if s.totals == nil {
		st.ConversationsIngested += res.Conversations.New + res.Conversations.Updated
		st.PII = foldPII(st.PII, s.src.Spec.Validators, res.PII)
	}
	st.RecentFileErrors = nil
	for _, fe := range res.RecentErrors {
		st.RecentFileErrors = append(st.RecentFileErrors, fileError(fe))
	}
	if c := meta.FindStatusCondition(st.Conditions, v1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue && (c.Reason == v1.ReasonSucceeded || c.Reason == v1.ReasonNoObjectsFound) {
		set(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, fmt.Sprintf(
			"%d object(s) known: %d ingested, %d failed, %d deferred, %d ignored; the last event run downloaded %d (%s)",
			f.Discovered, f.Ingested, f.Failed, f.Deferred, f.Ignored, res.Downloaded, quota.FormatBytes(res.BytesDownloaded)))
	}
	if f.Failed > 0 {
		set(v1.ConditionFilesHealthy, metav1.ConditionFalse, v1.ReasonFilesFailed, fmt.Sprintf("%d file(s) failed; see status.recentFileErrors", f.Failed))
	} else {
		set(v1.ConditionFilesHealthy, metav1.ConditionTrue, v1.ReasonAllFilesIngested, "no file under the prefix is failed")
	}
}

// foldedEventRun records what a folded event run did: counters (the gauges describe full
// discoveries), events, and a full discovery when the run failed.
func (r *S3SourceReconciler) foldedEventRun(src *v1.S3Source, s *sourceScope) {
	res := s.result
	if res.Err != nil {
		// A lookup that failed for another reason than a missing object (denied,
		// unreachable): the full discovery's failure handling and backoff take over.
		r.events.requeue(s.key, nil, true)
		r.events.wake(s.key)
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonEventsReceived, "Ingest",
			"looking up event-named objects failed, a full discovery follows: %s", runFailure(src, res).message)
		return
	}
	r.Metrics.countFiles(src, res)
	if res.Downloaded > 0 || res.NewlyDeferred > 0 {
		r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, v1.ReasonEventsReceived, "Ingest",
			"events named new or changed objects: downloaded %d (%s), %d conversation(s) new, %d updated; %d file(s) failed, %d deferred",
			res.Downloaded, quota.FormatBytes(res.BytesDownloaded), res.Conversations.New, res.Conversations.Updated, res.NewlyFailed, res.NewlyDeferred)
	}
	r.emitFileEvents(src, s)
}

// confirmSubscription handles an SNS SubscriptionConfirmation that came with the
// source's token: fetched only from a host the admin allowed, otherwise reported. The
// SubscribeURL carries a confirmation token and appears nowhere.
func (r *S3SourceReconciler) confirmSubscription(ctx context.Context, source string, c receiver.Confirmation) {
	key := parseSource(source)
	src := &v1.S3Source{}
	if err := r.Get(ctx, key, src); err != nil {
		return
	}
	u, err := url.Parse(c.SubscribeURL)
	if err != nil || u.Scheme != "https" || !hostAllowed(u.Hostname(), r.events.confirm) {
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonSubscriptionConfirmation, "Receive",
			"SNS topic %s asks to confirm an HTTPS subscription to this source's receiver; the operator fetches confirmation URLs only from hosts the platform admin allows (--receiver-sns-confirm-hosts), and this one is not: ask the admin, then subscribe again",
			c.TopicARN)
		return
	}
	go func() {
		reqCtx, cancel := context.WithTimeout(r.runs.base, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u.String(), nil)
		if err != nil {
			return
		}
		// No redirects: an allowed host must not send the operator elsewhere.
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Do(req)
		if err != nil {
			// The error holds the URL; only say that it failed.
			r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonSubscriptionConfirmation, "Receive",
				"confirming the subscription of SNS topic %s failed: the confirmation URL could not be fetched", c.TopicARN)
			return
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonSubscriptionConfirmation, "Receive",
				"confirming the subscription of SNS topic %s failed with HTTP %d", c.TopicARN, resp.StatusCode)
			return
		}
		r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, v1.ReasonSubscriptionConfirmation, "Receive",
			"confirmed the subscription of SNS topic %s", c.TopicARN)
	}()
}

// hostAllowed matches host against exact names and "*.suffix" patterns.
func hostAllowed(host string, allowed []string) bool {
	host = strings.ToLower(host)
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if a != "" && host == a {
			return true
		}
	}
	return false
}

// shardHolders is what the receiver asks a shard elector (shard.Elector): who holds a
// source's shard and where its receiver listens.
type shardHolders interface {
	Holder(key string) shard.Holder
}

// routeEvent is the receiver's Route: unsharded, this process acts on every source (it
// answers 503 until it leads); sharded, the replica serving the source does, and the
// others hand it the request.
func (r *S3SourceReconciler) routeEvent(source string) receiver.Route {
	if r.Shards == nil {
		return receiver.Route{Local: true}
	}
	var h shard.Holder
	if hs, ok := r.Shards.(shardHolders); ok {
		h = hs.Holder(source)
	}
	return routeOf(r.Shards.Owns(source), h)
}

// routeOf decides from what the elector says: served here, held by a replica that
// published its address, or nobody to hand the event to (the shard is free, this
// replica is handing it back, or its holder runs without an address).
func routeOf(owns bool, h shard.Holder) receiver.Route {
	switch {
	case owns:
		return receiver.Route{Local: true}
	case h.Self || h.Identity == "" || h.Address == "":
		return receiver.Route{}
	}
	return receiver.Route{Owner: h.Address}
}

// registerNotOwned keeps the receiver's registration of a source another replica
// serves, so this replica can authenticate the source's events before handing them on.
// It reads the events Secret as the owner does (once per spec, token mismatch or
// recheck) and asks to be called again once per spec.interval, as the owner reconciles,
// so a rotated token is learnt here about when the owner learns it. Keys still queued
// here from when this replica served the source cannot run here any more: they are
// reported, not dropped silently.
func (r *S3SourceReconciler) registerNotOwned(ctx context.Context, key types.NamespacedName) (time.Duration, error) {
	if r.events == nil || !r.events.enabled {
		return 0, nil
	}
	src := &v1.S3Source{}
	if err := r.Get(ctx, key, src); err != nil {
		if apierrors.IsNotFound(err) {
			r.events.forget(key)
			return 0, nil
		}
		return 0, err
	}
	if !src.DeletionTimestamp.IsZero() {
		r.events.forget(key)
		return 0, nil
	}
	if keys, overflow := r.events.take(key); len(keys) > 0 || overflow {
		log.FromContext(ctx).Info("event keys queued here were left when the source's shard moved to another replica", "keys", len(keys), "overflow", overflow)
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, v1.ReasonEventsReceived, "Receive",
			"%d event-named object(s) were queued on a replica that handed the source to another before ingesting them; the next scheduled discovery ingests them (or set the %s annotation to run one now)",
			len(keys), v1.RefreshAnnotation)
	}
	s := &sourceScope{src: src, key: key, now: r.Clock.Now()}
	after, err := r.stepEvents(ctx, s)
	switch {
	case err != nil:
		return 0, err
	case src.Spec.Events == nil:
		return 0, nil
	case after > 0:
		return min(after, intervalOf(src.Spec.Interval)), nil // a broken Secret: look again sooner
	}
	return intervalOf(src.Spec.Interval), nil
}

// receiverServer serves the webhook receiver on its own address. Every replica listens;
// unsharded, only the leader acts (others answer 503, and senders retry); sharded, each
// replica acts on the sources it serves and hands the others' events to their replica.
type receiverServer struct {
	addr     string
	listener net.Listener
	handler  http.Handler
}

func (s *receiverServer) Start(ctx context.Context) error {
	ln := s.listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.addr); err != nil {
			return fmt.Errorf("webhook receiver: %w", err)
		}
	}
	srv := &http.Server{
		Handler: s.handler,
		// Bounded: a slow or hostile client holds no goroutine for long.
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		MaxHeaderBytes: 16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook receiver: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return nil
}

// NeedLeaderElection: every replica answers, so a Service never routes to a closed port.
func (s *receiverServer) NeedLeaderElection() bool { return false }

// setupReceiver creates the event queue and, unless disabled, the receiver's server.
func (r *S3SourceReconciler) setupReceiver(mgr interface{ Add(manager.Runnable) error }, opts ReceiverOptions) error {
	if opts.MaxPendingKeys <= 0 {
		opts.MaxPendingKeys = DefaultMaxPendingKeys
	}
	r.events = &eventQueue{
		registry: receiver.NewRegistry(), runs: r.runs, now: r.Clock.Now, max: opts.MaxPendingKeys,
		enabled: opts.Listener != nil || (opts.Address != "" && opts.Address != "0"), confirm: opts.SNSConfirmHosts,
		pending: map[types.NamespacedName]*pendingKeys{}, lastMismatch: map[types.NamespacedName]time.Time{}, read: map[types.NamespacedName]secretRead{},
	}
	if !r.events.enabled {
		return nil
	}
	h := &receiver.Handler{
		Registry: r.events.registry, Enqueue: r.events.enqueue, Mismatch: r.events.mismatch, Confirm: r.confirmSubscription,
		Ready: r.events.ready, Requests: r.Metrics.WebhookRequests, Log: ctrl.Log.WithName("receiver"),
		Route: r.routeEvent,
	}
	return mgr.Add(&receiverServer{addr: opts.Address, listener: opts.Listener, handler: h})
}
