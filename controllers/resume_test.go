package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
)

// ownManager starts a manager of its own for ns (created if missing), on the suite's
// store; the returned stop ends it as a crash would end a discovery (the run is cancelled
// and nothing folds it). stop is safe to call twice.
func ownManager(t *testing.T, ns string) (stop func()) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	stopMgr, err := startManager(ctx, store, []string{ns}, suiteCeilings)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			stopMgr()
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitInFlight waits until status shows a run in flight that started after `after`, and
// one of its downloads is held at the gate.
func waitInFlight(t *testing.T, ns, name string, after time.Time, gt *gate) *v1.S3Source {
	t.Helper()
	select {
	case <-gt.waiting:
	case <-time.After(60 * time.Second):
		t.Fatal("no download reached the gate")
	}
	var src *v1.S3Source
	eventually(t, "a run in flight in status", func() error {
		src = getSource(t, ns, name)
		c := condition(src, v1.ConditionReconciling)
		if c.Reason != v1.ReasonDiscoveryRunning || src.Status.LastDiscoveryStartTime == nil || src.Status.LastDiscoveryStartTime.Time.Before(after) {
			return fmt.Errorf("Reconciling %s/%s %q, lastDiscoveryStartTime %v", c.Status, c.Reason, c.Message, src.Status.LastDiscoveryStartTime)
		}
		return nil
	})
	return src
}

// Issue #9: a discovery interrupted by a crash is resumed as soon as a manager comes back,
// not an interval later, and the refresh it was handling counts as handled only once a run
// handling it finished.
func TestInterruptedDiscoveryResumesAfterRestart(t *testing.T) {
	const ns, name, bkt = "resume", "crashy", "resume"
	stopA := ownManager(t, ns)
	createBucket(t, bkt)
	put(t, bkt, "in/one.json", jsonArray(t, conversation("agent-r", "res-1", "2025-01-15T14:30:00Z", "one")))
	start := clk.Now()
	newSource(t, ns, name, bkt, "in/", nil)
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Ingested: 1})
	if src.Status.LastDiscoveryReason != v1.TriggerFirstDiscovery {
		t.Errorf("lastDiscoveryReason = %q, want %q", src.Status.LastDiscoveryReason, v1.TriggerFirstDiscovery)
	}

	// A refresh past the cooldown starts a run whose downloads hang; the manager dies.
	put(t, bkt, "in/two.json", jsonArray(t, conversation("agent-r", "res-2", "2025-01-15T14:30:00Z", "two")))
	put(t, bkt, "in/three.json", jsonArray(t, conversation("agent-r", "res-3", "2025-01-15T14:30:00Z", "three")))
	gt := downloadGates.close(bkt)
	clk.Step(61 * time.Second)
	refreshAt := clk.Now()
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "before-crash")
	src = waitInFlight(t, ns, name, refreshAt, gt)
	if src.Status.LastDiscoveryReason != v1.TriggerRefresh {
		t.Errorf("lastDiscoveryReason = %q while the refresh runs, want %q", src.Status.LastDiscoveryReason, v1.TriggerRefresh)
	}
	if src.Status.LastHandledRefresh == "before-crash" {
		t.Errorf("lastHandledRefresh is the refresh of a run still in flight")
	}
	stopA()
	downloadGates.release(bkt)
	if got := getSource(t, ns, name); got.Status.LastHandledRefresh == "before-crash" || got.Status.Files.Ingested != 1 {
		t.Fatalf("after the crash: lastHandledRefresh %q, files %+v", got.Status.LastHandledRefresh, got.Status.Files)
	}

	// A fresh manager, at the same (fake) time: no interval elapsed, no poke.
	ct := counts.of(bkt)
	ct.Reset()
	ownManager(t, ns)
	src = waitRun(t, ns, name, refreshAt)
	wantFiles(t, src, v1.FileCounts{Discovered: 3, Ingested: 3})
	if src.Status.LastDiscoveryReason != v1.TriggerResume {
		t.Errorf("lastDiscoveryReason = %q, want %q", src.Status.LastDiscoveryReason, v1.TriggerResume)
	}
	if src.Status.LastHandledRefresh != "before-crash" {
		t.Errorf("lastHandledRefresh = %q, want the refresh the resumed run handled", src.Status.LastHandledRefresh)
	}
	storedContent(t, ns, "agent-r", "res-3")
	if n := ct.Count(bucket.OpListObjectsV2); n != 1 {
		t.Errorf("%d listings after the restart, want the one resumed discovery", n)
	}
}

// Issue #9: the lifetime counters agree with the ledger after a crash: the files a killed
// run committed are counted (the store keeps the totals in each commit's transaction), and
// nothing is counted twice when the next manager resumes the run.
func TestLifetimeCountersSurviveACrash(t *testing.T) {
	const ns, name, bkt = "resume-counts", "killed", "resume-counts"
	stopA := ownManager(t, ns)
	createBucket(t, bkt)
	for i := range 4 {
		put(t, bkt, fmt.Sprintf("in/f-%d.json", i), jsonArray(t,
			conversation("agent-c", convID("lc", 2*i), "2025-01-15T14:30:00Z", "mail a@example.com"), conversation("agent-c", convID("lc", 2*i+1), "2025-01-15T14:30:00Z", "b")))
	}
	gt := downloadGates.closeAfter(bkt, 2) // two files commit, then the run hangs
	start := clk.Now()
	// A Flag validator: its lifetime counts (status.pii) must survive the crash too.
	newSource(t, ns, name, bkt, "in/", func(s *v1.S3SourceSpec) {
		s.Validators = []v1.Validator{{Type: v1.ValidatorEmail, Action: v1.ValidatorFlag}}
	})
	select {
	case <-gt.waiting:
	case <-time.After(60 * time.Second):
		t.Fatal("no download reached the gate")
	}
	eventually(t, "two files committed by the run in flight", func() error {
		rows, err := store.ListFiles(context.Background(), ns+"/"+name, storeapi.FileIngested, 10)
		if err != nil || len(rows) != 2 {
			return fmt.Errorf("%d ingested rows (%v)", len(rows), err)
		}
		return nil
	})
	stopA()
	downloadGates.release(bkt)

	ownManager(t, ns)
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 4, Ingested: 4})
	rows, err := store.ListFiles(context.Background(), ns+"/"+name, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ledger int64
	for _, r := range rows {
		ledger += r.Counts.New + r.Counts.Updated
	}
	if ledger != 8 || src.Status.ConversationsIngested != ledger {
		t.Errorf("conversationsIngested = %d, ledger new+updated = %d; want both 8", src.Status.ConversationsIngested, ledger)
	}
	// One flagged record in each of the 4 files, two of them committed by the killed run.
	if want := []v1.PIICount{{Validator: "email", Action: v1.ValidatorFlag, Records: 4, Matches: 4}}; fmt.Sprint(src.Status.PII) != fmt.Sprint(want) {
		t.Errorf("status.pii = %+v, want %+v", src.Status.PII, want)
	}
}
