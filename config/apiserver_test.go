package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
)

// A real kube-apiserver (with its Pod Security admission) accepts what config/ renders:
// config/default is applied for real, the PostgreSQL overlay and the samples are
// server-side dry-runs, and the manager's pod passes the namespace's restricted profile.
func TestAPIServerAcceptsManifests(t *testing.T) {
	t.Parallel()
	env, err := kube.Start()
	if err != nil {
		t.Fatalf("starting the apiserver: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the apiserver: %v", err)
		}
	})
	dir := t.TempDir()
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	kc := func(stdin []byte, args ...string) (string, error) {
		file := filepath.Join(dir, "input.yaml")
		if err := os.WriteFile(file, stdin, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runTool(kubectl(t), append([]string{"--kubeconfig", kubeconfig, "-f", file}, args...)...)
		return string(out), err
	}

	// The CRDs are already installed by envtest; applying them again must not conflict.
	if _, err := kc(renderYAML(t, "config/default"), "apply", "--server-side", "--force-conflicts", "--field-manager=config-test"); err != nil {
		t.Fatalf("applying config/default: %v", err)
	}
	if _, err := kc(renderYAML(t, "config/overlays/postgres"), "apply", "--server-side", "--force-conflicts", "--dry-run=server", "--field-manager=config-test"); err != nil {
		t.Errorf("dry-running config/overlays/postgres: %v", err)
	}
	if _, err := kc(renderYAML(t, "config/samples"), "apply", "--server-side", "--dry-run=server", "--namespace=default", "--field-manager=config-test"); err != nil {
		t.Errorf("dry-running config/samples: %v", err)
	}

	// The chart, installed as another release in its own restricted namespace (names
	// prefixed chart-test-data-import): applied for real, CRDs included, with every option
	// on except the Prometheus Operator kinds, whose CRDs this apiserver lacks.
	if _, err := kc([]byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"chart-test","labels":{"pod-security.kubernetes.io/enforce":"restricted"}}}`),
		"apply", "--server-side", "--field-manager=config-test"); err != nil {
		t.Fatalf("creating namespace chart-test: %v", err)
	}
	chart, err := runTool(helm(t), append([]string{"template", "chart-test", repoPath(t, chartDir), "--namespace", "chart-test", "--include-crds"}, everythingValues...)...)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	objs, err := decodeDocs(chart)
	if err != nil {
		t.Fatal(err)
	}
	var chartYAML []byte
	for _, o := range objs {
		if o.GroupVersionKind().Group == "monitoring.coreos.com" {
			continue
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		chartYAML = append(append(chartYAML, data...), '\n')
	}
	if _, err := kc(chartYAML, "apply", "--server-side", "--force-conflicts", "--field-manager=config-test"); err != nil {
		t.Errorf("applying the chart: %v", err)
	}
	pg, err := runTool(helm(t), "template", "chart-test", repoPath(t, chartDir), "--namespace", "chart-test", "-f", repoPath(t, chartDir+"/ci/postgres-values.yaml"))
	if err != nil {
		t.Fatalf("rendering the chart with the PostgreSQL values: %v", err)
	}
	if _, err := kc(pg, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "--field-manager=config-test"); err != nil {
		t.Errorf("dry-running the chart with the PostgreSQL values: %v", err)
	}
	if out, err := runTool(kubectl(t), "--kubeconfig", kubeconfig, "-n", "chart-test", "get", "deployment,serviceaccount,service,networkpolicy,persistentvolumeclaim", "-o", "name"); err != nil ||
		!strings.Contains(string(out), "deployment.apps/chart-test-data-import-controller-manager") || !strings.Contains(string(out), "networkpolicy.networking.k8s.io/chart-test-data-import-controller-manager") {
		t.Errorf("the chart's objects are not in namespace chart-test: %v\n%s", err, out)
	}

	// A new S3Source or IngestionQuota reads as in progress, not Current, until the operator
	// has acted on it (none runs here): the CRDs default status.observedGeneration to -1,
	// so Flux's health checks, `kubectl wait` and Argo CD do not call it healthy at once.
	for _, sample := range []string{"config/samples/dataimport_v1alpha1_s3source.yaml", "config/samples/dataimport_v1alpha1_ingestionquota.yaml"} {
		data, err := os.ReadFile(repoPath(t, sample))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kc(data, "create", "--namespace=chart-test"); err != nil {
			t.Fatalf("creating %s: %v", sample, err)
		}
		out, err := kc(data, "get", "--namespace=chart-test", "-o", "json")
		if err != nil {
			t.Fatalf("reading %s back: %v", sample, err)
		}
		var obj unstructured.Unstructured
		if err := obj.UnmarshalJSON([]byte(out)); err != nil {
			t.Fatal(err)
		}
		observed, found, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
		res, err := kstatus.Compute(&obj)
		if err != nil {
			t.Fatalf("kstatus of %s: %v", sample, err)
		}
		if !found || observed != -1 || res.Status != kstatus.InProgressStatus {
			t.Errorf("a fresh %s %s: observedGeneration %d (set: %v), kstatus %s (%s); want -1 and %s",
				obj.GetKind(), obj.GetName(), observed, found, res.Status, res.Message, kstatus.InProgressStatus)
		}
	}

	// Pod Security admission judges pods, not Deployments: dry-run the manager's pod in its
	// namespace, and a privileged twin to prove the restricted profile is really enforced.
	d := typed[appsv1.Deployment](t, find(render(t, "config/default"), "Deployment", deployment))
	pod := func(mutate func(*corev1.PodSpec)) []byte {
		p := corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "manager-pod-security", Namespace: namespace, Labels: d.Spec.Template.Labels},
			Spec:       *d.Spec.Template.Spec.DeepCopy(),
		}
		mutate(&p.Spec)
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if _, err := kc(pod(func(*corev1.PodSpec) {}), "create", "--dry-run=server"); err != nil {
		t.Errorf("the manager's pod is refused in %s: %v", namespace, err)
	}
	_, err = kc(pod(func(s *corev1.PodSpec) {
		escalate := true
		s.Containers[0].SecurityContext.AllowPrivilegeEscalation = &escalate
	}), "create", "--dry-run=server")
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("a pod allowing privilege escalation was not refused by Pod Security admission: %v", err)
	}
}
