package controllers

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
)

// TestRequeueAfter proves when a reconcile asks to look again, which the envtest suite
// stands in for with a poke after stepping the clock. The API server is an in-process
// fake here: only the returned RequeueAfter is under test.
func TestRequeueAfter(t *testing.T) {
	last := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	const uid = "uid-requeue"
	jitter := Jitter(uid, time.Hour)
	tests := []struct {
		name   string
		now    time.Time
		status func(*v1.S3SourceStatus)
		annot  string
		want   time.Duration
	}{
		{"idle: one interval after the last discovery", last.Add(10 * time.Minute), nil, "", 50*time.Minute + jitter},
		{"failed once: the 30s backoff", last.Add(10 * time.Second), func(st *v1.S3SourceStatus) { st.ConsecutiveFailures = 1 }, "", 20 * time.Second},
		{"failed three times: 2m", last.Add(time.Minute), func(st *v1.S3SourceStatus) { st.ConsecutiveFailures = 3 }, "", time.Minute},
		{"throttled refresh: when the cooldown ends", last.Add(15 * time.Second), nil, "r-1", 45 * time.Second},
		{"deferred files: at the quota reset", last.Add(14*time.Hour + 50*time.Minute), func(st *v1.S3SourceStatus) {
			st.Files = &v1.FileCounts{Discovered: 2, Ingested: 1, Deferred: 1}
			st.LastDiscoveryTime = &metav1.Time{Time: last.Add(14*time.Hour + 30*time.Minute)}
		}, "", 10*time.Minute + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := v1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			if err := corev1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			// The source uses the operator's identity, in a namespace the admin allowed.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", UID: "ns-uid", Labels: map[string]string{v1.OperatorIdentityLabel: "allowed"}}}
			src := &v1.S3Source{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", UID: uid, Generation: 1, Finalizers: []string{v1.Finalizer}},
				Spec:       v1.S3SourceSpec{Bucket: "b", Interval: &metav1.Duration{Duration: time.Hour}, QuotaRef: "default"},
				Status: v1.S3SourceStatus{ObservedGeneration: 1, LastDiscoveryTime: &metav1.Time{Time: last}, LastHandledRefresh: "r-0",
					Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1.ReasonSucceeded, LastTransitionTime: metav1.NewTime(last)}}},
			}
			if tt.status != nil {
				tt.status(&src.Status)
			}
			if tt.annot != "" {
				src.Annotations = map[string]string{v1.RefreshAnnotation: tt.annot}
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(src, ns).WithStatusSubresource(src).Build()
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			r := &S3SourceReconciler{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(10), Store: st,
				Clock: clocktesting.NewFakeClock(tt.now), Metrics: NewMetrics(nil)}
			if err := r.Identity.defaults(); err != nil {
				t.Fatal(err)
			}
			r.runs = newRunTracker(discovery.NewRunner(st, ingest.New(st), r.Clock.Now, 1, 1), st, 1)
			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "s"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.RequeueAfter != tt.want {
				t.Errorf("RequeueAfter = %v, want %v", res.RequeueAfter, tt.want)
			}
			if r.runs.snapshot(types.NamespacedName{Namespace: "ns", Name: "s"}).running {
				t.Error("a run started although none was due")
			}
		})
	}
}
