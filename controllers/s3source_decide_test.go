package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// TestDecideRun covers why a discovery starts (issue #9): each run has one stated reason,
// a refresh waits for its cooldown whatever else runs, a restart resumes an interrupted
// run, and a success after a failure starts nothing more.
func TestDecideRun(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	q := resolvedQuota{Capped: quota.Capped{Quota: quota.Quota{Key: "ns/default", DailyLimit: 1000, MaxFileSize: 100, RefreshCooldown: time.Minute, Location: time.UTC}}}
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	cond := func(typ string, status metav1.ConditionStatus, reason string, since time.Duration) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, LastTransitionTime: *at(since)}
	}
	// A source that last discovered 10 minutes ago, successfully, at generation 3.
	idle := func(st *v1.S3SourceStatus) {
		st.ObservedGeneration = 3
		st.LastDiscoveryTime = at(-10 * time.Minute)
		st.ValidationHash = validationHash(&v1.S3SourceSpec{})
		st.Conditions = []metav1.Condition{cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, -10*time.Minute)}
	}
	running := cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonDiscoveryRunning, -5*time.Second)
	success := &discovery.Result{Finished: now, Listed: 2, Ingested: 2}

	tests := []struct {
		name        string
		annotations map[string]string
		spec        func(*v1.S3SourceSpec)
		status      func(*v1.S3SourceStatus)
		scope       func(*sourceScope)
		why         string
		refresh     string // the refresh the run handles
		reconcileAt string
		throttled   string
		wait        time.Duration
		recheck     bool
	}{
		{name: "first discovery", why: v1.TriggerFirstDiscovery},
		{name: "nothing due: wait for the interval", status: idle, wait: 50*time.Minute + Jitter("uid", time.Hour)},
		{name: "interval elapsed", status: func(st *v1.S3SourceStatus) { idle(st); st.LastDiscoveryTime = at(-2 * time.Hour) }, why: v1.TriggerInterval},
		{name: "a backoff retry is not the interval", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.ConsecutiveFailures = 1
			st.LastDiscoveryTime = at(-31 * time.Second)
			st.Conditions = []metav1.Condition{cond(v1.ConditionReady, metav1.ConditionFalse, bucket.ReasonEndpointUnreachable, -31*time.Second)}
		}, why: v1.TriggerRetry},
		{name: "spec changed", status: func(st *v1.S3SourceStatus) { idle(st); st.ObservedGeneration = 2 }, why: v1.TriggerSpecChanged},
		{name: "a run left in flight by another process is resumed at once", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.LastDiscoveryStartTime = at(-5 * time.Second)
			st.Conditions = append(st.Conditions, running)
		}, why: v1.TriggerResume},
		{name: "an interrupted first run is resumed", status: func(st *v1.S3SourceStatus) {
			st.LastDiscoveryStartTime = at(-5 * time.Second)
			st.Conditions = []metav1.Condition{running}
		}, why: v1.TriggerResume},
		{name: "this process's own run, read from a stale cache, is not resumed", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.Conditions = append(st.Conditions, running)
		}, scope: func(s *sourceScope) { s.memo.started, s.memo.lastFinished = true, now }, wait: time.Hour + Jitter("uid", time.Hour)},
		{name: "refresh past the cooldown", annotations: map[string]string{v1.RefreshAnnotation: "r1"}, status: idle, why: v1.TriggerRefresh, refresh: "r1"},
		{name: "Flux's reconcile request is a refresh", annotations: map[string]string{v1.ReconcileRequestAnnotation: "2026-03-10T09:29:00Z"}, status: idle,
			why: v1.TriggerRefresh, reconcileAt: "2026-03-10T09:29:00Z"},
		{name: "both requests handled by one run", annotations: map[string]string{v1.RefreshAnnotation: "r1", v1.ReconcileRequestAnnotation: "f1"}, status: idle,
			why: v1.TriggerRefresh, refresh: "r1", reconcileAt: "f1"},
		{name: "an already handled request does nothing", annotations: map[string]string{v1.RefreshAnnotation: "r1", v1.ReconcileRequestAnnotation: "f1"},
			status: func(st *v1.S3SourceStatus) { idle(st); st.LastHandledRefresh, st.LastHandledReconcileAt = "r1", "f1" }, wait: 50*time.Minute + Jitter("uid", time.Hour)},
		{name: "refresh within the cooldown is throttled", annotations: map[string]string{v1.RefreshAnnotation: "r1"},
			status: func(st *v1.S3SourceStatus) { idle(st); st.LastDiscoveryTime = at(-20 * time.Second) }, throttled: "r1", wait: 40 * time.Second},
		{name: "a refresh on a new source runs with the first discovery", annotations: map[string]string{v1.RefreshAnnotation: "r1"}, why: v1.TriggerFirstDiscovery, refresh: "r1"},
		{name: "a spec change within the cooldown does not use the refresh up", annotations: map[string]string{v1.RefreshAnnotation: "r1"},
			status: func(st *v1.S3SourceStatus) {
				idle(st)
				st.ObservedGeneration = 2
				st.LastDiscoveryTime = at(-20 * time.Second)
			},
			why: v1.TriggerSpecChanged, throttled: "r1", wait: 40 * time.Second},
		{name: "the first success after a failure starts nothing more, even in the same second", annotations: map[string]string{v1.RefreshAnnotation: "r1"},
			status: func(st *v1.S3SourceStatus) {
				idle(st)
				st.ConsecutiveFailures = 2
				st.LastDiscoveryTime = at(0)
				st.Conditions = []metav1.Condition{cond(v1.ConditionReady, metav1.ConditionFalse, bucket.ReasonEndpointUnreachable, 0)}
			},
			scope:     func(s *sourceScope) { s.result = success; s.memo.lastFinished = now },
			throttled: "r1", wait: time.Minute},
		{name: "a step failure that cleared after the last run: recovered", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.Conditions = []metav1.Condition{cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonSecretNotFound, -time.Minute)}
		}, why: v1.TriggerRecovered},
		{name: "a stale Ready=False older than this process's last run is no recovery", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.LastDiscoveryTime = at(-time.Minute)
			st.Conditions = []metav1.Condition{cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonSecretNotFound, -time.Minute)}
		}, scope: func(s *sourceScope) { s.memo.started, s.memo.lastFinished = true, now }, wait: time.Hour + Jitter("uid", time.Hour)},
		{name: "deferred files: the quota window reset", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.LastDiscoveryTime = at(-10 * time.Hour)
			st.Files = &v1.FileCounts{Discovered: 2, Ingested: 1, Deferred: 1}
		}, why: v1.TriggerQuotaReset},
		{name: "deferred files: the quota was raised", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.Files = &v1.FileCounts{Discovered: 2, Ingested: 1, Deferred: 1}
		}, scope: func(s *sourceScope) { s.memo.limitAtRun, s.usedToday = 500, 900 }, why: v1.TriggerQuotaRaised},
		{name: "deferred files: the limit is the one the last run had", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.Files = &v1.FileCounts{Discovered: 2, Ingested: 1, Deferred: 1}
		}, scope: func(s *sourceScope) { s.memo.limitAtRun, s.usedToday = 1000, 900 }, wait: 50*time.Minute + Jitter("uid", time.Hour)},
		{name: "deferred files: a lowered limit is no reason to run", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.Files = &v1.FileCounts{Discovered: 2, Ingested: 1, Deferred: 1}
		}, scope: func(s *sourceScope) { s.memo.limitAtRun, s.usedToday = 2000, 900 }, wait: 50*time.Minute + Jitter("uid", time.Hour)},
		{name: "deferred files: raised, but still used up", status: func(st *v1.S3SourceStatus) {
			idle(st)
			st.Files = &v1.FileCounts{Discovered: 2, Ingested: 1, Deferred: 1}
		}, scope: func(s *sourceScope) { s.memo.limitAtRun, s.usedToday = 500, 1000 }, wait: 50*time.Minute + Jitter("uid", time.Hour)},
		{name: "validation changed: failed files are checked again", spec: func(s *v1.S3SourceSpec) { s.AgentIDs = []string{"a", "b"} },
			status: func(st *v1.S3SourceStatus) {
				idle(st)
				st.ObservedGeneration = 2
				st.ValidationHash = validationHash(&v1.S3SourceSpec{AgentIDs: []string{"a"}})
			}, why: v1.TriggerSpecChanged, recheck: true},
		{name: "a status from before validationHash: a spec change checks failed files again once",
			status: func(st *v1.S3SourceStatus) { idle(st); st.ObservedGeneration = 2; st.ValidationHash = "" }, why: v1.TriggerSpecChanged, recheck: true},
		{name: "interval changed: failed files are not checked again", spec: func(s *v1.S3SourceSpec) {
			s.AgentIDs = []string{"b", "a"}
			s.Interval = &metav1.Duration{Duration: 2 * time.Hour}
		},
			status: func(st *v1.S3SourceStatus) {
				idle(st)
				st.ObservedGeneration = 2
				st.ValidationHash = validationHash(&v1.S3SourceSpec{AgentIDs: []string{"a", "b"}, OnInvalidRecord: v1.SkipFile})
			}, why: v1.TriggerSpecChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &v1.S3Source{Spec: v1.S3SourceSpec{Bucket: "b", Prefix: "p/"}}
			src.Generation, src.UID, src.Annotations = 3, "uid", tt.annotations
			if tt.spec != nil {
				tt.spec(&src.Spec)
			}
			if tt.status != nil {
				tt.status(&src.Status)
			}
			s := &sourceScope{src: src, now: now, quota: q}
			if tt.scope != nil {
				tt.scope(s)
			}
			d := decideRun(s)
			if d.trigger.reason != tt.why || d.trigger.refresh != tt.refresh || d.trigger.reconcileAt != tt.reconcileAt {
				t.Errorf("run %q handling refresh %q, reconcileAt %q; want %q, %q, %q", d.trigger.reason, d.trigger.refresh, d.trigger.reconcileAt, tt.why, tt.refresh, tt.reconcileAt)
			}
			if d.throttled != tt.throttled {
				t.Errorf("throttled %q, want %q", d.throttled, tt.throttled)
			}
			if tt.why == "" && d.wait != tt.wait {
				t.Errorf("wait %v, want %v", d.wait, tt.wait)
			}
			if d.recheckFailed != tt.recheck {
				t.Errorf("recheckFailed %v, want %v", d.recheckFailed, tt.recheck)
			}
		})
	}
}

// TestValidationHash changes only with the settings that decide validity.
func TestValidationHash(t *testing.T) {
	base := v1.S3SourceSpec{AgentIDs: []string{"a", "b"}, OnInvalidRecord: v1.SkipFile,
		Validators: []v1.Validator{{Type: v1.ValidatorPhoneNumber, Regions: []string{"US", "DE"}}}}
	h := validationHash(&base)
	same := []func(*v1.S3SourceSpec){
		func(s *v1.S3SourceSpec) { s.Interval = &metav1.Duration{Duration: 2 * time.Hour} },
		func(s *v1.S3SourceSpec) { s.Timeout = &metav1.Duration{Duration: time.Minute} },
		func(s *v1.S3SourceSpec) { s.Disabled = true },
		func(s *v1.S3SourceSpec) { s.QuotaRef = "other" },
		func(s *v1.S3SourceSpec) { s.AgentIDs = []string{"b", "a", "a"} },
		func(s *v1.S3SourceSpec) { s.OnInvalidRecord = "" }, // the default
		func(s *v1.S3SourceSpec) { s.Validators[0].Action = v1.ValidatorReject },
		func(s *v1.S3SourceSpec) { s.Validators[0].Regions = []string{"DE", "US"} },
	}
	for i, f := range same {
		spec := *base.DeepCopy()
		f(&spec)
		if got := validationHash(&spec); got != h {
			t.Errorf("same[%d]: hash changed for a change that does not affect validation", i)
		}
	}
	differ := []func(*v1.S3SourceSpec){
		func(s *v1.S3SourceSpec) { s.AgentIDs = []string{"a"} },
		func(s *v1.S3SourceSpec) { s.AgentIDs = nil },
		func(s *v1.S3SourceSpec) { s.OnInvalidRecord = v1.SkipRecord },
		func(s *v1.S3SourceSpec) { s.Validators[0].Action = v1.ValidatorRedact },
		func(s *v1.S3SourceSpec) { s.Validators = nil },
		func(s *v1.S3SourceSpec) { s.Validators[0].Regions = []string{"US"} },
	}
	for i, f := range differ {
		spec := *base.DeepCopy()
		f(&spec)
		if got := validationHash(&spec); got == h {
			t.Errorf("differ[%d]: hash unchanged for a change of validation", i)
		}
	}
	if n := len(h); n != 32 {
		t.Errorf("hash of %d characters, want 32", n)
	}
}
