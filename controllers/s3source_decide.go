package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// runDecision is what decideRun found: whether a run starts now and why, which refresh
// requests it handles, and otherwise when to look again.
type runDecision struct {
	// trigger.reason is "" when no run starts now.
	trigger runTrigger
	// throttled is a pending refresh request that waits for the cooldown until readyAt.
	throttled string
	readyAt   time.Time
	// wait is when to look again when no run starts.
	wait time.Duration
	// recheckFailed: the validation settings changed since failed files were checked.
	recheckFailed bool
}

// pendingRequests are the refresh and Flux reconcile requests no run handled yet.
func (s *sourceScope) pendingRequests() (refresh, reconcileAt string) {
	if v := s.src.Annotations[v1.RefreshAnnotation]; v != "" && v != s.handledRefresh() {
		refresh = v
	}
	if v := s.src.Annotations[v1.ReconcileRequestAnnotation]; v != "" && v != s.handledReconcileAt() {
		reconcileAt = v
	}
	return refresh, reconcileAt
}

// handledReconcileAt is the Flux request last acted on, from status or this process.
func (s *sourceScope) handledReconcileAt() string {
	if s.memo.handledReconcileAt != "" {
		return s.memo.handledReconcileAt
	}
	return s.src.Status.LastHandledReconcileAt
}

// interrupted reports whether status shows a run in flight that no process runs: the
// manager that started it stopped (crashed, was killed or shut down) before it finished.
func (s *sourceScope) interrupted() bool {
	if s.running || s.result != nil || s.memo.started {
		return false
	}
	c := meta.FindStatusCondition(s.src.Status.Conditions, v1.ConditionReconciling)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1.ReasonDiscoveryRunning
}

// recovered reports whether Ready=False came from a step (a Secret, the quota, the store)
// after the last run finished, and that step passed now. A Ready=False older than the last
// run (a stale cached status, or the failure the run just cleared) is no reason to run.
func (s *sourceScope) recovered(last time.Time) bool {
	if s.result != nil || s.failuresAfterFold() > 0 {
		return false
	}
	c := meta.FindStatusCondition(s.src.Status.Conditions, v1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse {
		return false
	}
	// Status keeps whole seconds: within the second of the last run, only this process's
	// memory tells a failure after the run from a stale read of one before it. A process
	// that ran nothing yet has no stale status of its own runs.
	since := c.LastTransitionTime.Time
	last = statusTime(last)
	return s.memo.stepFailedSinceRun || since.After(last) || (!s.memo.started && since.Equal(last))
}

// deferred is the number of files the last run deferred for the quota.
func (s *sourceScope) deferred() int64 {
	// An event run's counts are changes to the totals, not totals: status has them folded.
	if s.result != nil && s.result.Err == nil && !s.result.Targeted {
		return s.result.Deferred
	}
	if f := s.src.Status.Files; f != nil {
		return f.Deferred
	}
	return 0
}

// quotaRaised reports whether the quota's limit grew since this process's last run of the
// source and now leaves room today.
func (s *sourceScope) quotaRaised() bool {
	return s.memo.limitAtRun > 0 && s.quota.DailyLimit > s.memo.limitAtRun && s.usedToday < s.quota.DailyLimit
}

// decideRun decides, without side effects, whether a discovery starts now and why. A
// refresh request runs once the quota's cooldown has passed since the end of the last
// discovery, whatever started that one: a run starting earlier for another reason does
// not use it up, it runs after that run (once the cooldown from its end has passed).
func decideRun(s *sourceScope) runDecision {
	src := s.src
	last := s.lastDiscovery()
	failures := s.failuresAfterFold()
	var d runDecision
	why := ""
	switch {
	case s.interrupted():
		why = v1.TriggerResume
	case last.IsZero():
		why = v1.TriggerFirstDiscovery
	case !s.specActedOn():
		why = v1.TriggerSpecChanged
	case s.deferred() > 0 && windowChanged(last, s.now, s.quota.Location):
		why = v1.TriggerQuotaReset
	case s.deferred() > 0 && s.quotaRaised():
		why = v1.TriggerQuotaRaised
	case s.recovered(last):
		// Ready=False without a failed run came from a step that passed now: discover
		// instead of waiting for the interval.
		why = v1.TriggerRecovered
	}

	refresh, reconcileAt := s.pendingRequests()
	if refresh != "" || reconcileAt != "" {
		readyAt := last.Add(s.quota.RefreshCooldown)
		if last.IsZero() || !s.now.Before(readyAt) {
			if why == "" {
				why = v1.TriggerRefresh
			}
			d.trigger.refresh, d.trigger.reconcileAt = refresh, reconcileAt
		} else {
			d.throttled, d.readyAt = refresh, readyAt
			if d.throttled == "" {
				d.throttled = reconcileAt
			}
			d.wait = readyAt.Sub(s.now)
		}
	}
	if why == "" {
		next := dueAt(src, last, failures)
		switch {
		case !s.now.Before(next) && failures > 0:
			why = v1.TriggerRetry
		case !s.now.Before(next):
			why = v1.TriggerInterval
		default:
			d.wait = lowestRequeue(d.wait, next.Sub(s.now))
			if s.deferred() > 0 {
				// Wake at the quota reset even when no IngestionQuota object will change then.
				_, resetsAt := s.quota.Window(s.now)
				d.wait = lowestRequeue(d.wait, resetsAt.Sub(s.now)+time.Second)
			}
			return d
		}
	}
	d.trigger.reason, d.trigger.started, d.trigger.dailyLimit = why, s.now, s.quota.DailyLimit
	d.trigger.validationHash = validationHash(&src.Spec)
	if prev := src.Status.ValidationHash; prev != "" {
		d.recheckFailed = prev != d.trigger.validationHash
	} else {
		// A status written before validationHash existed: a spec change may have changed
		// validation, so failed files are checked again once.
		d.recheckFailed = !last.IsZero() && !s.specActedOn()
	}
	return d
}

// validationHash identifies the settings that decide whether a file is valid: the agent
// allow-list (as a set), the invalid-record policy and the validators. Other fields
// (interval, timeout, disabled, quotaRef...) do not change it, so changing them does not
// re-check failed files.
func validationHash(spec *v1.S3SourceSpec) string {
	var agents []string // nil and empty read the same
	if len(spec.AgentIDs) > 0 {
		agents = slices.Clone(spec.AgentIDs)
		slices.Sort(agents)
		agents = slices.Compact(agents)
	}
	policy := spec.OnInvalidRecord
	if policy == "" {
		policy = v1.SkipFile
	}
	var validators []v1.Validator
	for _, v := range spec.Validators {
		if v.Action == "" {
			v.Action = v1.ValidatorReject
		}
		if len(v.Regions) > 0 {
			v.Regions = slices.Clone(v.Regions)
			slices.Sort(v.Regions)
		} else {
			v.Regions = nil
		}
		validators = append(validators, v)
	}
	// Strings and slices of strings always marshal.
	b, _ := json.Marshal(struct {
		Agents     []string               `json:"a"`
		Policy     v1.InvalidRecordPolicy `json:"p"`
		Validators []v1.Validator         `json:"v"`
	}{agents, policy, validators})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
