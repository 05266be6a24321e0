package controllers

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// countingReader counts the live reads stepIdentity makes.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A source acting as a ServiceAccount reads it once per generation and ReferenceRecheck,
// not on every reconcile; a failed read is not remembered.
func TestServiceAccountReadOncePerRecheck(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "reader",
		Annotations: map[string]string{v1.ServiceAccountRoleAnnotation: "arn:aws:iam::123456789012:role/r"}}}
	reader := &countingReader{Reader: fake.NewClientBuilder().WithScheme(scheme).WithObjects(sa).Build()}
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	r := &S3SourceReconciler{APIReader: reader, Clock: clk}
	if err := r.Identity.defaults(); err != nil {
		t.Fatal(err)
	}
	r.runs = newRunTracker(nil, nil, 1)
	key := types.NamespacedName{Namespace: "ns", Name: "s"}
	src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Generation: 1},
		Spec: v1.S3SourceSpec{Bucket: "b", Credentials: &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "reader"}}}
	reconcile := func() error {
		s := &sourceScope{src: src, key: key, now: clk.Now(), memo: r.runs.snapshot(key).memo}
		_, err := r.stepIdentity(context.Background(), s)
		if err == nil && (s.identity == nil || s.identity.webIdentity == nil || s.identity.webIdentity.RoleARN != sa.Annotations[v1.ServiceAccountRoleAnnotation]) {
			t.Fatalf("identity %+v: want the ServiceAccount's role", s.identity)
		}
		return err
	}
	steps := []struct {
		name     string
		do       func()
		wantGets int
		wantErr  bool
	}{
		{"first reconcile", func() {}, 1, false},
		{"again within the recheck", func() { clk.Step(time.Second) }, 1, false},
		{"spec changed", func() { src.Generation = 2 }, 2, false},
		{"recheck passed", func() { clk.Step(r.Identity.ReferenceRecheck) }, 3, false},
		{"ServiceAccount gone, after the recheck", func() {
			clk.Step(r.Identity.ReferenceRecheck)
			src.Spec.Credentials.ServiceAccountName = "gone"
		}, 4, true},
		{"a failed read is read again", func() {}, 5, true},
	}
	for _, st := range steps {
		st.do()
		err := reconcile()
		if (err != nil) != st.wantErr || reader.gets != st.wantGets {
			t.Errorf("%s: err %v, %d GETs; want error %v, %d GETs", st.name, err, reader.gets, st.wantErr, st.wantGets)
		}
	}
}
