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
	// wakeDeferred: room appeared (the window reset, or usage fell); only sources waiting
	// with deferred files can act on it.
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
	case old.Status.Window != cur.Status.Window, cur.Status.RemainingBytes > old.Status.RemainingBytes:
		return wakeDeferred
	}
	return wakeNone
}

// hasDeferred reports whether a source waits for quota.
func hasDeferred(s *v1.S3Source) bool { return s.Status.Files != nil && s.Status.Files.Deferred > 0 }

// quotaHandler maps IngestionQuota events to the sources they concern (quotaWakeupOf). A
// spec change or a deletion (the defaults then apply) also marks the sources, so one with
// deferred files runs at once if the limit now leaves room ("quota raised", decideRun).
func (r *S3SourceReconciler) quotaHandler() handler.EventHandler {
	enqueue := func(ctx context.Context, obj client.Object, wake quotaWakeup, specChanged bool, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if wake == wakeNone {
			return
		}
		for _, req := range r.sourcesMatching(ctx, obj.GetNamespace(), func(s *v1.S3Source) bool {
			return quotaNameOf(s) == obj.GetName() && (wake == wakeAll || hasDeferred(s))
		}) {
			if specChanged {
				r.runs.remember(req.NamespacedName, func(m *runMemo) { m.quotaRaised = true })
			}
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			// Every quota is "created" when the manager starts: not a reason to run.
			enqueue(ctx, e.Object, wakeAll, false, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			old, okOld := e.ObjectOld.(*v1.IngestionQuota)
			cur, okNew := e.ObjectNew.(*v1.IngestionQuota)
			if okOld && okNew {
				wake := quotaWakeupOf(old, cur)
				enqueue(ctx, cur, wake, wake == wakeAll, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, wakeAll, true, q)
		},
	}
}
