package controllers_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// tenantSourceWithKeys creates, as the tenant c, the Secret (keys of a MinIO user reading the
// prefix) and the S3Source of namespace ns.
func tenantSourceWithKeys(t *testing.T, c client.Client, ns, name, bkt, prefix string) {
	t.Helper()
	ak, sk, err := s3.CreateReadOnlyUser(bkt, prefix)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}
	if err := c.Create(context.Background(), secret); err != nil {
		t.Fatalf("the tenant of %s creates a Secret: %v", ns, err)
	}
	src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1.S3SourceSpec{
		Bucket: bkt, Prefix: prefix, Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region,
		Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: secret.Name}},
	}}
	if err := c.Create(context.Background(), src); err != nil {
		t.Fatalf("the tenant of %s creates an S3Source: %v", ns, err)
	}
}

// Guarantee 1 of docs/multi-tenancy.md, the overwrite attempt of issue #8: tenant A
// uploads a record with tenant B's agent_id and conversation_id and a later timestamp.
// It is stored as A's own conversation; B's stays as B sent it, and neither tenant can
// read the other's sources through the API.
func TestTenantCannotOverwriteAnotherTenantsConversation(t *testing.T) {
	const nsA, nsB, name = "tenant-data-a", "tenant-data-b", "conversations"
	ctx := context.Background()
	for _, ns := range []string{nsA, nsB} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		createBucket(t, ns)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stop, err := startManager(ctx, st, []string{nsA, nsB}, suiteCeilings)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tenantA, tenantB := asTenant(t, nsA, "alice"), asTenant(t, nsB, "bob")

	// B's conversation is stored first.
	put(t, nsB, "in/b.jsonl", jsonLines(t, conversation("agent-7", "conv-1", "2025-01-15T14:30:00Z", "B's original")))
	start := clk.Now()
	tenantSourceWithKeys(t, tenantB, nsB, name, nsB, "in/")
	waitRun(t, nsB, name, start)

	// A's record names B's identity, later.
	put(t, nsA, "in/a.jsonl", jsonLines(t, conversation("agent-7", "conv-1", "2026-06-01T00:00:00Z", "A's overwrite attempt")))
	start = clk.Now()
	tenantSourceWithKeys(t, tenantA, nsA, name, nsA, "in/")
	srcA := waitRun(t, nsA, name, start)
	wantFiles(t, srcA, v1.FileCounts{Discovered: 1, Ingested: 1})

	stored := []struct {
		ns, want, notWant string
	}{
		{nsB, "B's original", "overwrite"},
		{nsA, "A's overwrite attempt", "original"},
	}
	for _, s := range stored {
		c, ok, err := st.GetConversation(ctx, s.ns, "agent-7", "conv-1")
		if err != nil || !ok {
			t.Fatalf("agent-7/conv-1 of %s: found=%v err=%v", s.ns, ok, err)
		}
		if raw := string(c.Raw); !strings.Contains(raw, s.want) || strings.Contains(raw, s.notWant) {
			t.Errorf("agent-7/conv-1 of %s is %s, want %q", s.ns, raw, s.want)
		}
	}
	// A's file counted its record as new in A, not as an update of B's.
	if a, b := getSource(t, nsA, name), getSource(t, nsB, name); a.Status.ConversationsIngested != 1 || b.Status.ConversationsIngested != 1 {
		t.Errorf("conversationsIngested: A %d, B %d; want 1 each", a.Status.ConversationsIngested, b.Status.ConversationsIngested)
	}
	// Through the API, each tenant sees its own namespace only.
	access := []struct {
		name   string
		c      client.Client
		ns     string
		wantOK bool
	}{
		{"A reads its source", tenantA, nsA, true},
		{"A reads B's source", tenantA, nsB, false},
		{"B reads A's source", tenantB, nsA, false},
	}
	for _, a := range access {
		err := a.c.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: name}, &v1.S3Source{})
		switch {
		case a.wantOK && err != nil:
			t.Errorf("%s: %v", a.name, err)
		case !a.wantOK && !apierrors.IsForbidden(err):
			t.Errorf("%s: err = %v, want Forbidden", a.name, err)
		}
		var list v1.S3SourceList
		err = a.c.List(ctx, &list, client.InNamespace(a.ns))
		if !a.wantOK && !apierrors.IsForbidden(err) {
			t.Errorf("%s: list err = %v, want Forbidden", a.name, err)
		}
	}
}
