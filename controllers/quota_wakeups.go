package controllers

import (
	"context"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// quotaWakeup is which sources of a quota an IngestionQuota event must reconcile.
type quotaWakeup int

const (
	// wakeNone: nothing a source acts on changed (usage grew: one file of one source must
	// not reconcile the others).
	wakeNone quotaWakeup = iota
	// wakeDeferred: the window reset; only sources waiting with deferred files can act on
	// it. (Usage falling within a window, e.g. a reservation released, is no reason to
	// run: a source deferred its files against the limit, which the window reset or a
	// spec change moves.)
	wakeDeferred
	// wakeAll: the quota appeared, went away or its spec (limits, time zone, cooldown)
	// changed; every source of it shows and applies the quota.
	wakeAll
)

// quotaWakeupOf decides the fan-out of an update of a quota from its old to its new state.
func quotaWakeupOf(old, cur *v1.IngestionQuota) quotaWakeup {
	switch {
	case old.Generation != cur.Generation:
		return wakeAll
	case old.Status.Window != cur.Status.Window:
		return wakeDeferred
	}
	return wakeNone
}

// hasDeferred reports whether a source waits for quota.
func hasDeferred(s *v1.S3Source) bool { return s.Status.Files != nil && s.Status.Files.Deferred > 0 }

// quotaHandler maps IngestionQuota events to the sources they concern (quotaWakeupOf). A
// source with deferred files that a spec change or deletion (the defaults then apply)
// gave a higher limit runs at once: decideRun compares the limit with the one its last
// run had ("quota raised").
func (r *S3SourceReconciler) quotaHandler() handler.EventHandler {
	enqueue := func(ctx context.Context, obj client.Object, wake quotaWakeup, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if wake == wakeNone {
			return
		}
		for _, req := range r.sourcesMatching(ctx, obj.GetNamespace(), func(s *v1.S3Source) bool {
			return quotaNameOf(s) == obj.GetName() && (wake == wakeAll || hasDeferred(s))
		}) {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			// Every quota is "created" when the manager starts: not a reason to run.
			enqueue(ctx, e.Object, wakeAll, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			old, okOld := e.ObjectOld.(*v1.IngestionQuota)
			cur, okNew := e.ObjectNew.(*v1.IngestionQuota)
			if okOld && okNew {
				enqueue(ctx, cur, quotaWakeupOf(old, cur), q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, wakeAll, q)
		},
	}
}
