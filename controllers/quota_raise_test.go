package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// Issue #9: raising a quota lets deferred files in at once, without waiting for the next
// interval or the reset, and the messages say so; the quota's and the source's
// QuotaAvailable agree; a limit lowered below today's usage reads sensibly.
func TestQuotaRaiseLetsDeferredFilesIn(t *testing.T) {
	const ns, name, bkt = "trig-quota", "raised", "trig-quota"
	ownManager(t, ns)
	createBucket(t, bkt)
	var size int
	for i := range 3 {
		body := jsonArray(t, conversation("agent-q", convID("qr", i), "2025-01-15T14:30:00Z", "same length"))
		size = len(body)
		put(t, bkt, fmt.Sprintf("q/file-%d.json", i), body)
	}
	limit := int64(size + size/2) // one file fits
	createQuota(t, ns, "tight", v1.IngestionQuotaSpec{DailyLimit: resource.NewQuantity(limit, resource.DecimalSI), MaxFileSize: resource.NewQuantity(limit, resource.DecimalSI)})
	start := clk.Now()
	newSource(t, ns, name, bkt, "q/", func(s *v1.S3SourceSpec) { s.QuotaRef = "tight" })
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 3, Ingested: 1, Deferred: 2})
	agree := func(want metav1.ConditionStatus) {
		t.Helper()
		eventually(t, "QuotaAvailable="+string(want)+" on the quota and the source", func() error {
			qc := condOf(getQuota(t, ns, "tight").Status.Conditions, v1.ConditionQuotaAvailable)
			sc := condition(getSource(t, ns, name), v1.ConditionQuotaAvailable)
			if qc.Status != want || sc.Status != want {
				return fmt.Errorf("quota %s %q, source %s %q", qc.Status, qc.Message, sc.Status, sc.Message)
			}
			return nil
		})
	}
	agree(metav1.ConditionTrue) // half a file left: deferred files did not fit, bytes remain

	// The admin raises the limit: no poke, no clock step.
	patchQuota(t, ns, "tight", func(q *v1.IngestionQuotaSpec) {
		q.DailyLimit = resource.NewQuantity(int64(10*size), resource.DecimalSI)
	})
	src = waitRun(t, ns, name, start)
	eventually(t, "the deferred files ingested", func() error {
		src = getSource(t, ns, name)
		if src.Status.Files.Ingested != 3 || src.Status.LastDiscoveryReason != v1.TriggerQuotaRaised {
			return fmt.Errorf("files %+v, reason %q", src.Status.Files, src.Status.LastDiscoveryReason)
		}
		return nil
	})
	waitEvent(t, ns, name, v1.ReasonQuotaExceeded, "or as soon as the limit is raised")

	// Lowered below what was used today: nothing more, and it reads as such.
	patchQuota(t, ns, "tight", func(q *v1.IngestionQuotaSpec) {
		q.DailyLimit = resource.NewQuantity(int64(size), resource.DecimalSI)
		q.MaxFileSize = resource.NewQuantity(int64(size), resource.DecimalSI)
	})
	agree(metav1.ConditionFalse)
	usage := getQuota(t, ns, "tight").Status.Usage
	if !strings.HasPrefix(usage, "limit lowered to ") || !strings.Contains(usage, "already used today, nothing more until the reset at") {
		t.Errorf("status.usage %q", usage)
	}
	if c := condition(getSource(t, ns, name), v1.ConditionQuotaAvailable); !strings.Contains(c.Message, "limit lowered to ") {
		t.Errorf("source QuotaAvailable %q", c.Message)
	}
}

func condOf(conds []metav1.Condition, typ string) metav1.Condition {
	for _, c := range conds {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{Type: typ, Status: "Absent"}
}

// patchQuota changes a quota's spec with a merge patch: its controller writes its status
// meanwhile, and an update from a stale read would conflict.
func patchQuota(t *testing.T, ns, name string, mutate func(*v1.IngestionQuotaSpec)) {
	t.Helper()
	q := getQuota(t, ns, name)
	patch := client.MergeFrom(q.DeepCopy())
	mutate(&q.Spec)
	if err := k8s.Patch(context.Background(), q, patch); err != nil {
		t.Fatal(err)
	}
}
