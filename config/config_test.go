// Package config_test renders the kustomizations in config/ with the real kubectl and checks
// what a deployment relies on: both CRDs, the manager's security context, probes and store,
// RBAC that only gets Secrets (never writes, lists or watches them), samples that decode as their kinds, alert rules that only
// use metrics the manager exports, and (apiserver_test.go) that a real apiserver accepts it all.
package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

const (
	namespace  = "data-import-system"
	deployment = "data-import-controller-manager"
	image      = "ghcr.io/avon-ai/data-import-operator:v0.1.0"
	dataDir    = "/var/lib/data-import"
)

var (
	kubectlOnce sync.Once
	kubectlPath string
	kubectlErr  error
)

// kubectl returns the kubectl that hack/envtest-assets.sh builds (or finds cached).
func kubectl(t *testing.T) string {
	t.Helper()
	kubectlOnce.Do(func() {
		var dir string
		if dir, kubectlErr = testsupport.HackScript("envtest-assets.sh"); kubectlErr == nil {
			kubectlPath = filepath.Join(dir, "kubectl")
		}
	})
	if kubectlErr != nil {
		t.Fatalf("building kubectl: %v", kubectlErr)
	}
	return kubectlPath
}

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := testsupport.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

// runTool runs a command and returns its stdout; stderr goes into the error.
func runTool(name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

var (
	renderMu    sync.Mutex
	renderCache = map[string][]byte{}
)

// renderYAML runs `kubectl kustomize` on a directory of config/, once per test binary.
func renderYAML(t *testing.T, dir string) []byte {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if out, ok := renderCache[dir]; ok {
		return out
	}
	out, err := runTool(kubectl(t), "kustomize", repoPath(t, dir))
	if err != nil {
		t.Fatalf("rendering %s: %v", dir, err)
	}
	renderCache[dir] = out
	return out
}

func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := decodeDocs(renderYAML(t, dir))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return objs
}

// decodeDocs splits a multi-document YAML stream into objects, skipping empty documents.
func decodeDocs(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(obj) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: obj})
		}
	}
}

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, v1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// typed converts a rendered object into its Go type, failing on any field the type does
// not have: a misspelt field would otherwise be dropped silently by the apiserver.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// Every object of both deployable renders is a known type, converts strictly, and lives in
// the operator's namespace unless it is cluster-scoped.
func TestRenderedObjectsAreValidTypes(t *testing.T) {
	scheme := newScheme(t)
	clusterScoped := map[string]bool{"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true, "ClusterRoleBinding": true}
	for _, dir := range []string{"config/default", "config/overlays/postgres", "config/overlays/postgres-sharded"} {
		t.Run(dir, func(t *testing.T) {
			for _, u := range render(t, dir) {
				obj, err := scheme.New(u.GroupVersionKind())
				if err != nil {
					t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
					continue
				}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
					t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
				}
				if ns := u.GetNamespace(); clusterScoped[u.GetKind()] != (ns == "") || (ns != "" && ns != namespace) {
					t.Errorf("%s %s is in namespace %q, want %q (or none if cluster-scoped)", u.GetKind(), u.GetName(), ns, namespace)
				}
			}
		})
	}
}

// limitArgs are the platform admin's limits both Deployments pass explicitly.
var limitArgs = []string{"--spool-dir=/tmp", "--concurrent-files=4", "--max-file-size=100M", "--max-daily-limit=10G", "--receiver-bind-address=:9292"}

func TestManagerDeployment(t *testing.T) {
	tests := []struct {
		dir      string
		replicas int32
		strategy appsv1.DeploymentStrategyType
		args     []string
		sqlite   bool // PVC-backed SQLite store; otherwise PostgreSQL from STORE_DSN
	}{
		{"config/default", 1, appsv1.RecreateDeploymentStrategyType,
			append([]string{"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8443", "--metrics-secure", "--data-dir=" + dataDir}, limitArgs...), true},
		{"config/overlays/postgres", 2, appsv1.RollingUpdateDeploymentStrategyType,
			append([]string{"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8443", "--metrics-secure", "--store=$(STORE_DSN)"}, limitArgs...), false},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			objs := render(t, tt.dir)
			for _, crd := range []string{"s3sources.dataimport.avon.ai", "ingestionquotas.dataimport.avon.ai"} {
				if find(objs, "CustomResourceDefinition", crd) == nil {
					t.Errorf("CustomResourceDefinition %s is missing", crd)
				}
			}
			nsObj := find(objs, "Namespace", namespace)
			if nsObj == nil {
				t.Fatalf("Namespace %s is missing", namespace)
			}
			if got := nsObj.GetLabels()["pod-security.kubernetes.io/enforce"]; got != "restricted" {
				t.Errorf("Namespace label pod-security.kubernetes.io/enforce = %q, want restricted", got)
			}
			u := find(objs, "Deployment", deployment)
			if u == nil {
				t.Fatalf("Deployment %s is missing", deployment)
			}
			d := typed[appsv1.Deployment](t, u)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != tt.replicas {
				t.Errorf("replicas = %v, want %d", d.Spec.Replicas, tt.replicas)
			}
			if d.Spec.Strategy.Type != tt.strategy {
				t.Errorf("strategy = %q, want %q", d.Spec.Strategy.Type, tt.strategy)
			}
			pod := d.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1 (manager)", len(pod.Containers))
			}
			c := pod.Containers[0]
			if c.Image != image {
				t.Errorf("image = %q, want %q", c.Image, image)
			}
			if !slices.Equal(c.Args, tt.args) {
				t.Errorf("args = %q, want %q", c.Args, tt.args)
			}
			checkSecurity(t, pod)
			checkProbes(t, c)
			checkResources(t, c)
			if find(objs, "ServiceAccount", pod.ServiceAccountName) == nil {
				t.Errorf("ServiceAccount %q of the pod is not rendered", pod.ServiceAccountName)
			}
			if m := mountOf(pod, c, "/tmp"); m == nil || m.EmptyDir == nil {
				t.Errorf("/tmp is not an emptyDir (ZIP spooling on a read-only root): %+v", m)
			}
			store := mountOf(pod, c, dataDir)
			pvcs := ofKind(objs, "PersistentVolumeClaim")
			envDSN := envFrom(c, "STORE_DSN")
			if tt.sqlite {
				if store == nil || store.PersistentVolumeClaim == nil || store.PersistentVolumeClaim.ClaimName != "data-import-store" {
					t.Fatalf("%s is not the PVC data-import-store: %+v", dataDir, store)
				}
				if len(pvcs) != 1 || pvcs[0].GetName() != "data-import-store" {
					t.Fatalf("PersistentVolumeClaims %v, want only data-import-store", names(pvcs))
				}
				pvc := typed[corev1.PersistentVolumeClaim](t, pvcs[0])
				if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) ||
					pvc.Spec.Resources.Requests.Storage().String() != "1Gi" {
					t.Errorf("PVC data-import-store is %v %s, want ReadWriteOnce 1Gi", pvc.Spec.AccessModes, pvc.Spec.Resources.Requests.Storage())
				}
				if envDSN != nil {
					t.Errorf("STORE_DSN is set with the SQLite store")
				}
				return
			}
			if store != nil || len(pvcs) != 0 {
				t.Errorf("the PostgreSQL overlay still has the SQLite volume (%+v) or PVCs %v", store, names(pvcs))
			}
			for _, v := range pod.Volumes {
				if v.PersistentVolumeClaim != nil {
					t.Errorf("volume %s is a PVC", v.Name)
				}
			}
			if envDSN == nil || envDSN.SecretKeyRef == nil || envDSN.SecretKeyRef.Name == "" || envDSN.SecretKeyRef.Key == "" {
				t.Errorf("STORE_DSN is not read from a Secret: %+v", envDSN)
			}
		})
	}
}

func checkSecurity(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, runAsUser 65532, seccomp RuntimeDefault", psc)
	}
	sc := pod.Containers[0].SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v: want no privilege escalation, read-only root, capabilities drop ALL", sc)
	}
}

func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET: %+v", p.name, p.probe)
			continue
		}
		if got := containerPort(c, p.probe.HTTPGet.Port.String()); p.probe.HTTPGet.Path != p.path || got != 8081 {
			t.Errorf("%s probe is GET %s on port %d, want %s on 8081", p.name, p.probe.HTTPGet.Path, got, p.path)
		}
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	r := c.Resources
	for _, q := range []struct {
		name string
		got  string
	}{
		{"requests.cpu", r.Requests.Cpu().String()}, {"requests.memory", r.Requests.Memory().String()},
		{"limits.cpu", r.Limits.Cpu().String()}, {"limits.memory", r.Limits.Memory().String()},
	} {
		if q.got == "0" {
			t.Errorf("resources.%s is not set", q.name)
		}
	}
	if r.Requests.Memory().Cmp(*r.Limits.Memory()) > 0 || r.Requests.Cpu().Cmp(*r.Limits.Cpu()) > 0 {
		t.Errorf("requests %v exceed limits %v", r.Requests, r.Limits)
	}
}

// containerPort resolves a probe or service port (a number or a port name) to a number.
func containerPort(c corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	return 0
}

// mountOf returns the volume mounted at path, or nil.
func mountOf(pod corev1.PodSpec, c corev1.Container, path string) *corev1.Volume {
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name {
				return &pod.Volumes[i]
			}
		}
		return &corev1.Volume{Name: m.Name + " (missing)"}
	}
	return nil
}

func envFrom(c corev1.Container, name string) *corev1.EnvVarSource {
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom == nil {
				return &corev1.EnvVarSource{}
			}
			return e.ValueFrom
		}
	}
	return nil
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	return out
}

// The metrics Service reaches the manager's https port, and the ServiceMonitor selects it.
func TestMetricsServiceAndMonitor(t *testing.T) {
	objs := render(t, "config/default")
	svcU := find(objs, "Service", "data-import-controller-manager-metrics-service")
	if svcU == nil {
		t.Fatal("metrics Service data-import-controller-manager-metrics-service is missing")
	}
	svc := typed[corev1.Service](t, svcU)
	d := typed[appsv1.Deployment](t, find(objs, "Deployment", deployment))
	podLabels := d.Spec.Template.Labels
	for k, v := range svc.Spec.Selector {
		if podLabels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pod labels %v", k, v, podLabels)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 ||
		containerPort(d.Spec.Template.Spec.Containers[0], svc.Spec.Ports[0].TargetPort.String()) != 8443 {
		t.Errorf("Service ports %+v, want 8443 to the container's 8443", svc.Spec.Ports)
	}

	prom := render(t, "config/prometheus")
	mons := ofKind(prom, "ServiceMonitor")
	if len(mons) != 1 {
		t.Fatalf("config/prometheus renders %d ServiceMonitors, want 1", len(mons))
	}
	mon := mons[0]
	if mon.GetNamespace() != namespace {
		t.Errorf("ServiceMonitor is in %q, want %q", mon.GetNamespace(), namespace)
	}
	sel, _, _ := unstructured.NestedStringMap(mon.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %s=%s does not match the Service labels %v", k, v, svc.Labels)
		}
	}
	endpoints, _, _ := unstructured.NestedSlice(mon.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor has %d endpoints, want 1", len(endpoints))
	}
	ep, _ := endpoints[0].(map[string]any)
	if ep["port"] != svc.Spec.Ports[0].Name || ep["scheme"] != "https" || ep["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoint %v: want port %q, https, honorLabels (the metrics' own namespace label)", ep, svc.Spec.Ports[0].Name)
	}
	serverName := svc.Name + "." + namespace + ".svc"
	checkMonitorAuth(t, mon, prom, metricsCertSecret, serverName)

	// config/overlays/metrics-tls serves the certificate whose CA the monitor trusts: it
	// mounts the Secret at --metrics-cert-dir, and cert-manager issues it for serverName.
	tls := render(t, "config/overlays/metrics-tls")
	td := typed[appsv1.Deployment](t, find(tls, "Deployment", deployment))
	c := td.Spec.Template.Spec.Containers[0]
	var certDir string
	for _, arg := range c.Args {
		if v, ok := strings.CutPrefix(arg, "--metrics-cert-dir="); ok {
			certDir = v
		}
	}
	if vol := mountOf(td.Spec.Template.Spec, c, certDir); certDir == "" || vol == nil || vol.Secret == nil || vol.Secret.SecretName != metricsCertSecret {
		t.Errorf("config/overlays/metrics-tls: --metrics-cert-dir %q is not the Secret %s: %+v", certDir, metricsCertSecret, vol)
	}
	cert := find(tls, "Certificate", metricsCertSecret)
	if cert == nil {
		t.Fatal("config/overlays/metrics-tls: Certificate is missing")
	}
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if secretName != metricsCertSecret || !slices.Contains(dnsNames, serverName) {
		t.Errorf("Certificate writes %q for %v, want %s for %s", secretName, dnsNames, metricsCertSecret, serverName)
	}
}

// metricsCertSecret holds the manager's metrics serving certificate and its CA.
const metricsCertSecret = "data-import-metrics-server-cert"

// The only verb the manager has on Secrets: it never changes or creates one, and it does
// not list or watch them either (no cluster-wide read of every tenant's Secrets): it gets
// the ones a source names, in the source's namespace.
var secretVerbs = []string{"get"}

// secretWrites returns the rules of roles that grant anything but getting Secrets.
func secretWrites(name string, rules []rbacv1.PolicyRule) []string {
	return grantsBeyond(name, rules, "secrets", secretVerbs)
}

// The manager reads the ServiceAccount a source names (get) and mints its token
// (serviceaccounts/token create); it never lists or watches ServiceAccounts.
var serviceAccountVerbs = map[string][]string{"serviceaccounts": {"get"}, "serviceaccounts/token": {"create"}}

// grantsBeyond returns what the rules grant on a core resource beyond allowed verbs.
func grantsBeyond(name string, rules []rbacv1.PolicyRule, resource string, allowed []string) []string {
	var bad []string
	for _, r := range rules {
		core := slices.Contains(r.APIGroups, "") || slices.Contains(r.APIGroups, "*")
		matches := slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")
		if !core || !matches {
			continue
		}
		for _, v := range r.Verbs {
			if !slices.Contains(allowed, v) {
				bad = append(bad, fmt.Sprintf("%s grants %q on %s", name, v, resource))
			}
		}
	}
	return bad
}

func TestSecretWritesDetector(t *testing.T) {
	tests := []struct {
		name string
		rule rbacv1.PolicyRule
		want int
	}{
		{"get secrets", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: secretVerbs}, 0},
		{"list and watch secrets", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}, 2},
		{"update secrets", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "update"}}, 1},
		{"wildcard resource", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"*"}, Verbs: []string{"*"}}, 1},
		{"wildcard group", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"secrets"}, Verbs: []string{"create", "delete"}}, 2},
		{"other group", rbacv1.PolicyRule{APIGroups: []string{"dataimport.avon.ai"}, Resources: []string{"*"}, Verbs: []string{"*"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := secretWrites("r", []rbacv1.PolicyRule{tt.rule}); len(got) != tt.want {
				t.Errorf("secretWrites = %v, want %d finding(s)", got, tt.want)
			}
		})
	}
}

// aggregatesTo lists the built-in roles (admin, edit, view) a ClusterRole's labels
// aggregate it into, sorted.
func aggregatesTo(labels map[string]string) []string {
	var out []string
	for k, v := range labels {
		if role, ok := strings.CutPrefix(k, "rbac.authorization.k8s.io/aggregate-to-"); ok && v == "true" {
			out = append(out, role)
		}
	}
	slices.Sort(out)
	return out
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// readVerbs are what reading an object takes.
var readVerbs = []string{"get", "list", "watch"}

// quotaWrites returns the rules that grant anything but reading IngestionQuotas.
func quotaWrites(name string, rules []rbacv1.PolicyRule) []string {
	var bad []string
	for _, r := range rules {
		group := slices.Contains(r.APIGroups, v1.GroupVersion.Group) || slices.Contains(r.APIGroups, "*")
		quotas := slices.Contains(r.Resources, "ingestionquotas") || slices.Contains(r.Resources, "*")
		if !group || !quotas {
			continue
		}
		for _, v := range r.Verbs {
			if !slices.Contains(readVerbs, v) {
				bad = append(bad, fmt.Sprintf("%s grants %q on ingestionquotas", name, v))
			}
		}
	}
	return bad
}

func TestQuotaWritesDetector(t *testing.T) {
	tests := []struct {
		name string
		rule rbacv1.PolicyRule
		want int
	}{
		{"read quotas", rbacv1.PolicyRule{APIGroups: []string{"dataimport.avon.ai"}, Resources: []string{"ingestionquotas"}, Verbs: readVerbs}, 0},
		{"read quota status", rbacv1.PolicyRule{APIGroups: []string{"dataimport.avon.ai"}, Resources: []string{"ingestionquotas/status"}, Verbs: []string{"get"}}, 0},
		{"edit quotas", rbacv1.PolicyRule{APIGroups: []string{"dataimport.avon.ai"}, Resources: []string{"ingestionquotas"}, Verbs: []string{"get", "update", "patch", "delete"}}, 3},
		{"wildcard verb", rbacv1.PolicyRule{APIGroups: []string{"dataimport.avon.ai"}, Resources: []string{"ingestionquotas"}, Verbs: []string{"*"}}, 1},
		{"wildcard resource", rbacv1.PolicyRule{APIGroups: []string{"dataimport.avon.ai"}, Resources: []string{"*"}, Verbs: []string{"create"}}, 1},
		{"wildcard group", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"ingestionquotas"}, Verbs: []string{"create"}}, 1},
		{"sources only", rbacv1.PolicyRule{APIGroups: []string{"dataimport.avon.ai"}, Resources: []string{"s3sources"}, Verbs: []string{"*"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quotaWrites("r", []rbacv1.PolicyRule{tt.rule}); len(got) != tt.want {
				t.Errorf("quotaWrites = %v, want %d finding(s)", got, tt.want)
			}
		})
	}
}

func TestRBAC(t *testing.T) {
	for _, dir := range []string{"config/default", "config/overlays/postgres"} {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			for _, u := range ofKind(objs, "ClusterRole") {
				rules := typed[rbacv1.ClusterRole](t, u).Rules
				for _, bad := range secretWrites("ClusterRole "+u.GetName(), rules) {
					t.Error(bad)
				}
				for res, verbs := range serviceAccountVerbs {
					for _, bad := range grantsBeyond("ClusterRole "+u.GetName(), rules, res, verbs) {
						t.Error(bad)
					}
				}
			}
			for _, u := range ofKind(objs, "Role") {
				for _, bad := range secretWrites("Role "+u.GetName(), typed[rbacv1.Role](t, u).Rules) {
					t.Error(bad)
				}
			}
			// The manager's roles are bound to the ServiceAccount its pod runs as.
			sa := typed[appsv1.Deployment](t, find(objs, "Deployment", deployment)).Spec.Template.Spec.ServiceAccountName
			for _, b := range []struct{ kind, name, role string }{
				{"ClusterRoleBinding", "data-import-manager-rolebinding", "data-import-manager-role"},
				{"ClusterRoleBinding", "data-import-metrics-auth-rolebinding", "data-import-metrics-auth-role"},
				{"RoleBinding", "data-import-leader-election-rolebinding", "data-import-leader-election-role"},
			} {
				u := find(objs, b.kind, b.name)
				if u == nil {
					t.Errorf("%s %s is missing", b.kind, b.name)
					continue
				}
				rb := typed[rbacv1.RoleBinding](t, u) // same shape as a ClusterRoleBinding
				bound := len(rb.Subjects) == 1 && rb.Subjects[0].Kind == "ServiceAccount" &&
					rb.Subjects[0].Name == sa && rb.Subjects[0].Namespace == namespace
				if rb.RoleRef.Name != b.role || !bound {
					t.Errorf("%s %s binds %s to %+v, want %s to ServiceAccount %s/%s", b.kind, b.name, rb.RoleRef.Name, rb.Subjects, b.role, namespace, sa)
				}
				if find(objs, strings.TrimSuffix(b.kind, "Binding"), b.role) == nil {
					t.Errorf("%s %s refers to the missing role %s", b.kind, b.name, b.role)
				}
			}
			// Tenants get S3Sources through the built-in admin, edit and view roles, but only
			// read IngestionQuotas: the viewer role aggregates into view (and view into edit
			// and admin); the quota admin and editor roles aggregate nowhere.
			for _, r := range []struct{ name, aggregate string }{
				{"data-import-s3source-admin-role", "admin"},
				{"data-import-s3source-editor-role", "edit"},
				{"data-import-s3source-viewer-role", "view"},
				{"data-import-ingestionquota-admin-role", ""},
				{"data-import-ingestionquota-editor-role", ""},
				{"data-import-ingestionquota-viewer-role", "view"},
			} {
				u := find(objs, "ClusterRole", r.name)
				if u == nil {
					t.Errorf("ClusterRole %s is missing", r.name)
					continue
				}
				if got := aggregatesTo(u.GetLabels()); !slices.Equal(got, nonEmpty(r.aggregate)) {
					t.Errorf("ClusterRole %s aggregates into %q, want %q", r.name, got, nonEmpty(r.aggregate))
				}
			}
			// No role that reaches a tenant lets it write or delete an IngestionQuota.
			for _, u := range ofKind(objs, "ClusterRole") {
				if len(aggregatesTo(u.GetLabels())) == 0 {
					continue
				}
				for _, bad := range quotaWrites("ClusterRole "+u.GetName(), typed[rbacv1.ClusterRole](t, u).Rules) {
					t.Errorf("%s, and it aggregates into %v", bad, aggregatesTo(u.GetLabels()))
				}
			}
		})
	}
}

// The GitOps examples point at directories of this repository that render: kustomizations
// with kubectl kustomize, the chart with helm template and the values files they name.
func TestGitOpsExamplesReferToThisRepo(t *testing.T) {
	for _, file := range []string{"config/argocd/application.yaml", "config/argocd/application-helm.yaml", "config/flux/operator.yaml", "config/flux/helmrelease.yaml"} {
		data, err := os.ReadFile(repoPath(t, file))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeDocs(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		found := 0
		for _, o := range objs {
			for _, field := range [][]string{{"spec", "source", "path"}, {"spec", "path"}, {"spec", "chart", "spec", "chart"}} {
				path, _, _ := unstructured.NestedString(o.Object, field...)
				repo, _, _ := unstructured.NestedString(o.Object, "spec", "source", "repoURL")
				ref, _, _ := unstructured.NestedString(o.Object, "spec", "sourceRef", "name")
				if ref == "" {
					ref, _, _ = unstructured.NestedString(o.Object, "spec", "chart", "spec", "sourceRef", "name")
				}
				if path == "" || (repo != "" && !strings.Contains(repo, "avon-ai/data-import-operator")) || (ref != "" && ref != "data-import-operator") {
					continue
				}
				found++
				dir := strings.TrimPrefix(path, "./")
				if _, err := os.Stat(repoPath(t, dir+"/Chart.yaml")); err != nil {
					renderYAML(t, dir)
					continue
				}
				// Argo CD's valueFiles are relative to the chart, Flux's valuesFiles to the source.
				var args []string
				argo, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "source", "helm", "valueFiles")
				for _, v := range argo {
					args = append(args, "-f", repoPath(t, dir+"/"+v))
				}
				flux, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "chart", "spec", "valuesFiles")
				for _, v := range flux {
					args = append(args, "-f", repoPath(t, strings.TrimPrefix(v, "./")))
				}
				if _, err := runTool(helm(t), append([]string{"template", "data-import", repoPath(t, dir), "--namespace", namespace}, args...)...); err != nil {
					t.Errorf("%s: rendering %s: %v", file, dir, err)
				}
			}
		}
		if found == 0 {
			t.Errorf("%s refers to no directory of this repository", file)
		}
	}
}

var (
	managerFlagsOnce sync.Once
	managerFlagsMap  map[string]string
	managerFlagsErr  error
)

// managerFlags builds the real manager and reads its flags and their defaults from -h
// ("" when a flag shows no default).
func managerFlags(t *testing.T) map[string]string {
	t.Helper()
	managerFlagsOnce.Do(func() {
		bin := filepath.Join(os.TempDir(), fmt.Sprintf("config-test-manager-%d", os.Getpid()))
		defer os.Remove(bin)
		build := exec.Command("go", "build", "-o", bin, "./cmd")
		build.Dir = repoPath(t, ".")
		if out, err := build.CombinedOutput(); err != nil {
			managerFlagsErr = fmt.Errorf("building the manager: %w\n%s", err, out)
			return
		}
		// -h prints the flags and exits 2 (flag.ErrHelp); the output is what matters.
		help, _ := exec.Command(bin, "-h").CombinedOutput()
		managerFlagsMap = map[string]string{}
		entry := regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)[^\n]*\n((?:\s{4,}\t?[^\n]*\n?)*)`)
		def := regexp.MustCompile(`\(default ("?)(.*?)"?\)\s*$`)
		for _, m := range entry.FindAllStringSubmatch(string(help), -1) {
			value := ""
			if d := def.FindStringSubmatch(strings.TrimSpace(m[2])); d != nil {
				value = d[2]
			}
			managerFlagsMap[m[1]] = value
		}
		if _, ok := managerFlagsMap["data-dir"]; !ok {
			managerFlagsErr = fmt.Errorf("could not read the manager's flags from -h:\n%s", help)
		}
	})
	if managerFlagsErr != nil {
		t.Fatal(managerFlagsErr)
	}
	return managerFlagsMap
}

// Every flag the Deployments pass is one the manager defines: a typo would crash-loop the pod.
func TestManagerArgsAreManagerFlags(t *testing.T) {
	t.Parallel()
	flags := managerFlags(t)
	for _, dir := range []string{"config/default", "config/overlays/postgres", "config/overlays/metrics-tls"} {
		d := typed[appsv1.Deployment](t, find(render(t, dir), "Deployment", deployment))
		for _, arg := range d.Spec.Template.Spec.Containers[0].Args {
			name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
			if _, ok := flags[name]; !strings.HasPrefix(arg, "-") || !ok {
				t.Errorf("%s passes %q, which is not a manager flag", dir, arg)
			}
		}
	}
}

// The spool volume holds the downloads in flight: --concurrent-files × 2 (a ZIP archive's
// copy) × --max-file-size, as the Deployment passes them or as the manager defaults them,
// fits the sizeLimit of the emptyDir mounted at --spool-dir. Over it, the kubelet evicts
// the pod mid-run (the manager's own startup check sees the node's free space, not the
// sizeLimit).
func TestSpoolVolumeFitsDownloads(t *testing.T) {
	flags := managerFlags(t)
	for _, dir := range []string{"config/default", "config/overlays/postgres"} {
		t.Run(dir, func(t *testing.T) {
			d := typed[appsv1.Deployment](t, find(render(t, dir), "Deployment", deployment))
			pod := d.Spec.Template.Spec
			c := pod.Containers[0]
			value := func(name string) string {
				for _, arg := range c.Args {
					if v, ok := strings.CutPrefix(arg, "--"+name+"="); ok {
						return v
					}
				}
				return flags[name]
			}
			files, err := strconv.Atoi(value("concurrent-files"))
			if err != nil {
				t.Fatalf("--concurrent-files: %v", err)
			}
			maxFile, err := resource.ParseQuantity(value("max-file-size"))
			if err != nil {
				t.Fatalf("--max-file-size: %v", err)
			}
			spool := value("spool-dir")
			vol := mountOf(pod, c, spool)
			if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.SizeLimit == nil {
				t.Fatalf("--spool-dir %s is not an emptyDir with a sizeLimit: %+v", spool, vol)
			}
			need := int64(files) * controllers.SpoolCopiesPerDownload * maxFile.Value()
			if limit := vol.EmptyDir.SizeLimit; need > limit.Value() {
				t.Errorf("%d downloads × %d copies × --max-file-size %s = %d bytes do not fit the %s sizeLimit of %s",
					files, controllers.SpoolCopiesPerDownload, maxFile.String(), need, limit.String(), spool)
			}
			if maxFile.Value() < quantityValue(t, v1.DefaultMaxFileSize) {
				t.Errorf("--max-file-size %s is below the documented default maxFileSize %s: sources without a quota would be capped", maxFile.String(), v1.DefaultMaxFileSize)
			}
		})
	}
}

func quantityValue(t *testing.T, s string) int64 {
	t.Helper()
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatal(err)
	}
	return q.Value()
}
