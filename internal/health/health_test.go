package health_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/health"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

var update = flag.Bool("update", false, "rewrite config/argocd/argocd-cm-patch.yaml from config/argocd/health.lua")

// The argocd-cm keys Argo CD reads a custom health check from: resource.customizations.health.<group>_<kind>.
var cmKeys = []string{
	"resource.customizations.health.dataimport.avon.ai_S3Source",
	"resource.customizations.health.dataimport.avon.ai_IngestionQuota",
}

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	root, err := testsupport.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func script(t *testing.T) string {
	t.Helper()
	return string(readRepoFile(t, "config/argocd/health.lua"))
}

func cond(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg,
		LastTransitionTime: metav1.Unix(1736951400, 0)}
}

// source builds an S3Source as the apiserver returns it (generation, defaulted spec, status).
func source(generation, observed int64, disabled bool, conds ...metav1.Condition) any {
	return &v1.S3Source{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "S3Source"},
		ObjectMeta: metav1.ObjectMeta{Name: "conversations", Namespace: "team-a", Generation: generation},
		Spec:       v1.S3SourceSpec{Bucket: "my-bucket", Prefix: "conversations/", Region: "eu-west-1", Disabled: disabled},
		Status:     v1.S3SourceStatus{ObservedGeneration: observed, Conditions: conds},
	}
}

func quota(generation, observed int64, conds ...metav1.Condition) any {
	return &v1.IngestionQuota{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "IngestionQuota"},
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "team-a", Generation: generation},
		Status:     v1.IngestionQuotaStatus{ObservedGeneration: observed, Conditions: conds},
	}
}

func TestHealthScript(t *testing.T) {
	const (
		accessDenied = "access denied listing s3://my-bucket/conversations/: check the bucket policy"
		noSecret     = `Secret "s3-credentials" not found in namespace team-a`
		running      = "discovering s3://my-bucket/conversations/"
		summary      = "discovered 3 object(s): 3 ingested, 0 failed, 0 deferred, 0 ignored"
		usage        = "12.3 MB of 500 MB used today"
	)
	tests := []struct {
		name        string
		obj         any
		wantStatus  string
		wantMessage string
	}{
		// S3Source
		{"source ready", source(2, 2, false, cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, summary)),
			"Healthy", "Succeeded: " + summary},
		{"source ready with files failed stays healthy", source(1, 1, false,
			cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, summary),
			cond(v1.ConditionFilesHealthy, metav1.ConditionFalse, v1.ReasonFilesFailed, "1 file(s) failed")),
			"Healthy", "Succeeded: " + summary},
		{"source just created, no status", source(1, 0, false), "Progressing", "Waiting for the operator to act on generation 1"},
		{"source spec changed, old failure not yet re-evaluated", source(3, 2, false,
			cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonAccessDenied, accessDenied)),
			"Progressing", "Waiting for the operator to act on generation 3"},
		{"source first discovery running", source(1, 1, false,
			cond(v1.ConditionReady, metav1.ConditionUnknown, v1.ReasonProgressing, "the first discovery is running"),
			cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonDiscoveryRunning, running)),
			"Progressing", "DiscoveryRunning: " + running},
		{"source scheduled discovery running", source(1, 1, false,
			cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, summary),
			cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonDiscoveryRunning, running)),
			"Progressing", "DiscoveryRunning: " + running},
		{"source observed but no Ready yet", source(1, 1, false), "Progressing", "Waiting for the operator to report the Ready condition"},
		{"source access denied", source(1, 1, false,
			cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonAccessDenied, accessDenied)),
			"Degraded", "AccessDenied: " + accessDenied},
		{"source failing and retrying is degraded", source(1, 1, false,
			cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonThrottled, "SlowDown"),
			cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonProgressingWithRetry, "retrying at 2025-01-15T15:30:00Z after: SlowDown")),
			"Degraded", "Throttled: SlowDown"},
		{"source stalled", source(4, 4, false,
			cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonSecretNotFound, noSecret),
			cond(v1.ConditionStalled, metav1.ConditionTrue, v1.ReasonSecretNotFound, noSecret)),
			"Degraded", "SecretNotFound: " + noSecret},
		{"stalled outranks a running discovery", source(4, 4, false,
			cond(v1.ConditionReady, metav1.ConditionUnknown, v1.ReasonProgressing, "the first discovery is running"),
			cond(v1.ConditionStalled, metav1.ConditionTrue, v1.ReasonInvalidSpec, "endpoint is not a URL"),
			cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonDiscoveryRunning, running)),
			"Degraded", "InvalidSpec: endpoint is not a URL"},
		{"source disabled", source(2, 2, true,
			cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonDisabled, "ingestion is paused (spec.disabled)")),
			"Suspended", "Ingestion is paused (spec.disabled); re-enabling processes only what changed meanwhile"},
		{"source disabled before the operator saw it", source(5, 4, true,
			cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonAccessDenied, accessDenied)),
			"Suspended", "Ingestion is paused (spec.disabled); re-enabling processes only what changed meanwhile"},

		// IngestionQuota (it cannot be disabled, so never Suspended)
		{"quota ready", quota(1, 1, cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, usage),
			cond(v1.ConditionQuotaAvailable, metav1.ConditionTrue, v1.ReasonQuotaAvailable, "487.7 MB left today")),
			"Healthy", "Succeeded: " + usage},
		{"quota used up is still healthy", quota(1, 1, cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, "500 MB of 500 MB used today"),
			cond(v1.ConditionQuotaAvailable, metav1.ConditionFalse, v1.ReasonQuotaExceeded, "today's 500 MB are used up")),
			"Healthy", "Succeeded: 500 MB of 500 MB used today"},
		{"quota just created", quota(1, 0), "Progressing", "Waiting for the operator to act on generation 1"},
		{"quota limit changed", quota(2, 1, cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, usage)),
			"Progressing", "Waiting for the operator to act on generation 2"},
		{"quota store unreachable", quota(1, 1, cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonStoreError, "reading usage: connection refused")),
			"Degraded", "StoreError: reading usage: connection refused"},
		{"quota bad time zone", quota(3, 3,
			cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonInvalidTimeZone, `unknown time zone "Mars/Olympus"`),
			cond(v1.ConditionStalled, metav1.ConditionTrue, v1.ReasonInvalidTimeZone, `unknown time zone "Mars/Olympus"`)),
			"Degraded", `InvalidTimeZone: unknown time zone "Mars/Olympus"`},
	}
	lua := script(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			got, err := health.EvaluateJSON(lua, data)
			if err != nil {
				t.Fatalf("EvaluateJSON: %v\nobject: %s", err, data)
			}
			if got.Status != tt.wantStatus || got.Message != tt.wantMessage {
				t.Errorf("got %s %q, want %s %q\nobject: %s", got.Status, got.Message, tt.wantStatus, tt.wantMessage, data)
			}
		})
	}
}

// A condition without reason or message must still give a readable message, not a Lua error.
func TestHealthScriptSparseConditions(t *testing.T) {
	obj := `{"apiVersion":"dataimport.avon.ai/v1alpha1","kind":"S3Source","metadata":{"generation":1},
		"status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"False","reason":"AccessDenied"}]}}`
	got, err := health.EvaluateJSON(script(t), []byte(obj))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "Degraded" || got.Message != "AccessDenied" {
		t.Errorf("got %s %q, want Degraded %q", got.Status, got.Message, "AccessDenied")
	}
}

// The runner must fail the way Argo CD would, or the script tests above prove nothing.
func TestEvaluateRejects(t *testing.T) {
	tests := []struct {
		name, script, wantErr string
	}{
		{"string library is not loaded", `return {status = string.upper("healthy")}`, "string"},
		{"not a table", `return "Healthy"`, "returned string, expected a table"},
		{"unknown status", `return {status = "Fine", message = "ok"}`, `status "Fine"`},
		{"message not a string", `return {status = "Healthy", message = {}}`, "message = "},
		{"syntax error", `return {status = `, "running the health script"},
		{"endless loop stops at the timeout", `while true do end`, "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := health.EvaluateJSON(tt.script, []byte(`{"kind":"S3Source"}`))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// argocd-cm-patch.yaml must carry health.lua verbatim under each kind's key.
// Regenerate it with: go test ./internal/health -run TestArgoCDConfigMapPatch -update
func TestArgoCDConfigMapPatch(t *testing.T) {
	const rel = "config/argocd/argocd-cm-patch.yaml"
	lua := script(t)
	if *update {
		root, err := testsupport.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, rel), []byte(renderPatch(lua)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(readRepoFile(t, rel), &cm); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" || cm.Namespace != "argocd" {
		t.Errorf("%s patches %s %s/%s, want ConfigMap argocd/argocd-cm", rel, cm.Kind, cm.Namespace, cm.Name)
	}
	for _, key := range cmKeys {
		if cm.Data[key] != lua {
			t.Errorf("%s: data[%s] differs from config/argocd/health.lua; run: go test ./internal/health -run TestArgoCDConfigMapPatch -update", rel, key)
		}
	}
	if len(cm.Data) != len(cmKeys) {
		t.Errorf("%s has %d keys, want exactly %v", rel, len(cm.Data), cmKeys)
	}
}

func renderPatch(lua string) string {
	var b strings.Builder
	b.WriteString(`# Argo CD health checks for S3Source and IngestionQuota. GENERATED from health.lua by
#   go test ./internal/health -run TestArgoCDConfigMapPatch -update
# (edit health.lua, then regenerate; the test fails while the two differ).
#
# Merge it into Argo CD's argocd-cm, e.g. as a strategic-merge patch in the kustomization that
# installs Argo CD:
#   patches:
#   - path: argocd-cm-patch.yaml
# or directly:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm-patch.yaml
# Argo CD then shows an S3Source as Suspended (spec.disabled), Degraded (Stalled=True or
# Ready=False, with the condition's reason and message), Progressing (discovery running,
# generation not yet observed, no Ready yet) or Healthy (Ready=True).
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`)
	for _, key := range cmKeys {
		b.WriteString("  " + key + ": |\n")
		for _, line := range strings.SplitAfter(lua, "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteString(strings.TrimLeft(line, " \t"))
				continue
			}
			b.WriteString("    " + line)
		}
	}
	return b.String()
}
