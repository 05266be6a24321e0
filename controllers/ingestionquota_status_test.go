package controllers

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
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
				if len(st.Sources) != 2 || st.Sources[0].Name != "a" || st.Sources[1].UsedBytes != 2_345_678 {
					t.Errorf("sources %+v, want sorted a, b", st.Sources)
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

func TestQuotaFromSpecRejectsUnknownTimeZone(t *testing.T) {
	_, err := quotaFromSpec("ns/q", v1.IngestionQuotaSpec{TimeZone: "Mars/Olympus_Mons"}, Ceilings{})
	var sf *stepFailure
	if !errors.As(err, &sf) || !sf.stalled || sf.reason != v1.ReasonInvalidTimeZone {
		t.Fatalf("err = %v, want a stalled InvalidTimeZone failure", err)
	}
}
