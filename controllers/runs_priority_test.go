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
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// TestRunResultJumpsTheQueue: with thousands of sources queued (the initial pass, or
// timers firing together), the reconcile that folds a finished run is handed out next.
func TestRunResultJumpsTheQueue(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("s3source-test")
	defer q.ShutDown()
	for i := range 5000 {
		prio := 0
		if i%2 == 0 {
			prio = handler.LowPriority // initial list
		}
		q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(prio)},
			reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("queued-%d", i)}})
	}
	finished := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "finished"}}
	runResultHandler{}.Generic(context.Background(), event.GenericEvent{Object: finished}, q)

	item, prio, _ := q.GetWithPriority()
	defer q.Done(item)
	if item.Name != "finished" || prio != runResultPriority {
		t.Fatalf("next = %s at priority %d, want the finished run at %d ahead of 5,000 queued", item.Name, prio, runResultPriority)
	}
}
