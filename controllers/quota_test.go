package controllers

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

func quantity(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

// Effective limit = min(spec or the documented default, ceiling), and a file never larger
// than a day.
func TestQuotaFromSpecAppliesCeilings(t *testing.T) {
	tests := []struct {
		name                string
		spec                v1.IngestionQuotaSpec
		ceil                Ceilings
		wantDaily, wantFile int64
		wantCapped          metav1.ConditionStatus
		wantMessage         []string
	}{
		{name: "no ceilings: the spec", spec: v1.IngestionQuotaSpec{DailyLimit: quantity("20G"), MaxFileSize: quantity("20G")}, wantDaily: 20_000_000_000, wantFile: 20_000_000_000, wantCapped: metav1.ConditionFalse},
		{name: "defaults under the default ceilings", ceil: Ceilings{DailyLimit: 10_000_000_000, MaxFileSize: 100_000_000},
			wantDaily: 500_000_000, wantFile: 50_000_000, wantCapped: metav1.ConditionFalse, wantMessage: []string{"500 MB a day, 50 MB a file"}},
		{name: "spec above both ceilings", spec: v1.IngestionQuotaSpec{DailyLimit: quantity("50G"), MaxFileSize: quantity("5G")},
			ceil: Ceilings{DailyLimit: 10_000_000_000, MaxFileSize: 100_000_000}, wantDaily: 10_000_000_000, wantFile: 100_000_000,
			wantCapped: metav1.ConditionTrue, wantMessage: []string{
				"spec.dailyLimit 50 GB is above the operator's ceiling of 10 GB (--max-daily-limit): 10 GB applies",
				"spec.maxFileSize 5 GB is above the operator's ceiling of 100 MB (--max-file-size): 100 MB applies",
				"Only the platform admin"}},
		{name: "only the file size above its ceiling", spec: v1.IngestionQuotaSpec{DailyLimit: quantity("1G"), MaxFileSize: quantity("200M")},
			ceil: Ceilings{DailyLimit: 10_000_000_000, MaxFileSize: 100_000_000}, wantDaily: 1_000_000_000, wantFile: 100_000_000,
			wantCapped: metav1.ConditionTrue, wantMessage: []string{"spec.maxFileSize 200 MB is above the operator's ceiling of 100 MB"}},
		{name: "exactly the ceiling is not capped", spec: v1.IngestionQuotaSpec{DailyLimit: quantity("10G"), MaxFileSize: quantity("100M")},
			ceil: Ceilings{DailyLimit: 10_000_000_000, MaxFileSize: 100_000_000}, wantDaily: 10_000_000_000, wantFile: 100_000_000,
			wantCapped: metav1.ConditionFalse},
		{name: "a missing quota's defaults are capped too", ceil: Ceilings{DailyLimit: 1_000_000, MaxFileSize: 2_000},
			wantDaily: 1_000_000, wantFile: 2_000, wantCapped: metav1.ConditionTrue,
			wantMessage: []string{"spec.dailyLimit 500 MB is above the operator's ceiling of 1 MB", "spec.maxFileSize 50 MB is above the operator's ceiling of 2 kB"}},
		{name: "a daily ceiling below the file size bounds the file size", ceil: Ceilings{DailyLimit: 10_000_000, MaxFileSize: 100_000_000},
			wantDaily: 10_000_000, wantFile: 10_000_000, wantCapped: metav1.ConditionTrue,
			wantMessage: []string{"spec.maxFileSize 50 MB is above the effective daily limit of 10 MB: 10 MB applies"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := quotaFromSpec("ns/q", tt.spec, tt.ceil)
			if err != nil {
				t.Fatal(err)
			}
			if got.DailyLimit != tt.wantDaily || got.MaxFileSize != tt.wantFile {
				t.Errorf("effective %d a day, %d a file; want %d, %d", got.DailyLimit, got.MaxFileSize, tt.wantDaily, tt.wantFile)
			}
			c := limitsCappedCondition(got)
			if c.Status != tt.wantCapped {
				t.Errorf("LimitsCapped = %s (%s: %s), want %s", c.Status, c.Reason, c.Message, tt.wantCapped)
			}
			wantReason := map[metav1.ConditionStatus]string{metav1.ConditionTrue: v1.ReasonCeilingApplied, metav1.ConditionFalse: v1.ReasonWithinCeilings}[tt.wantCapped]
			if c.Reason != wantReason {
				t.Errorf("reason %s, want %s", c.Reason, wantReason)
			}
			for _, m := range tt.wantMessage {
				if !strings.Contains(c.Message, m) {
					t.Errorf("message %q does not contain %q", c.Message, m)
				}
			}
			if capped := strings.Contains(got.describe(), "capped by the operator's ceilings"); capped != (tt.wantCapped == metav1.ConditionTrue) {
				t.Errorf("describe() = %q: capped %v", got.describe(), capped)
			}
		})
	}
}

func TestQuotaWakeupOf(t *testing.T) {
	base := func(mut func(*v1.IngestionQuota)) *v1.IngestionQuota {
		q := &v1.IngestionQuota{}
		q.Generation = 1
		q.Status = v1.IngestionQuotaStatus{Window: "2026-03-10", UsedBytes: 10, RemainingBytes: 90}
		if mut != nil {
			mut(q)
		}
		return q
	}
	tests := []struct {
		name string
		cur  *v1.IngestionQuota
		want quotaWakeup
	}{
		{"usage grew", base(func(q *v1.IngestionQuota) { q.Status.UsedBytes, q.Status.RemainingBytes = 20, 80 }), wakeNone},
		{"conditions only", base(func(q *v1.IngestionQuota) { q.Status.Usage = "other text" }), wakeNone},
		{"window reset", base(func(q *v1.IngestionQuota) {
			q.Status.Window, q.Status.UsedBytes, q.Status.RemainingBytes = "2026-03-11", 0, 100
		}), wakeDeferred},
		{"room appeared within the window (a reservation released)", base(func(q *v1.IngestionQuota) { q.Status.UsedBytes, q.Status.RemainingBytes = 5, 95 }), wakeNone},
		{"spec changed", base(func(q *v1.IngestionQuota) { q.Generation = 2 }), wakeAll},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quotaWakeupOf(base(nil), tt.cur); got != tt.want {
				t.Errorf("wakeup = %d, want %d", got, tt.want)
			}
		})
	}
}
