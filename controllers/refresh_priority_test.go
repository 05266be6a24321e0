package controllers_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// Issue #12: a refresh someone asked for takes the next free run slot ahead of scheduled
// discoveries already waiting for one. The manager has 4 slots (--concurrent-sources):
// four sources hold them (their downloads held at a gate), three sources' hourly
// discoveries wait, then a fourth source is refreshed; one slot frees. The refresh runs
// and finishes; first come first served, the slot would go to the oldest scheduled run,
// whose download is held too, and the refresh would wait behind all three.
func TestRefreshRunsBeforeWaitingScheduledRuns(t *testing.T) {
	const ns, sched, refreshed = "refresh-prio", "refresh-prio-sched", "refresh-prio-refresh"
	ownManager(t, ns)
	createQuota(t, ns, "default", v1.IngestionQuotaSpec{RefreshCooldown: &metav1.Duration{}})
	for _, b := range []string{sched, refreshed} {
		createBucket(t, b)
	}
	file := func(id string) []byte {
		return jsonArray(t, conversation("agent-p", id, "2025-01-15T14:30:00Z", "x"))
	}

	// Three sources discovered once, due again in an hour; one more to refresh.
	start := clk.Now()
	scheduled := []string{"hourly-0", "hourly-1", "hourly-2"}
	for _, name := range scheduled {
		put(t, sched, name+"/one.json", file(name+"-1"))
		newSource(t, ns, name, sched, name+"/", nil)
	}
	put(t, refreshed, "r/one.json", file("r-1"))
	newSource(t, ns, "asked", refreshed, "r/", nil)
	for _, name := range append(scheduled, "asked") {
		waitRun(t, ns, name, start)
	}

	// Four runs take every slot and hold there.
	var holds []string
	for i := range 4 {
		bkt := fmt.Sprintf("refresh-prio-hold-%d", i)
		holds = append(holds, bkt)
		createBucket(t, bkt)
		put(t, bkt, "h/one.json", file(bkt))
		gt := downloadGates.close(bkt)
		t.Cleanup(func() { downloadGates.release(bkt) })
		newSource(t, ns, fmt.Sprintf("busy-%d", i), bkt, "h/", nil)
		select {
		case <-gt.waiting:
		case <-time.After(60 * time.Second):
			t.Fatalf("the run of busy-%d never reached its download", i)
		}
	}

	// The hourly discoveries fall due and wait for a slot; their downloads will hold too.
	gt := downloadGates.close(sched)
	t.Cleanup(func() { downloadGates.release(sched) })
	for _, name := range scheduled {
		put(t, sched, name+"/two.json", file(name+"-2"))
	}
	clk.Step(2 * time.Hour) // past the interval and its jitter
	due := clk.Now()
	for _, name := range scheduled {
		poke(t, ns, name)
		waitStarted(t, ns, name, due, v1.TriggerInterval)
	}

	// Then the refresh comes, and one slot frees.
	put(t, refreshed, "r/two.json", file("r-2"))
	setAnnotation(t, ns, "asked", v1.RefreshAnnotation, "now")
	waitStarted(t, ns, "asked", due, v1.TriggerRefresh)
	downloadGates.release(holds[0])

	src := waitRun(t, ns, "asked", due)
	if src.Status.LastHandledRefresh != "now" || src.Status.LastDiscoveryReason != v1.TriggerRefresh {
		t.Errorf("lastHandledRefresh %q, reason %q", src.Status.LastHandledRefresh, src.Status.LastDiscoveryReason)
	}
	wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 2})
	for _, name := range scheduled {
		if s := getSource(t, ns, name); !s.Status.LastDiscoveryTime.Time.Before(due) {
			t.Errorf("%s's scheduled discovery finished (at %s) though every slot but the refresh's was held", name, s.Status.LastDiscoveryTime)
		}
	}
	// The slot the refresh gave back went to the oldest scheduled run.
	select {
	case <-gt.waiting:
	case <-time.After(60 * time.Second):
		t.Fatal("no scheduled run got the slot the refresh gave back")
	}

	for _, b := range append(holds, sched) {
		downloadGates.release(b)
	}
	for _, name := range scheduled {
		if src := waitRun(t, ns, name, due); src.Status.LastDiscoveryReason != v1.TriggerInterval {
			t.Errorf("%s: reason %q, want %q", name, src.Status.LastDiscoveryReason, v1.TriggerInterval)
		}
	}
}

// waitStarted waits until status shows a run of name, started at or after `after` for
// reason, in flight (running or waiting for a run slot).
func waitStarted(t *testing.T, ns, name string, after time.Time, reason string) {
	t.Helper()
	eventually(t, name+"'s "+reason+" run in flight", func() error {
		src := getSource(t, ns, name)
		c := condition(src, v1.ConditionReconciling)
		start := src.Status.LastDiscoveryStartTime
		if c.Reason != v1.ReasonDiscoveryRunning || start == nil || start.Time.Before(after.Truncate(time.Second)) || src.Status.LastDiscoveryReason != reason {
			return fmt.Errorf("Reconciling %s/%s %q, lastDiscoveryStartTime %v, reason %q", c.Status, c.Reason, c.Message, start, src.Status.LastDiscoveryReason)
		}
		return nil
	})
}
