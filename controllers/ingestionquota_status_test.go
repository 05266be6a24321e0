package controllers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

func TestComputeQuotaStatus(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	resets := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	q, err := quotaFromSpec("ns/default", v1.IngestionQuotaSpec{}, Ceilings{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		usage *quotaUsage
		err   error
		want  map[string]wantCondition
		check func(*testing.T, v1.IngestionQuotaStatus)
	}{
		{
			name:  "some used",
			usage: &quotaUsage{day: "2026-03-10", resetsAt: resets, used: 12_345_678, perSource: map[string]int64{"ns/b": 2_345_678, "ns/a": 10_000_000}},
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonSucceeded}, v1.ConditionQuotaAvailable: {metav1.ConditionTrue, v1.ReasonQuotaAvailable},
				v1.ConditionLimitsCapped: {metav1.ConditionFalse, v1.ReasonWithinCeilings}},
			check: func(t *testing.T, st v1.IngestionQuotaStatus) {
				if st.EffectiveDailyLimit.String() != "500M" || st.EffectiveMaxFileSize.String() != "50M" {
					t.Errorf("effective limits %s, %s; want 500M, 50M", st.EffectiveDailyLimit, st.EffectiveMaxFileSize)
				}
				if st.Usage != "12.3 MB of 500 MB used today" || st.RemainingBytes != 500_000_000-12_345_678 || st.Window != "2026-03-10" || !st.ResetsAt.Time.Equal(resets) {
					t.Errorf("status %+v", st)
				}
				if len(st.TopSources) != 2 || st.TopSources[0].Name != "a" || st.TopSources[1].UsedBytes != 2_345_678 || st.SourcesCharged != 2 {
					t.Errorf("top sources %+v of %d, want a then b of 2", st.TopSources, st.SourcesCharged)
				}
			},
		},
		{
			name:  "used up",
			usage: &quotaUsage{day: "2026-03-10", resetsAt: resets, used: 500_000_000},
			want:  map[string]wantCondition{v1.ConditionQuotaAvailable: {metav1.ConditionFalse, v1.ReasonQuotaExceeded}},
			check: func(t *testing.T, st v1.IngestionQuotaStatus) {
				if st.RemainingBytes != 0 {
					t.Errorf("remaining %d", st.RemainingBytes)
				}
			},
		},
		{
			name:  "limit lowered below today's usage",
			usage: &quotaUsage{day: "2026-03-10", resetsAt: resets, used: 600_000_000},
			want:  map[string]wantCondition{v1.ConditionQuotaAvailable: {metav1.ConditionFalse, v1.ReasonQuotaExceeded}},
			check: func(t *testing.T, st v1.IngestionQuotaStatus) {
				want := "limit lowered to 500 MB; 600 MB already used today, nothing more until the reset at " + resets.UTC().Format(time.RFC3339)
				if st.Usage != want || findCondition(st.Conditions, v1.ConditionQuotaAvailable).Message != want || st.RemainingBytes != 0 {
					t.Errorf("usage %q, remaining %d; want %q", st.Usage, st.RemainingBytes, want)
				}
			},
		},
		{
			name: "invalid time zone stalls",
			err:  &stepFailure{reason: v1.ReasonInvalidTimeZone, message: "timeZone \"Mars/Base\" ...", stalled: true},
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionFalse, v1.ReasonInvalidTimeZone}, v1.ConditionStalled: {metav1.ConditionTrue, v1.ReasonInvalidTimeZone}},
		},
		{
			name: "store error",
			err:  errors.New("database is locked"),
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionFalse, v1.ReasonStoreError}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			quota := &v1.IngestionQuota{}
			quota.Generation = 4
			st := computeQuotaStatus(quota, v1.IngestionQuotaStatus{}, q, tt.usage, tt.err, now)
			for typ, want := range tt.want {
				c := findCondition(st.Conditions, typ)
				if c == nil || c.Status != want.status || c.Reason != want.reason {
					t.Errorf("%s = %+v, want %s/%s", typ, c, want.status, want.reason)
				}
			}
			if st.ObservedGeneration != 4 {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

func TestTopSourcesIsBounded(t *testing.T) {
	tests := []struct {
		name      string
		perSource map[string]int64
		wantNames []string
		wantCount int32
	}{
		{"none", nil, nil, 0},
		{"zero usage is not charged", map[string]int64{"ns/a": 0}, nil, 0},
		{"most first, ties by name", map[string]int64{"ns/c": 5, "ns/b": 9, "ns/a": 5}, []string{"b", "a"}, 3},
		{"cut at the limit", map[string]int64{"ns/a": 1, "ns/b": 2, "ns/c": 3, "ns/d": 4}, []string{"d", "c"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, count := topSources(tt.perSource, 2)
			var names []string
			for _, s := range top {
				names = append(names, s.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(tt.wantNames) || count != tt.wantCount {
				t.Errorf("top %v of %d, want %v of %d", names, count, tt.wantNames, tt.wantCount)
			}
		})
	}
}

// TestQuotaStatusSizeIsBounded: 10,000 sources charging the same quota leave a status of
// the same size as 10 sources would.
func TestQuotaStatusSizeIsBounded(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	q, err := quotaFromSpec("ns/default", v1.IngestionQuotaSpec{}, Ceilings{})
	if err != nil {
		t.Fatal(err)
	}
	sizeWith := func(n int) int {
		per := map[string]int64{}
		for i := range n {
			per[fmt.Sprintf("ns/source-with-a-long-name-%05d", i)] = int64(1000 + i)
		}
		u := &quotaUsage{day: "2026-03-10", resetsAt: now.Add(time.Hour), used: 1, perSource: per}
		st := computeQuotaStatus(&v1.IngestionQuota{}, v1.IngestionQuotaStatus{}, q, u, nil, now)
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	small, large := sizeWith(10), sizeWith(10_000)
	t.Logf("status: %d bytes with 10 sources, %d with 10,000", small, large)
	if large > small+16 || large > 4096 {
		t.Errorf("status grows with the number of sources: %d bytes at 10, %d at 10,000", small, large)
	}
}

func TestQuotaFromSpecRejectsUnknownTimeZone(t *testing.T) {
	_, err := quotaFromSpec("ns/q", v1.IngestionQuotaSpec{TimeZone: "Mars/Olympus_Mons"}, Ceilings{})
	var sf *stepFailure
	if !errors.As(err, &sf) || !sf.stalled || sf.reason != v1.ReasonInvalidTimeZone {
		t.Fatalf("err = %v, want a stalled InvalidTimeZone failure", err)
	}
}

// TestQuotaAvailabilityAgrees: an IngestionQuota and each of its sources compute
// QuotaAvailable from the same function of limit and usage, so they cannot contradict each
// other, whatever the source's deferred files.
func TestQuotaAvailabilityAgrees(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	resets := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		limit, used, deferred int64
		want                  metav1.ConditionStatus
	}{
		{1000, 0, 0, metav1.ConditionTrue},
		{1000, 600, 1, metav1.ConditionTrue}, // a deferred file larger than what is left
		{1000, 1000, 1, metav1.ConditionFalse},
		{10_000, 59_400, 2, metav1.ConditionFalse}, // the limit was lowered
	} {
		rq := resolvedQuota{Capped: quota.Capped{Quota: quota.Quota{Key: "ns/q", DailyLimit: tc.limit, MaxFileSize: tc.limit, RefreshCooldown: time.Minute, Location: time.UTC}}}
		iq := &v1.IngestionQuota{}
		qst := computeQuotaStatus(iq, v1.IngestionQuotaStatus{}, rq, &quotaUsage{day: "2026-03-10", resetsAt: resets, used: tc.used}, nil, now)
		src := &v1.S3Source{Spec: v1.S3SourceSpec{Bucket: "b"}}
		src.Status.Files = &v1.FileCounts{Discovered: 3, Deferred: tc.deferred}
		sst := computeSourceStatus(&sourceScope{src: src, now: now, quota: rq, usedToday: tc.used, usageRead: true}, src.Status)
		qc, sc := findCondition(qst.Conditions, v1.ConditionQuotaAvailable), findCondition(sst.Conditions, v1.ConditionQuotaAvailable)
		if qc.Status != tc.want || sc.Status != tc.want || qc.Reason != sc.Reason {
			t.Errorf("limit %d used %d deferred %d: quota %s/%s %q, source %s/%s %q; want both %s",
				tc.limit, tc.used, tc.deferred, qc.Status, qc.Reason, qc.Message, sc.Status, sc.Reason, sc.Message, tc.want)
		}
		if tc.used > tc.limit && (strings.Contains(qst.Usage, " of ") || !strings.Contains(sc.Message, "limit lowered to 10 kB; 59.4 kB already used today")) {
			t.Errorf("lowered limit reads %q / %q", qst.Usage, sc.Message)
		}
	}
}
