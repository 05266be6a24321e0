package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// TestQuotaUsageDoesNotWakeOtherSources: a file ingested by one source changes its
// quota's usage; the other sources of the quota are not reconciled for it. A change of
// the quota's spec still reaches every source (each shows and applies the new limits).
func TestQuotaUsageDoesNotWakeOtherSources(t *testing.T) {
	const ns, bkt, sources = "fanout", "fanout", 6
	createBucket(t, bkt)
	createQuota(t, ns, "shared", v1.IngestionQuotaSpec{DailyLimit: quantity("1M"), MaxFileSize: quantity("1M")})
	start := clk.Now()
	for i := range sources {
		put(t, bkt, fmt.Sprintf("s%d/first.json", i), jsonArray(t, conversation("agent-f", convID("f", i), "2025-01-15T14:30:00Z", "x")))
		newSource(t, ns, fmt.Sprintf("s%d", i), bkt, fmt.Sprintf("s%d/", i), func(s *v1.S3SourceSpec) { s.QuotaRef = "shared" })
	}
	for i := range sources {
		waitRun(t, ns, fmt.Sprintf("s%d", i), start)
	}
	settled := func() map[string]int {
		reads := map[string]int{}
		for i := 1; i < sources; i++ {
			reads[fmt.Sprintf("s%d", i)] = sourceReads.of(ns, fmt.Sprintf("s%d", i))
		}
		return reads
	}
	// The quota's status catches up with the first runs before counting starts.
	eventually(t, "the quota shows every source's first file", func() error {
		if q := getQuota(t, ns, "shared"); q.Status.SourcesCharged != sources {
			return fmt.Errorf("%d sources charged", q.Status.SourcesCharged)
		}
		return nil
	})
	time.Sleep(time.Second)
	before := settled()

	clk.Step(2 * time.Minute) // past the refresh cooldown
	put(t, bkt, "s0/second.json", jsonArray(t, conversation("agent-f", "f-second", "2025-01-15T14:30:00Z", "x")))
	usedBefore := getQuota(t, ns, "shared").Status.UsedBytes
	second := clk.Now()
	setAnnotation(t, ns, "s0", v1.RefreshAnnotation, "more")
	waitRun(t, ns, "s0", second)
	eventually(t, "the quota shows the new file", func() error {
		if used := getQuota(t, ns, "shared").Status.UsedBytes; used <= usedBefore {
			return fmt.Errorf("used %d, was %d", used, usedBefore)
		}
		return nil
	})
	// A fan-out happens within milliseconds of the quota's update; give it a second.
	time.Sleep(time.Second)
	if after := settled(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("one file in s0 reconciled the other sources of its quota: reads %v, were %v", after, before)
	}

	// A spec change of the quota reaches every source.
	q := getQuota(t, ns, "shared")
	patch := client.MergeFrom(q.DeepCopy())
	q.Spec.DailyLimit = quantity("2M")
	if err := k8s.Patch(context.Background(), q, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a quota spec change reconciles every source", func() error {
		for name, n := range settled() {
			if sourceReads.of(ns, name) == before[name] {
				return fmt.Errorf("%s not reconciled (%d reads)", name, n)
			}
		}
		return nil
	})
}
