package controllers

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// A refresh asked for while thousands of sources are queued (an edit of many sources, a
// restart) is handed out after the folds of finished runs and before everything else.
func TestRefreshRequestJumpsTheQueue(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("s3source-refresh-test")
	defer q.ShutDown()
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
	}
	for i := range 5000 {
		q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(0)}, req(fmt.Sprintf("queued-%d", i)))
	}
	src := func(name string, annotations map[string]string) *v1.S3Source {
		return &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: annotations}}
	}
	// The For watch enqueued the refreshed source at 0 too; the queue keeps the higher.
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(0)}, req("refreshed"))
	refreshRequestHandler{}.Update(context.Background(), event.UpdateEvent{
		ObjectOld: src("refreshed", nil), ObjectNew: src("refreshed", map[string]string{v1.RefreshAnnotation: "now"})}, q)
	// Another annotation changing is no request.
	refreshRequestHandler{}.Update(context.Background(), event.UpdateEvent{
		ObjectOld: src("queued-7", nil), ObjectNew: src("queued-7", map[string]string{"other": "x"})}, q)
	runResultHandler{}.Generic(context.Background(), event.GenericEvent{Object: src("finished", nil)}, q)

	for _, want := range []struct {
		name string
		prio int
	}{{"finished", runResultPriority}, {"refreshed", refreshRequestPriority}, {"queued-0", 0}} {
		item, prio, _ := q.GetWithPriority()
		q.Done(item)
		if item.Name != want.name || prio != want.prio {
			t.Fatalf("next = %s at priority %d, want %s at %d", item.Name, prio, want.name, want.prio)
		}
	}
}

func TestRefreshRequested(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, cur map[string]string
		want     bool
	}{
		{"refresh set", nil, map[string]string{v1.RefreshAnnotation: "a"}, true},
		{"refresh changed", map[string]string{v1.RefreshAnnotation: "a"}, map[string]string{v1.RefreshAnnotation: "b"}, true},
		{"reconcile request set", nil, map[string]string{v1.ReconcileRequestAnnotation: "t"}, true},
		{"refresh unchanged", map[string]string{v1.RefreshAnnotation: "a"}, map[string]string{v1.RefreshAnnotation: "a", "x": "y"}, false},
		{"refresh removed", map[string]string{v1.RefreshAnnotation: "a"}, nil, false},
		{"other annotation", nil, map[string]string{"x": "y"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshRequested(tc.old, tc.cur); got != tc.want {
				t.Fatalf("refreshRequested(%v, %v) = %v, want %v", tc.old, tc.cur, got, tc.want)
			}
		})
	}
}
