package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// Guarantee 4 of docs/multi-tenancy.md: a tenant cannot raise its own limits. These tests
// act as the tenant: a user bound to the built-in "edit" role (with this project's roles
// aggregated into it by the real kube-controller-manager) in its own namespace.

const tenantQuotaNS = "tenant-quota"

// tenantQuota creates (as the platform admin) the quota the tenant then tries to change.
func tenantQuota(t *testing.T, name string) *v1.IngestionQuota {
	t.Helper()
	q := &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: tenantQuotaNS, Name: name},
		Spec: v1.IngestionQuotaSpec{DailyLimit: quantity("500M"), MaxFileSize: quantity("50M")}}
	if err := k8s.Create(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	return q
}

// wantQuotaUnchanged checks, as the admin, that the quota's spec is still the admin's.
func wantQuotaUnchanged(t *testing.T, name string) {
	t.Helper()
	q := getQuota(t, tenantQuotaNS, name)
	if q.Spec.DailyLimit.String() != "500M" || q.Spec.MaxFileSize.String() != "50M" || q.Generation != 1 || !q.DeletionTimestamp.IsZero() {
		t.Errorf("the quota changed: spec %+v, generation %d, deletion %v", q.Spec, q.Generation, q.DeletionTimestamp)
	}
}

// namespaceUser returns a client acting as user, bound to the built-in role (admin, edit
// or view) in ns only.
func namespaceUser(t *testing.T, ns, user, role string) client.Client {
	t.Helper()
	if role == "edit" {
		return asTenant(t, ns, user)
	}
	asTenant(t, ns, "quota-tenant") // starts the tenancy harness
	c, _, err := tenancy.User(context.Background(), ns, user, role)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The tenant reads its quota (get, list) but every write is Forbidden: create, update,
// patch, delete, delete-all and the status. The same holds for a namespace "admin" (a
// tenant too) and, trivially, "view".
func TestTenantQuotaIsReadOnlyForTenants(t *testing.T) {
	ctx := context.Background()
	tenantQuota(t, "default")
	raise := func(q *v1.IngestionQuota) { q.Spec.DailyLimit = quantity("50G") }

	ops := []struct {
		name      string
		do        func(t *testing.T, c client.Client) error
		forbidden bool
	}{
		{"get", func(t *testing.T, c client.Client) error {
			return c.Get(ctx, client.ObjectKey{Namespace: tenantQuotaNS, Name: "default"}, &v1.IngestionQuota{})
		}, false},
		{"list", func(t *testing.T, c client.Client) error {
			var l v1.IngestionQuotaList
			if err := c.List(ctx, &l, client.InNamespace(tenantQuotaNS)); err != nil {
				return err
			}
			if len(l.Items) == 0 {
				return fmt.Errorf("listed no quota")
			}
			return nil
		}, false},
		{"create", func(t *testing.T, c client.Client) error {
			return c.Create(ctx, &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: tenantQuotaNS, Name: "mine"},
				Spec: v1.IngestionQuotaSpec{DailyLimit: quantity("50G")}})
		}, true},
		{"update", func(t *testing.T, c client.Client) error {
			q := getQuota(t, tenantQuotaNS, "default")
			raise(q)
			return c.Update(ctx, q)
		}, true},
		{"merge patch", func(t *testing.T, c client.Client) error {
			q := getQuota(t, tenantQuotaNS, "default")
			patch := client.MergeFrom(q.DeepCopy())
			raise(q)
			return c.Patch(ctx, q, patch)
		}, true},
		{"delete", func(t *testing.T, c client.Client) error {
			return c.Delete(ctx, &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: tenantQuotaNS, Name: "default"}})
		}, true},
		{"delete all", func(t *testing.T, c client.Client) error {
			return c.DeleteAllOf(ctx, &v1.IngestionQuota{}, client.InNamespace(tenantQuotaNS))
		}, true},
		{"status update", func(t *testing.T, c client.Client) error {
			q := getQuota(t, tenantQuotaNS, "default")
			q.Status.RemainingBytes = 50_000_000_000
			return c.Status().Update(ctx, q)
		}, true},
	}
	for _, role := range []string{"edit", "admin", "view"} {
		t.Run(role, func(t *testing.T) {
			c := namespaceUser(t, tenantQuotaNS, "quota-"+role+"-user", role)
			for _, op := range ops {
				t.Run(op.name, func(t *testing.T) {
					if !op.forbidden {
						// kube-controller-manager aggregates view into edit and admin a
						// moment after they gained the S3Source rules: wait for the read.
						eventually(t, "a namespace "+role+" may "+op.name+" quotas", func() error { return op.do(t, c) })
						return
					}
					if err := op.do(t, c); !apierrors.IsForbidden(err) {
						t.Fatalf("%s as a namespace %s: got %v, want Forbidden", op.name, role, err)
					}
					wantQuotaUnchanged(t, "default")
				})
			}
		})
	}
	// The tenant is no read-only user: it still manages its S3Sources.
	src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: tenantQuotaNS, Name: "tenant-owned"},
		Spec: v1.S3SourceSpec{Bucket: "tenant-quota", Disabled: true}}
	if err := namespaceUser(t, tenantQuotaNS, "quota-edit-user", "edit").Create(ctx, src); err != nil {
		t.Fatalf("the tenant cannot create an S3Source in its namespace: %v", err)
	}
}

// A namespace admin may create RoleBindings, but RBAC's escalation check keeps it from
// binding the quota editor role, which holds verbs it does not have, to itself.
func TestTenantQuotaNamespaceAdminCannotBindEditorRole(t *testing.T) {
	ctx := context.Background()
	const user = "quota-ns-admin"
	nsAdmin := namespaceUser(t, tenantQuotaNS, user, "admin")
	binding := func(name, role string) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantQuotaNS, Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}
	}
	tests := []struct {
		role      string
		forbidden bool
	}{
		{"view", false}, // it may bind what it holds: the refusal below is about the role
		{"ingestionquota-editor-role", true},
		{"ingestionquota-admin-role", true},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			err := nsAdmin.Create(ctx, binding("self-"+tt.role, tt.role))
			if tt.forbidden != apierrors.IsForbidden(err) || (!tt.forbidden && err != nil) {
				t.Fatalf("binding %s to itself as a namespace admin: %v, want forbidden %v", tt.role, err, tt.forbidden)
			}
		})
	}
}

// The real `kubectl edit ingestionquota`, as the tenant, with an editor that raises the
// limit: the API server refuses the patch and the quota keeps the admin's limit.
func TestTenantQuotaKubectlEditIsRefused(t *testing.T) {
	const user = "quota-editor-tenant"
	asTenant(t, tenantQuotaNS, user)
	tenantQuota(t, "edited")
	dir := t.TempDir()
	kubeconfig, err := tenancy.UserKubeconfig(dir, user)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "editor-ran")
	editor := filepath.Join(dir, "raise-limit.sh")
	script := "#!/bin/sh\nset -e\n" +
		"sed -i 's/^  dailyLimit: .*/  dailyLimit: 50G/' \"$1\"\n" +
		"grep -q '^  dailyLimit: 50G' \"$1\"\n" +
		"touch " + marker + "\n"
	if err := os.WriteFile(editor, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tenant may get quotas", func() error {
		return asTenant(t, tenantQuotaNS, user).Get(context.Background(), client.ObjectKey{Namespace: tenantQuotaNS, Name: "edited"}, &v1.IngestionQuota{})
	})

	cmd := exec.Command(filepath.Join(env.Assets, "kubectl"), "--kubeconfig", kubeconfig, "-n", tenantQuotaNS, "edit", "ingestionquota", "edited")
	cmd.Env = append(os.Environ(), "KUBE_EDITOR="+editor, "EDITOR="+editor, "HOME="+dir, "TMPDIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if _, statErr := os.Stat(marker); statErr != nil {
		t.Fatalf("the editor did not raise the limit (so kubectl had nothing to send): %v\n%s", statErr, out.String())
	}
	if err == nil {
		t.Fatalf("kubectl edit as the tenant succeeded:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "forbidden") || !strings.Contains(out.String(), `User "`+user+`" cannot patch resource "ingestionquotas"`) {
		t.Errorf("kubectl edit failed without saying Forbidden:\n%s", out.String())
	}
	wantQuotaUnchanged(t, "edited")
}

// Ceilings: a second manager (its own namespace and store) runs with tiny ceilings, so a
// quota asking for more, and the defaults of a quota that does not exist, are capped, and a
// file above the effective maxFileSize is refused without being downloaded.
func TestTenantQuotaCeilings(t *testing.T) {
	const ns = "tenant-ceiling"
	ctx := context.Background()
	ceilings := controllers.Ceilings{DailyLimit: 1_000_000, MaxFileSize: 2_000}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stop, err := startManager(ctx, st, []string{ns}, ceilings)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	small := jsonArray(t, conversation("agent-c", "small", "2025-01-15T14:30:00Z", "x"))
	var many []map[string]any
	for i := range 10 {
		many = append(many, conversation("agent-c", convID("big", i), "2025-01-15T14:30:00Z", "padding padding padding"))
	}
	big := jsonArray(t, many...)
	if len(small) > 2_000 || len(big) <= 2_000 {
		t.Fatalf("fixture sizes %d and %d do not straddle the 2 kB ceiling", len(small), len(big))
	}

	tests := []struct {
		name, quotaRef string
		quota          *v1.IngestionQuotaSpec // nil: the quota does not exist
		quotaReason    string
		quotaMessage   []string
	}{
		{
			name: "a quota asking above the ceilings", quotaRef: "greedy",
			quota:        &v1.IngestionQuotaSpec{DailyLimit: quantity("50G"), MaxFileSize: quantity("5G")},
			quotaReason:  v1.ReasonQuotaAvailable,
			quotaMessage: []string{"IngestionQuota " + ns + "/greedy: 1 MB a day, 2 kB a file", "capped by the operator's ceilings"},
		},
		{
			name: "the namespace's default quota does not exist", quotaRef: v1.DefaultQuotaName,
			quotaReason:  v1.ReasonDefaultQuota,
			quotaMessage: []string{"IngestionQuota " + ns + "/default not found: using the defaults (1 MB a day, 2 kB a file", "capped by the operator's ceilings"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.quota != nil {
				createQuota(t, ns, tt.quotaRef, *tt.quota)
				var q *v1.IngestionQuota
				eventually(t, "the quota's effective limits", func() error {
					q = getQuota(t, ns, tt.quotaRef)
					if q.Status.EffectiveDailyLimit == nil || q.Status.EffectiveMaxFileSize == nil {
						return fmt.Errorf("status %+v", q.Status)
					}
					return nil
				})
				if got, want := q.Status.EffectiveDailyLimit.Value(), ceilings.DailyLimit; got != want {
					t.Errorf("effectiveDailyLimit = %d, want the ceiling %d", got, want)
				}
				if got, want := q.Status.EffectiveMaxFileSize.Value(), ceilings.MaxFileSize; got != want {
					t.Errorf("effectiveMaxFileSize = %d, want the ceiling %d", got, want)
				}
				c := meta.FindStatusCondition(q.Status.Conditions, v1.ConditionLimitsCapped)
				if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1.ReasonCeilingApplied ||
					!strings.Contains(c.Message, "spec.dailyLimit 50 GB is above the operator's ceiling of 1 MB (--max-daily-limit): 1 MB applies") ||
					!strings.Contains(c.Message, "spec.maxFileSize 5 GB is above the operator's ceiling of 2 kB (--max-file-size): 2 kB applies") {
					t.Errorf("LimitsCapped = %+v", c)
				}
				if q.Status.Usage != "0 B of 1 MB used today" {
					t.Errorf("usage %q, want it against the effective limit", q.Status.Usage)
				}
			}
			bkt, prefix := "tenant-ceiling-"+tt.quotaRef, "in/"
			createBucket(t, bkt)
			put(t, bkt, prefix+"small.json", small)
			put(t, bkt, prefix+"big.json", big)
			ct := counts.of(bkt)
			ct.Reset()
			start := clk.Now()
			newSource(t, ns, tt.quotaRef, bkt, prefix, func(s *v1.S3SourceSpec) { s.QuotaRef = tt.quotaRef })
			src := waitRun(t, ns, tt.quotaRef, start)
			wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 1, Failed: 1})
			wantRequests(t, ct, 1, 1) // the big file is never downloaded
			if len(src.Status.RecentFileErrors) != 1 || src.Status.RecentFileErrors[0].Reason != ingest.ReasonFileTooLarge ||
				!strings.Contains(src.Status.RecentFileErrors[0].Message, "larger than the 2 kB maximum file size of IngestionQuota "+ns+"/"+tt.quotaRef) {
				t.Errorf("recentFileErrors = %+v, want big.json FileTooLarge against 2 kB", src.Status.RecentFileErrors)
			}
			c := condition(src, v1.ConditionQuotaAvailable)
			if c.Status != metav1.ConditionTrue || c.Reason != tt.quotaReason {
				t.Errorf("QuotaAvailable = %s/%s, want True/%s", c.Status, c.Reason, tt.quotaReason)
			}
			for _, m := range tt.quotaMessage {
				if !strings.Contains(c.Message, m) {
					t.Errorf("QuotaAvailable message %q does not say %q", c.Message, m)
				}
			}
		})
	}
}

// A tenant cannot get a second set of defaults by naming a quota that does not exist: only
// the namespace's "default" quota falls back to the defaults. A source naming any other
// missing quota stalls without an S3 request, and runs once the admin creates that quota.
func TestTenantQuotaRefToMissingQuotaStalls(t *testing.T) {
	ctx := context.Background()
	const bkt = "tenant-quota-missing"
	tenant := asTenant(t, tenantQuotaNS, "quota-tenant")
	createBucket(t, bkt)
	put(t, bkt, "in/a.json", jsonArray(t, conversation("agent-q", "missing-quota-1", "2025-01-15T14:30:00Z", "x")))
	ak, sk, err := s3.CreateReadOnlyUser(bkt, "in/")
	if err != nil {
		t.Fatal(err)
	}
	if err := tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantQuotaNS, Name: "missing-quota-keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}); err != nil {
		t.Fatal(err)
	}
	src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: tenantQuotaNS, Name: "second-budget"},
		Spec: v1.S3SourceSpec{Bucket: bkt, Prefix: "in/", Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region, QuotaRef: "q1",
			Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "missing-quota-keys"}}}}
	if err := tenant.Create(ctx, src); err != nil {
		t.Fatalf("the tenant creating a source: %v", err)
	}
	eventually(t, "Stalled=True/QuotaNotFound", func() error {
		c := condition(getSource(t, tenantQuotaNS, src.Name), v1.ConditionStalled)
		if c.Status != metav1.ConditionTrue || c.Reason != v1.ReasonQuotaNotFound ||
			!strings.Contains(c.Message, "IngestionQuota "+tenantQuotaNS+"/q1 named by spec.quotaRef does not exist") {
			return fmt.Errorf("Stalled = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	if n := counts.of(bkt).Count(bucket.OpListObjectsV2); n != 0 {
		t.Errorf("%d ListObjectsV2 request(s) for a source whose quota does not exist", n)
	}
	createQuota(t, tenantQuotaNS, "q1", v1.IngestionQuotaSpec{})
	eventually(t, "the source runs under the admin's new quota", func() error {
		got := getSource(t, tenantQuotaNS, src.Name)
		if c := condition(got, v1.ConditionReady); c.Status != metav1.ConditionTrue || got.Status.Files == nil || got.Status.Files.Ingested != 1 {
			return fmt.Errorf("Ready = %s/%s %q, files %+v", c.Status, c.Reason, c.Message, got.Status.Files)
		}
		return nil
	})
}
