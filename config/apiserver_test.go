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
