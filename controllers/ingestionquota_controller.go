package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// IngestionQuotaReconciler reports a quota's usage in its current window and requeues at
// the reset. Sources wake themselves at the reset; the S3Source controller wakes them when
// the quota's spec changes (see quotaHandler), never on this status.
type IngestionQuotaReconciler struct {
	client.Client
	Store   store.Store
	Clock   clock.PassiveClock
	Metrics *Metrics
	// Ceilings bound every quota; status shows the effective limits.
	Ceilings Ceilings
}

// +kubebuilder:rbac:groups=dataimport.avon.ai,resources=ingestionquotas,verbs=get;list;watch
// +kubebuilder:rbac:groups=dataimport.avon.ai,resources=ingestionquotas/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dataimport.avon.ai,resources=s3sources,verbs=get;list;watch

// SetupWithManager registers the controller; a source's status change (a finished run)
// refreshes the usage of its quota.
func (r *IngestionQuotaReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Metrics == nil {
		r.Metrics = NewMetrics(nil)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.IngestionQuota{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1.S3Source{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			name := obj.(*v1.S3Source).Spec.QuotaRef
			if name == "" {
				name = "default"
			}
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}}}
		})).
		Named("ingestionquota").
		Complete(r)
}

// Reconcile computes the window's usage and patches status once, only when it changed.
func (r *IngestionQuotaReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var quota v1.IngestionQuota
	if err := r.Get(ctx, req.NamespacedName, &quota); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.QuotaUsed.DeleteLabelValues(req.Namespace, req.Name)
			r.Metrics.QuotaLimit.DeleteLabelValues(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.Clock.Now()
	before := quota.Status.DeepCopy()
	q, err := quotaFromSpec(req.String(), quota.Spec, r.Ceilings)
	var usage *quotaUsage
	if err == nil {
		usage, err = r.readUsage(ctx, q, now)
	}
	quota.Status = computeQuotaStatus(&quota, *before, q, usage, err, now)
	if !equality.Semantic.DeepEqual(before, &quota.Status) {
		patch := client.MergeFrom(&v1.IngestionQuota{ObjectMeta: quota.ObjectMeta, Status: *before})
		if err := r.Status().Patch(ctx, &quota, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("patching status: %w", err)
		}
	}
	var sf *stepFailure
	switch {
	case errors.As(err, &sf) && sf.stalled:
		return ctrl.Result{}, nil // only a spec change helps; that triggers a reconcile
	case err != nil:
		return ctrl.Result{}, err
	}
	r.Metrics.QuotaUsed.WithLabelValues(req.Namespace, req.Name).Set(float64(usage.used))
	r.Metrics.QuotaLimit.WithLabelValues(req.Namespace, req.Name).Set(float64(q.DailyLimit))
	// Wake at the reset; a second past it so the new window is certain.
	return ctrl.Result{RequeueAfter: usage.resetsAt.Sub(now) + time.Second}, nil
}

type quotaUsage struct {
	day       string
	resetsAt  time.Time
	used      int64
	perSource map[string]int64
}

func (r *IngestionQuotaReconciler) readUsage(ctx context.Context, q resolvedQuota, now time.Time) (*quotaUsage, error) {
	day, resetsAt := q.Window(now)
	used, per, err := r.Store.Usage(ctx, q.Key, day)
	if err != nil {
		return nil, &stepFailure{reason: v1.ReasonStoreError, message: "reading usage: " + err.Error()}
	}
	return &quotaUsage{day: day, resetsAt: resetsAt, used: used, perSource: per}, nil
}

// limitsCappedCondition says whether the ceilings lowered what the spec asked for.
func limitsCappedCondition(q resolvedQuota) metav1.Condition {
	if capped := q.Lowered(); len(capped) > 0 {
		return metav1.Condition{Type: v1.ConditionLimitsCapped, Status: metav1.ConditionTrue, Reason: v1.ReasonCeilingApplied,
			Message: "spec." + strings.Join(capped, "; spec.") + ". Only the platform admin can raise the ceilings."}
	}
	return metav1.Condition{Type: v1.ConditionLimitsCapped, Status: metav1.ConditionFalse, Reason: v1.ReasonWithinCeilings,
		Message: fmt.Sprintf("the spec's limits apply: %s a day, %s a file", quota.FormatBytes(q.DailyLimit), quota.FormatBytes(q.MaxFileSize))}
}

// computeQuotaStatus is the one place a quota's status is decided.
func computeQuotaStatus(iq *v1.IngestionQuota, prev v1.IngestionQuotaStatus, q resolvedQuota, u *quotaUsage, err error, now time.Time) v1.IngestionQuotaStatus {
	st := *prev.DeepCopy()
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: iq.Generation, LastTransitionTime: metav1.NewTime(now)})
	}
	st.ObservedGeneration = iq.Generation
	if q.DailyLimit > 0 {
		// The limits are known even when the time zone or the store fails.
		st.EffectiveDailyLimit = resource.NewQuantity(q.DailyLimit, resource.DecimalSI)
		st.EffectiveMaxFileSize = resource.NewQuantity(q.MaxFileSize, resource.DecimalSI)
		c := limitsCappedCondition(q)
		set(c.Type, c.Status, c.Reason, c.Message)
	}
	var sf *stepFailure
	if errors.As(err, &sf) {
		set(v1.ConditionReady, metav1.ConditionFalse, sf.reason, sf.message)
		if sf.stalled {
			set(v1.ConditionStalled, metav1.ConditionTrue, sf.reason, sf.message)
		}
		return st
	} else if err != nil {
		set(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonStoreError, err.Error())
		return st
	}
	meta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
	st.Window = u.day
	st.UsedBytes = u.used
	st.RemainingBytes = max(0, q.DailyLimit-u.used)
	st.Usage = usageSummary(q.DailyLimit, u.used, u.resetsAt)
	resets := metav1.NewTime(u.resetsAt)
	st.ResetsAt = &resets
	st.TopSources, st.SourcesCharged = topSources(u.perSource, v1.MaxTopSources)
	set(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, st.Usage)
	status, reason, msg := quotaAvailability(q.DailyLimit, u.used, u.resetsAt)
	set(v1.ConditionQuotaAvailable, status, reason, msg)
	return st
}

// topSources are the n sources that used the most, most first (ties by name), and how
// many sources used anything: status stays the same size whatever the number of sources.
func topSources(perSource map[string]int64, n int) ([]v1.SourceUsage, int32) {
	all := make([]v1.SourceUsage, 0, len(perSource))
	for key, used := range perSource {
		if used <= 0 {
			continue
		}
		name := key
		if i := strings.IndexByte(key, '/'); i >= 0 {
			name = key[i+1:]
		}
		all = append(all, v1.SourceUsage{Name: name, UsedBytes: used})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].UsedBytes != all[j].UsedBytes {
			return all[i].UsedBytes > all[j].UsedBytes
		}
		return all[i].Name < all[j].Name
	})
	count := int32(len(all))
	if len(all) > n {
		all = all[:n]
	}
	if len(all) == 0 {
		all = nil
	}
	return all, count
}
