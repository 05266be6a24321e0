package controllers_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// wantKstatus proves that Flux health checks and `kubectl wait` read the object as
// intended: kstatus computes its status from the same conditions they use.
func wantKstatus(t *testing.T, obj client.Object, want status.Status) {
	t.Helper()
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: content})
	if err != nil {
		t.Fatalf("kstatus: %v", err)
	}
	if res.Status != want {
		t.Errorf("kstatus of %s = %s (%s), want %s", obj.GetName(), res.Status, res.Message, want)
	}
}
