package health_test

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
	"github.com/avon-ai/data-import-operator/internal/testsupport/health"
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
		{"source just created, status defaulted by the CRD", source(1, -1, false), "Progressing", "Waiting for the operator to act on generation 1"},
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
// Regenerate it with: go test ./internal/testsupport/health -run TestArgoCDConfigMapPatch -update
func TestArgoCDConfigMapPatch(t *testing.T) {
	const rel = "config/argocd/argocd-cm-patch.yaml"
	lua := script(t)
	if *update {
		root, err := testsupport.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, rel), []byte(renderPatch(lua, actionsValue(t))), 0o644); err != nil {
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
			t.Errorf("%s: data[%s] differs from config/argocd/health.lua; run: go test ./internal/testsupport/health -run TestArgoCDConfigMapPatch -update", rel, key)
		}
	}
	// The actions value is YAML in a string: each script must be its file, verbatim.
	var actions struct {
		Discovery   string `json:"discovery.lua"`
		Definitions []struct {
			Name   string `json:"name"`
			Action string `json:"action.lua"`
		} `json:"definitions"`
	}
	if err := yaml.UnmarshalStrict([]byte(cm.Data[actionsKey]), &actions); err != nil {
		t.Fatalf("%s: data[%s]: %v", rel, actionsKey, err)
	}
	var names []string
	for _, d := range actions.Definitions {
		names = append(names, d.Name)
		if d.Action != actionScript(t, d.Name) {
			t.Errorf("%s: action %s differs from config/argocd/actions/%s.lua; run: go test ./internal/testsupport/health -run TestArgoCDConfigMapPatch -update", rel, d.Name, d.Name)
		}
	}
	if actions.Discovery != actionScript(t, "discovery") || !slices.Equal(names, actionNames) {
		t.Errorf("%s: data[%s] has actions %v and a discovery.lua that differs from the files; run with -update", rel, actionsKey, names)
	}
	if len(cm.Data) != len(cmKeys)+1 {
		t.Errorf("%s has %d keys, want exactly %v and %s", rel, len(cm.Data), cmKeys, actionsKey)
	}
}

// renderPatch writes the argocd-cm patch: the health script under each kind's key, and
// the S3Source actions (a YAML document in a string, as Argo CD reads it).
func renderPatch(lua, actions string) string {
	var b strings.Builder
	b.WriteString(`# Argo CD health checks for S3Source and IngestionQuota, and the S3Source actions refresh,
# disable and enable. GENERATED from health.lua and actions/*.lua by
#   go test ./internal/testsupport/health -run TestArgoCDConfigMapPatch -update
# (edit the .lua files, then regenerate; the test fails while they differ).
#
# Merge it into Argo CD's argocd-cm, e.g. as a strategic-merge patch in the kustomization that
# installs Argo CD:
#   patches:
#   - path: argocd-cm-patch.yaml
# or directly:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm-patch.yaml
# Argo CD then shows an S3Source as Suspended (spec.disabled), Degraded (Stalled=True or
# Ready=False, with the condition's reason and message), Progressing (discovery running,
# generation not yet observed, no Ready yet) or Healthy (Ready=True), and offers the actions
# refresh (a discovery now), disable and enable (spec.disabled) in the S3Source's menu.
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
		b.WriteString(indent(lua, "    "))
	}
	b.WriteString("  " + actionsKey + ": |\n")
	b.WriteString(indent(actions, "    "))
	return b.String()
}

// indent prefixes each non-blank line (blank lines stay empty, as YAML block scalars want).
func indent(text, prefix string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString(strings.TrimLeft(line, " \t"))
			continue
		}
		b.WriteString(prefix + line)
	}
	return b.String()
}

// The argocd-cm key of the S3Source's actions, and the actions in config/argocd/actions.
const actionsKey = "resource.customizations.actions.dataimport.avon.ai_S3Source"

var actionNames = []string{"refresh", "disable", "enable"}

func actionScript(t *testing.T, name string) string {
	t.Helper()
	return string(readRepoFile(t, "config/argocd/actions/"+name+".lua"))
}

// actionsValue is the value Argo CD reads the actions from: discovery.lua and definitions.
func actionsValue(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("discovery.lua: |\n" + indent(actionScript(t, "discovery"), "  "))
	b.WriteString("definitions:\n")
	for _, name := range actionNames {
		b.WriteString("- name: " + name + "\n  action.lua: |\n" + indent(actionScript(t, name), "    "))
	}
	return b.String()
}

// sourceJSON is an S3Source as Argo CD hands it to an action (annotations optional).
func sourceObj(t *testing.T, disabled bool, annotations map[string]string) map[string]any {
	t.Helper()
	src := source(1, 1, disabled).(*v1.S3Source)
	src.Annotations = annotations
	data, err := json.Marshal(src)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// Argo CD offers refresh and disable on an enabled source, only enable on a disabled one.
func TestActionDiscovery(t *testing.T) {
	for _, tt := range []struct {
		disabled bool
		want     map[string]health.Action
	}{
		{false, map[string]health.Action{"refresh": {}, "disable": {}, "enable": {Disabled: true}}},
		{true, map[string]health.Action{"refresh": {Disabled: true}, "disable": {Disabled: true}, "enable": {}}},
	} {
		got, err := health.Discover(actionScript(t, "discovery"), sourceObj(t, tt.disabled, nil))
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, tt.want) {
			t.Errorf("disabled=%v: actions %v, want %v", tt.disabled, got, tt.want)
		}
	}
}

// Each action changes exactly what it says and leaves the rest of the object as it was.
func TestActions(t *testing.T) {
	before := time.Now().UTC().Truncate(time.Second)
	for _, tt := range []struct {
		name        string
		disabled    bool
		annotations map[string]string
		check       func(t *testing.T, got *v1.S3Source)
	}{
		{"refresh adds the annotation", false, nil, func(t *testing.T, got *v1.S3Source) {
			checkRefresh(t, got, before)
		}},
		{"refresh replaces an older request and keeps other annotations", false,
			map[string]string{v1.RefreshAnnotation: "1700000000", "team": "a"}, func(t *testing.T, got *v1.S3Source) {
				checkRefresh(t, got, before)
				if got.Annotations["team"] != "a" {
					t.Errorf("annotation team was lost: %v", got.Annotations)
				}
			}},
		{"disable", false, nil, func(t *testing.T, got *v1.S3Source) {
			if !got.Spec.Disabled {
				t.Error("spec.disabled is not true")
			}
		}},
		{"enable", true, nil, func(t *testing.T, got *v1.S3Source) {
			if got.Spec.Disabled {
				t.Error("spec.disabled is still true")
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			action, _, _ := strings.Cut(tt.name, " ")
			obj := sourceObj(t, tt.disabled, tt.annotations)
			out, err := health.RunAction(actionScript(t, action), obj)
			if err != nil {
				t.Fatal(err)
			}
			data, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			var got v1.S3Source
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("the action's object does not decode as an S3Source: %v\n%s", err, data)
			}
			tt.check(t, &got)
			want := source(1, 1, tt.disabled).(*v1.S3Source)
			if got.Spec.Bucket != want.Spec.Bucket || got.Spec.Prefix != want.Spec.Prefix || got.Name != want.Name || got.Namespace != want.Namespace {
				t.Errorf("the action changed more than it should: %s", data)
			}
		})
	}
}

func checkRefresh(t *testing.T, got *v1.S3Source, before time.Time) {
	t.Helper()
	v := got.Annotations[v1.RefreshAnnotation]
	at, err := time.Parse(time.RFC3339, v)
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("%s = %q (%v), want the current time in RFC 3339", v1.RefreshAnnotation, v, err)
	}
}

// The os library is Argo CD's safe subset: date and time, no commands or files.
func TestSafeOS(t *testing.T) {
	for _, script := range []string{`os.execute("true")`, `os.remove("/tmp/x")`, `os.getenv("HOME")`} {
		if _, err := health.RunAction(script+"\nreturn obj", map[string]any{}); err == nil {
			t.Errorf("%s ran; Argo CD does not offer it", script)
		}
	}
}
