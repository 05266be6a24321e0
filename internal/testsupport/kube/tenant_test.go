package kube_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
)

// The harness itself: a user bound to the aggregated built-in "edit" role manages
// S3Sources in its own namespace and nothing in another.
func TestTenancyHarness(t *testing.T) {
	ctx := context.Background()
	env, err := kube.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	tenancy, err := env.StartTenancy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tenancy.Stop()
	admin, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	alice, _, err := tenancy.User(ctx, "tenant-a", "alice", "edit")
	if err != nil {
		t.Fatal(err)
	}
	src := func(ns string) *v1.S3Source {
		return &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s"}, Spec: v1.S3SourceSpec{Bucket: "bkt"}}
	}
	if err := alice.Create(ctx, src("tenant-a")); err != nil {
		t.Fatalf("edit in tenant-a cannot create an S3Source there: %v", err)
	}
	if err := alice.Create(ctx, src("tenant-b")); !apierrors.IsForbidden(err) {
		t.Fatalf("creating an S3Source in tenant-b as alice: got %v, want Forbidden", err)
	}
	var list v1.S3SourceList
	if err := alice.List(ctx, &list); !apierrors.IsForbidden(err) {
		t.Fatalf("listing S3Sources cluster-wide as alice: got %v, want Forbidden", err)
	}
}
