package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
)

func patchSpec(t *testing.T, ns, name string, mutate func(*v1.S3SourceSpec)) {
	t.Helper()
	src := getSource(t, ns, name)
	patch := client.MergeFrom(src.DeepCopy())
	mutate(&src.Spec)
	if err := k8s.Patch(context.Background(), src, patch); err != nil {
		t.Fatal(err)
	}
}

// Issue #9: a refresh asked for while the source is disabled is acknowledged, with an
// event saying it did not run, not silently dropped.
func TestRefreshWhileDisabledIsAcknowledged(t *testing.T) {
	const ns, name, bkt = "trig-disabled", "paused", "trig-disabled"
	ownManager(t, ns)
	createBucket(t, bkt)
	put(t, bkt, "d/one.json", jsonArray(t, conversation("agent-d", "td-1", "2025-01-15T14:30:00Z", "x")))
	ct := counts.of(bkt)
	newSource(t, ns, name, bkt, "d/", func(s *v1.S3SourceSpec) { s.Disabled = true })
	waitReady(t, ns, name, metav1.ConditionTrue, v1.ReasonDisabled)
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "while-paused")
	waitEvent(t, ns, name, v1.ReasonRefreshNotRun, `"while-paused" not run: the source is disabled`)
	eventually(t, "the refresh acknowledged in status", func() error {
		if got := getSource(t, ns, name).Status.LastHandledRefresh; got != "while-paused" {
			return fmt.Errorf("lastHandledRefresh %q", got)
		}
		return nil
	})
	if n := ct.Total(); n != 0 {
		t.Fatalf("%d S3 request(s) for a disabled source", n)
	}
}

// Issue #9: failed files are checked again when a setting of validation changed (agentIDs,
// onInvalidRecord, validators), not when any other field changed.
func TestRecheckFailedOnlyWhenValidationChanged(t *testing.T) {
	const ns, name, bkt = "trig-recheck", "allow", "trig-recheck"
	ownManager(t, ns)
	createBucket(t, bkt)
	put(t, bkt, "a/late.json", jsonArray(t, conversation("agent-late", "rc-1", "2025-01-15T14:30:00Z", "x")))
	ct := counts.of(bkt)
	start := clk.Now()
	newSource(t, ns, name, bkt, "a/", func(s *v1.S3SourceSpec) { s.AgentIDs = []string{"agent-early", "agent-other"} })
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Failed: 1})
	if src.Status.ValidationHash == "" {
		t.Error("status.validationHash not recorded")
	}
	hash := src.Status.ValidationHash

	for _, change := range []struct {
		what   string
		mutate func(*v1.S3SourceSpec)
	}{
		{"interval", func(s *v1.S3SourceSpec) { s.Interval = &metav1.Duration{Duration: 2 * time.Hour} }},
		{"timeout", func(s *v1.S3SourceSpec) { s.Timeout = &metav1.Duration{Duration: time.Minute} }},
		{"agentIDs reordered", func(s *v1.S3SourceSpec) { s.AgentIDs = []string{"agent-other", "agent-early"} }},
	} {
		ct.Reset()
		clk.Step(time.Minute)
		at := clk.Now()
		patchSpec(t, ns, name, change.mutate)
		src = waitRun(t, ns, name, at)
		wantFiles(t, src, v1.FileCounts{Discovered: 1, Failed: 1})
		if n := ct.Count(bucket.OpGetObject); n != 0 {
			t.Errorf("changing %s downloaded the failed file again (%d GetObject)", change.what, n)
		}
		if src.Status.LastDiscoveryReason != v1.TriggerSpecChanged || src.Status.ValidationHash != hash {
			t.Errorf("after changing %s: reason %q, validationHash %q (was %q)", change.what, src.Status.LastDiscoveryReason, src.Status.ValidationHash, hash)
		}
	}

	ct.Reset()
	clk.Step(time.Minute)
	at := clk.Now()
	patchSpec(t, ns, name, func(s *v1.S3SourceSpec) { s.AgentIDs = []string{"agent-early", "agent-late"} })
	src = waitRun(t, ns, name, at)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Ingested: 1})
	if n := ct.Count(bucket.OpGetObject); n != 1 {
		t.Errorf("widening agentIDs made %d GetObject, want 1", n)
	}
	if src.Status.ValidationHash == hash {
		t.Error("status.validationHash did not change with agentIDs")
	}
}

// Issue #9: Flux's reconcile.fluxcd.io/requestedAt (`flux reconcile`) is a refresh, with
// the same cooldown, reported in status.lastHandledReconcileAt as Flux's objects do.
func TestFluxReconcileRequestIsARefresh(t *testing.T) {
	const ns, name, bkt = "trig-flux", "gitops", "trig-flux"
	ownManager(t, ns)
	createBucket(t, bkt)
	put(t, bkt, "f/one.json", jsonArray(t, conversation("agent-f", "fx-1", "2025-01-15T14:30:00Z", "x")))
	start := clk.Now()
	newSource(t, ns, name, bkt, "f/", nil)
	waitRun(t, ns, name, start)

	// Within the cooldown: throttled, like the project's own refresh.
	clk.Step(10 * time.Second)
	put(t, bkt, "f/two.json", jsonArray(t, conversation("agent-f", "fx-2", "2025-01-15T14:30:00Z", "x")))
	setAnnotation(t, ns, name, v1.ReconcileRequestAnnotation, "2026-03-10T09:00:00Z")
	waitEvent(t, ns, name, v1.ReasonRefreshThrottled, "2026-03-10T09:00:00Z")
	if got := getSource(t, ns, name); got.Status.LastHandledReconcileAt != "" || got.Status.Files.Discovered != 1 {
		t.Fatalf("a throttled reconcile request ran: %+v", got.Status)
	}
	clk.Step(51 * time.Second)
	at := clk.Now()
	poke(t, ns, name)
	src := waitRun(t, ns, name, at)
	wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 2})
	if src.Status.LastHandledReconcileAt != "2026-03-10T09:00:00Z" || src.Status.LastDiscoveryReason != v1.TriggerRefresh {
		t.Errorf("lastHandledReconcileAt %q, reason %q", src.Status.LastHandledReconcileAt, src.Status.LastDiscoveryReason)
	}
}

// Issue #9: a refresh that comes while a discovery runs is not lost in it: an event says
// it runs after that one, and it does, once the cooldown from that run's end passed.
func TestRefreshWhileRunningRunsAfter(t *testing.T) {
	const ns, name, bkt = "trig-inflight", "busy", "trig-inflight"
	ownManager(t, ns)
	createBucket(t, bkt)
	put(t, bkt, "b/one.json", jsonArray(t, conversation("agent-b", "rw-1", "2025-01-15T14:30:00Z", "x")))
	gt := downloadGates.close(bkt)
	start := clk.Now()
	newSource(t, ns, name, bkt, "b/", nil)
	waitInFlight(t, ns, name, start, gt)
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "during")
	waitEvent(t, ns, name, v1.ReasonRefreshQueued, `"during" came while a discovery is running; it runs after that one`)
	put(t, bkt, "b/two.json", jsonArray(t, conversation("agent-b", "rw-2", "2025-01-15T14:30:00Z", "x")))
	downloadGates.release(bkt)
	var src *v1.S3Source
	eventually(t, "the run to end and the refresh to wait for the cooldown", func() error {
		src = getSource(t, ns, name)
		c := condition(src, v1.ConditionReconciling)
		if src.Status.LastDiscoveryTime == nil || c.Reason != v1.ReasonRefreshThrottled {
			return fmt.Errorf("last %v, Reconciling %s/%s %q", src.Status.LastDiscoveryTime, c.Status, c.Reason, c.Message)
		}
		return nil
	})
	if src.Status.LastHandledRefresh == "during" {
		t.Fatalf("the refresh that came during the run counts as handled by it: %+v", src.Status)
	}
	clk.Step(61 * time.Second)
	at := clk.Now()
	poke(t, ns, name)
	src = waitRun(t, ns, name, at)
	if src.Status.LastHandledRefresh != "during" || src.Status.LastDiscoveryReason != v1.TriggerRefresh {
		t.Errorf("lastHandledRefresh %q reason %q", src.Status.LastHandledRefresh, src.Status.LastDiscoveryReason)
	}
	wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 2})
}

// Issue #9: the first successful run after a failure starts no second run at once, even
// within the same second, and does not use up a pending refresh without the cooldown.
func TestRecoveryRunsOnce(t *testing.T) {
	const ns, name, bkt = "trig-recover", "flaky", "trig-recover"
	ownManager(t, ns)
	createBucket(t, bkt)
	put(t, bkt, "r/one.json", jsonArray(t, conversation("agent-r", "rr-1", "2025-01-15T14:30:00Z", "x")))
	createQuota(t, ns, "q", v1.IngestionQuotaSpec{})
	start := clk.Now()
	newSource(t, ns, name, bkt, "r/", func(s *v1.S3SourceSpec) { s.QuotaRef = "q" })
	waitRun(t, ns, name, start)

	// The quota goes away (the source stalls, a step failure) and comes back, all in the
	// same (fake) second as the run.
	if err := k8s.Delete(context.Background(), getQuota(t, ns, "q")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ns, name, metav1.ConditionFalse, v1.ReasonQuotaNotFound)
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "while-stalled")
	ct := counts.of(bkt)
	ct.Reset()
	createQuota(t, ns, "q", v1.IngestionQuotaSpec{})
	src := waitReady(t, ns, name, metav1.ConditionTrue, v1.ReasonSucceeded)
	time.Sleep(2 * time.Second) // give a wrongly started second run the chance to show up
	if n := ct.Count(bucket.OpListObjectsV2); n != 1 {
		t.Errorf("%d listings after the recovery, want one", n)
	}
	src = getSource(t, ns, name)
	if src.Status.LastDiscoveryReason != v1.TriggerRecovered {
		t.Errorf("lastDiscoveryReason %q, want %q", src.Status.LastDiscoveryReason, v1.TriggerRecovered)
	}
	if src.Status.LastHandledRefresh == "while-stalled" {
		t.Errorf("the recovery used up the refresh within the cooldown")
	}
	if c := condition(src, v1.ConditionReconciling); c.Reason != v1.ReasonRefreshThrottled || !strings.Contains(c.Message, "while-stalled") {
		t.Errorf("Reconciling %s/%s %q, want the refresh throttled", c.Status, c.Reason, c.Message)
	}
}
