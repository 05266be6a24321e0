package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// Event runs add their changes to the totals and never move the discovery schedule; the
// receiver's state shows in webhookPath and EventsReady.
func TestComputeSourceStatusEvents(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	last := metav1.NewTime(now.Add(-10 * time.Minute))
	q := resolvedQuota{Capped: quota.Capped{Quota: quota.Quota{Key: "ns/default", DailyLimit: 500_000_000, MaxFileSize: 50_000_000, Location: time.UTC}}}
	discovered := v1.S3SourceStatus{LastDiscoveryTime: &last, Files: &v1.FileCounts{Discovered: 2, Ingested: 2}, ConversationsIngested: 2,
		Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1.ReasonSucceeded}}}
	empty := v1.S3SourceStatus{LastDiscoveryTime: &last,
		Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1.ReasonNoObjectsFound}}}
	listening := &eventsState{path: "/hook/abc", reason: v1.ReasonReceiverListening, message: "listening"}
	withEvents := func(s *v1.S3SourceSpec) { s.Events = &v1.Events{SecretRef: v1.LocalObjectReference{Name: "hook"}} }

	tests := []struct {
		name   string
		spec   func(*v1.S3SourceSpec)
		prev   v1.S3SourceStatus
		events *eventsState
		result *discovery.Result
		want   map[string]wantCondition
		absent []string
		check  func(*testing.T, v1.S3SourceStatus)
	}{
		{name: "no spec.events", prev: discovered, absent: []string{v1.ConditionEventsReady},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.WebhookPath != "" {
					t.Errorf("webhookPath %q", st.WebhookPath)
				}
			}},
		{name: "listening", spec: withEvents, prev: discovered, events: listening,
			want: map[string]wantCondition{v1.ConditionEventsReady: {metav1.ConditionTrue, v1.ReasonReceiverListening}},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.WebhookPath != "/hook/abc" {
					t.Errorf("webhookPath %q", st.WebhookPath)
				}
			}},
		{name: "events Secret without a token", spec: withEvents, prev: discovered, events: &eventsState{reason: v1.ReasonInvalidEventsSecret, message: "no token"},
			want: map[string]wantCondition{v1.ConditionEventsReady: {metav1.ConditionFalse, v1.ReasonInvalidEventsSecret}, v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonSucceeded}}},
		{name: "event run adds to the totals", spec: withEvents, prev: discovered, events: listening,
			result: &discovery.Result{Targeted: true, Finished: now, Listed: 3, Ingested: 2, Failed: 1, Downloaded: 3, DownloadedFailed: 1},
			want:   map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonSucceeded}, v1.ConditionFilesHealthy: {metav1.ConditionFalse, v1.ReasonFilesFailed}},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if *st.Files != (v1.FileCounts{Discovered: 5, Ingested: 4, Failed: 1}) {
					t.Errorf("files %+v", *st.Files)
				}
				if !st.LastDiscoveryTime.Equal(&last) || st.LastEventTime == nil || !st.LastEventTime.Time.Equal(now) {
					t.Errorf("lastDiscoveryTime %v lastEventTime %v", st.LastDiscoveryTime, st.LastEventTime)
				}
			}},
		{name: "event run after an empty discovery", spec: withEvents, prev: empty, events: listening,
			result: &discovery.Result{Targeted: true, Finished: now, Listed: 1, Ingested: 1, Downloaded: 1},
			want:   map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonSucceeded}, v1.ConditionFilesHealthy: {metav1.ConditionTrue, v1.ReasonAllFilesIngested}}},
		{name: "failed event run changes nothing", spec: withEvents, prev: discovered, events: listening,
			result: &discovery.Result{Targeted: true, Finished: now, Err: &bucket.Error{Reason: bucket.ReasonAccessDenied, Message: "denied"}},
			want:   map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonSucceeded}},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if *st.Files != *discovered.Files || st.ConsecutiveFailures != 0 || st.LastEventTime != nil {
					t.Errorf("files %+v failures %d lastEventTime %v", *st.Files, st.ConsecutiveFailures, st.LastEventTime)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &v1.S3Source{Spec: v1.S3SourceSpec{Bucket: "b", Prefix: "p/"}}
			src.Generation, src.UID = 2, "uid-1"
			if tt.spec != nil {
				tt.spec(&src.Spec)
			}
			prev := *tt.prev.DeepCopy()
			prev.ObservedGeneration = 2
			src.Status = prev
			s := &sourceScope{src: src, now: now, quota: q, events: tt.events, result: tt.result}
			st := computeSourceStatus(s, prev)
			for typ, want := range tt.want {
				c := findCondition(st.Conditions, typ)
				if c == nil || c.Status != want.status || c.Reason != want.reason {
					t.Errorf("%s = %+v, want %s/%s", typ, c, want.status, want.reason)
				}
			}
			for _, typ := range tt.absent {
				if c := findCondition(st.Conditions, typ); c != nil {
					t.Errorf("%s present: %+v", typ, c)
				}
			}
			if tt.check != nil {
				tt.check(t, st)
			}
			s.result = nil
			if again := computeSourceStatus(s, st); !equality.Semantic.DeepEqual(again, st) {
				t.Errorf("recomputing changed the status:\n%+v\nvs\n%+v", again, st)
			}
		})
	}
}
