package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/diff"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

// The chart, and the release that gives it config/default's names (data-import-...).
const (
	chartDir = "charts/data-import-operator"
	release  = "data-import"
)

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helm returns the Helm CLI that hack/helm.sh builds (or finds cached).
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() { helmPath, helmErr = testsupport.HackScript("helm.sh") })
	if helmErr != nil {
		t.Fatalf("building helm: %v", helmErr)
	}
	return helmPath
}

// helmTemplate renders the chart as `helm install data-import -n data-import-system` would,
// CRDs included, with extra arguments (-f, --set).
func helmTemplate(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	base := []string{"template", release, repoPath(t, chartDir), "--namespace", namespace, "--include-crds"}
	return runTool(helm(t), append(base, args...)...)
}

func renderChart(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	key := "helm " + strings.Join(args, " ")
	renderMu.Lock()
	out, ok := renderCache[key]
	renderMu.Unlock()
	if !ok {
		var err error
		if out, err = helmTemplate(t, args...); err != nil {
			t.Fatalf("rendering the chart: %v", err)
		}
		renderMu.Lock()
		renderCache[key] = out
		renderMu.Unlock()
	}
	objs, err := decodeDocs(out)
	if err != nil {
		t.Fatalf("the rendered chart: %v", err)
	}
	return objs
}

// kustomizeImage sets the chart's image to the one the kustomization renders (by tag or
// by digest), so the comparison proves the chart composes the reference the same way.
func kustomizeImage(t *testing.T, dir string) []string {
	t.Helper()
	d := typed[appsv1.Deployment](t, find(render(t, dir), "Deployment", deployment))
	img := d.Spec.Template.Spec.Containers[0].Image
	if repo, digest, ok := strings.Cut(img, "@"); ok {
		return []string{"--set", "image.repository=" + repo, "--set", "image.digest=" + digest}
	}
	i := strings.LastIndex(img, ":")
	if i < 0 || strings.Contains(img[i:], "/") {
		t.Fatalf("%s: image %q has neither a tag nor a digest", dir, img)
	}
	return []string{"--set", "image.repository=" + img[:i], "--set", "image.tag=" + img[i+1:]}
}

// chartVariant is a values file of the chart and the kustomization it must match.
type chartVariant struct {
	dir    string
	values []string
	extra  []string // kinds the chart adds on purpose
}

var chartVariants = []chartVariant{
	{"config/default", nil, nil},
	{"config/overlays/postgres", []string{"-f", chartDir + "/ci/postgres-values.yaml"}, []string{"PodDisruptionBudget"}},
	{"config/overlays/postgres-sharded", []string{"-f", chartDir + "/ci/postgres-sharded-values.yaml"}, nil},
}

// args are the helm template arguments: the values file and the kustomization's image.
func (v chartVariant) args(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, a := range v.values {
		if strings.HasPrefix(a, chartDir) {
			a = repoPath(t, a)
		}
		out = append(out, a)
	}
	return append(out, kustomizeImage(t, v.dir)...)
}

// `helm lint --strict` passes with the default and the PostgreSQL values.
func TestChartLint(t *testing.T) {
	for _, v := range chartVariants {
		args := append([]string{"lint", "--strict", repoPath(t, chartDir)}, v.args(t)...)
		if out, err := runTool(helm(t), args...); err != nil {
			t.Errorf("helm lint %s: %v\n%s", v.values, err, out)
		}
	}
}

// crds/ and files/ are copies of config/ (make chart-sync): the CRDs Helm installs are the
// generated ones, and the chart's roles and alerts are config/rbac's and config/prometheus's.
func TestChartCopiesMatchConfig(t *testing.T) {
	pairs := map[string]string{chartDir + "/files/prometheus/rules.yaml": "config/prometheus/rules.yaml"}
	bases, err := filepath.Glob(repoPath(t, "config/crd/bases/*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("config/crd/bases: %v (%d files)", err, len(bases))
	}
	for _, b := range bases {
		pairs[chartDir+"/crds/"+filepath.Base(b)] = "config/crd/bases/" + filepath.Base(b)
	}
	roles, err := filepath.Glob(repoPath(t, chartDir+"/files/rbac/*.yaml"))
	if err != nil || len(roles) == 0 {
		t.Fatalf("%s/files/rbac: %v (%d files)", chartDir, err, len(roles))
	}
	for _, r := range roles {
		pairs[chartDir+"/files/rbac/"+filepath.Base(r)] = "config/rbac/" + filepath.Base(r)
	}
	crds, _ := filepath.Glob(repoPath(t, chartDir+"/crds/*"))
	if len(crds) != len(bases) {
		t.Errorf("%s/crds has %d files, config/crd/bases %d: run make chart-sync", chartDir, len(crds), len(bases))
	}
	for copyPath, orig := range pairs {
		a, errA := os.ReadFile(repoPath(t, copyPath))
		b, errB := os.ReadFile(repoPath(t, orig))
		if errA != nil || errB != nil {
			t.Errorf("%s vs %s: %v %v", copyPath, orig, errA, errB)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run make chart-sync and commit", copyPath, orig)
		}
	}
}

// The chart installs what the kustomizations install: every object of config/default (and
// of the PostgreSQL overlay with ci/postgres-values.yaml) under the same name, the manager's
// pod spec identical (image, args, env, security contexts, probes, resources, volumes),
// the same RBAC rules, bindings and aggregation labels, the same CRDs. Only the Namespace is
// left out: `helm install --create-namespace` or the admin creates it.
func TestChartMatchesKustomize(t *testing.T) {
	for _, v := range chartVariants {
		t.Run(v.dir, func(t *testing.T) {
			want := render(t, v.dir)
			got := renderChart(t, v.args(t)...)
			for _, w := range want {
				if w.GetKind() == "Namespace" {
					continue
				}
				g := find(got, w.GetKind(), w.GetName())
				if g == nil {
					t.Errorf("the chart renders no %s %s", w.GetKind(), w.GetName())
					continue
				}
				if g.GetNamespace() != w.GetNamespace() {
					t.Errorf("%s %s is in namespace %q, want %q", w.GetKind(), w.GetName(), g.GetNamespace(), w.GetNamespace())
				}
				compareObject(t, w, g)
			}
			for _, g := range got {
				if find(want, g.GetKind(), g.GetName()) == nil && !slices.Contains(v.extra, g.GetKind()) {
					t.Errorf("the chart renders %s %s, which %s does not", g.GetKind(), g.GetName(), v.dir)
				}
			}
		})
	}
}

// compareObject compares what matters of one kind; labels and annotations only where they
// carry meaning (aggregation, pruning).
func compareObject(t *testing.T, want, got *unstructured.Unstructured) {
	t.Helper()
	id := want.GetKind() + " " + want.GetName()
	same := func(what string, w, g any) {
		t.Helper()
		if !equality.Semantic.DeepEqual(w, g) {
			t.Errorf("%s: %s differs from the kustomization's (-kustomize +chart):\n%s", id, what, diff.Diff(w, g))
		}
	}
	switch want.GetKind() {
	case "Deployment":
		w, g := typed[appsv1.Deployment](t, want), typed[appsv1.Deployment](t, got)
		same("replicas", w.Spec.Replicas, g.Spec.Replicas)
		same("strategy", w.Spec.Strategy, g.Spec.Strategy)
		same("selector", w.Spec.Selector, g.Spec.Selector)
		same("pod spec", w.Spec.Template.Spec, g.Spec.Template.Spec)
		same("pod annotations", w.Spec.Template.Annotations, g.Spec.Template.Annotations)
		for k, v := range w.Spec.Template.Labels {
			if g.Spec.Template.Labels[k] != v {
				t.Errorf("%s: pod label %s=%s is missing (chart: %v)", id, k, v, g.Spec.Template.Labels)
			}
		}
	case "ClusterRole", "Role":
		w, g := typed[rbacv1.ClusterRole](t, want), typed[rbacv1.ClusterRole](t, got)
		same("rules", w.Rules, g.Rules)
		same("aggregation", aggregatesTo(w.Labels), aggregatesTo(g.Labels))
	case "ClusterRoleBinding", "RoleBinding":
		w, g := typed[rbacv1.RoleBinding](t, want), typed[rbacv1.RoleBinding](t, got)
		same("roleRef", w.RoleRef, g.RoleRef)
		same("subjects", w.Subjects, g.Subjects)
	case "CustomResourceDefinition":
		w, g := typed[apiextensionsv1.CustomResourceDefinition](t, want), typed[apiextensionsv1.CustomResourceDefinition](t, got)
		same("spec", w.Spec, g.Spec)
		same("annotations", w.Annotations, g.Annotations)
	case "ServiceAccount":
		typed[corev1.ServiceAccount](t, got)
	case "Service":
		w, g := typed[corev1.Service](t, want), typed[corev1.Service](t, got)
		same("ports", w.Spec.Ports, g.Spec.Ports)
		same("selector", w.Spec.Selector, g.Spec.Selector)
	case "PersistentVolumeClaim":
		w, g := typed[corev1.PersistentVolumeClaim](t, want), typed[corev1.PersistentVolumeClaim](t, got)
		same("spec", w.Spec, g.Spec)
	case "PodDisruptionBudget":
		w, g := typed[policyv1.PodDisruptionBudget](t, want), typed[policyv1.PodDisruptionBudget](t, got)
		same("spec", w.Spec, g.Spec)
	default:
		t.Errorf("%s: teach compareObject what matters of a %s", id, want.GetKind())
	}
}

// The chart refuses values that would corrupt the store or hang a drain, with a message
// that says what to do, and (values.schema.json) keys it does not know.
func TestChartRefusesUnsafeValues(t *testing.T) {
	tests := []struct {
		name    string
		set     []string
		wantErr string
	}{
		{"two replicas on SQLite", []string{"replicaCount=2"}, "use store.type postgres for more replicas"},
		{"replicas without leader election", []string{"store.type=postgres", "replicaCount=2", "leaderElection.enabled=false"}, "needs leaderElection.enabled"},
		// values.schema.json: misspelt keys and unknown values are refused before any template runs.
		{"unknown store", []string{"store.type=mysql"}, "value must be one of 'sqlite', 'postgres'"},
		{"misspelt key", []string{"store.typ=postgres"}, "additional properties 'typ' not allowed"},
		{"misspelt flag value", []string{"extraArgs[0]=leader-elect"}, "/extraArgs/0"},
		{"PDB on the single SQLite replica", []string{"podDisruptionBudget.enabled=true"}, "a node drain would hang"},
		{"ServiceMonitor that cannot verify TLS", []string{"metrics.secure=true", "metrics.serviceMonitor.enabled=true"}, "needs the serving CA to verify"},
		{"sharding on SQLite", []string{"sharding.shards=32"}, "sharding.shards needs store.type postgres"},
		{"PDB as large as the replicas", []string{"store.type=postgres", "replicaCount=1", "podDisruptionBudget.enabled=true"}, "no replica could ever be evicted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			_, err := helmTemplate(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("helm template --set %v: got %v, want an error containing %q", tt.set, err, tt.wantErr)
			}
		})
	}
}

// everythingValues turns on every optional object and passes every manager flag the chart
// has a value for.
var everythingValues = []string{
	"--set", "metrics.serviceMonitor.enabled=true",
	"--set", "metrics.prometheusRule.enabled=true",
	"--set", "metrics.certSecret=data-import-metrics-cert",
	"--set", "networkPolicy.enabled=true",
	"--set", "limits.concurrentSources=8",
	"--set", "limits.filesPerSource=3",
	"--set", "limits.maxFileAttempts=5",
	"--set", "network.allowedEndpoints=https://*.s3.storage.example\\,http://10.96.12.34:9000",
	"--set", "network.operatorIdentityEndpoints=https://s3.storage.example",
	"--set", "network.allowedCIDRs=10.96.12.34/32",
	"--set", "network.deniedCIDRs=10.0.0.0/8",
	"--set", "identity.operatorIdentityNamespaceSelector=dataimport.avon.ai/operator-identity in (allowed)",
	"--set", "identity.stsEndpoint=https://sts.storage.example",
	"--set", "identity.stsAudience=sts.storage.example",
	"--set", "extraArgs[0]=--zap-log-level=debug",
	"--set", "receiver.snsConfirmHosts=sns.eu-west-1.amazonaws.com",
}

// With every option on, each argument is a manager flag (a typo would crash-loop the pod),
// the optional objects render as their types, and the ServiceMonitor verifies the serving
// certificate with its CA and authorizes with a token Secret (not the deprecated
// bearerTokenFile).
func TestChartOptions(t *testing.T) {
	objs := renderChart(t, everythingValues...)
	flags := managerFlags(t)
	d := typed[appsv1.Deployment](t, find(objs, "Deployment", deployment))
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, arg := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if _, ok := flags[name]; !strings.HasPrefix(arg, "-") || !ok {
			t.Errorf("the chart passes %q, which is not a manager flag", arg)
		}
	}
	for _, want := range []string{"--concurrent-sources=8", "--files-per-source=3", "--allowed-endpoints=https://*.s3.storage.example,http://10.96.12.34:9000",
		"--operator-identity-endpoints=https://s3.storage.example", "--allowed-cidrs=10.96.12.34/32", "--denied-cidrs=10.0.0.0/8",
		"--operator-identity-namespace-selector=dataimport.avon.ai/operator-identity in (allowed)", "--sts-endpoint=https://sts.storage.example",
		"--sts-audience=sts.storage.example", "--zap-log-level=debug", "--metrics-cert-dir=/etc/data-import/metrics-certs",
		"--receiver-bind-address=:9292", "--receiver-sns-confirm-hosts=sns.eu-west-1.amazonaws.com"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	np := find(objs, "NetworkPolicy", "data-import-controller-manager")
	if np == nil {
		t.Fatal("NetworkPolicy is missing")
	}
	policy := typed[networkingv1.NetworkPolicy](t, np)
	for k, v := range policy.Spec.PodSelector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("NetworkPolicy selects %s=%s, not on the manager's pod %v", k, v, d.Spec.Template.Labels)
		}
	}
	mon := find(objs, "ServiceMonitor", "data-import-controller-manager-metrics-monitor")
	if mon == nil {
		t.Fatal("ServiceMonitor is missing")
	}
	checkMonitorAuth(t, mon, objs, "data-import-metrics-cert", "data-import-controller-manager-metrics-service.data-import-system.svc")
	if find(objs, "PrometheusRule", "data-import-alerts") == nil {
		t.Error("PrometheusRule data-import-alerts is missing")
	}

	// With cert-manager the chart issues the certificate itself, for the Service's name.
	cm := renderChart(t, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.certManager.enabled=true")
	serverName := "data-import-controller-manager-metrics-service.data-import-system.svc"
	checkMonitorAuth(t, find(cm, "ServiceMonitor", "data-import-controller-manager-metrics-monitor"), cm, "data-import-metrics-server-cert", serverName)
	cert := find(cm, "Certificate", "data-import-metrics-server-cert")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if cert == nil || !slices.Contains(dnsNames, serverName) || find(cm, "Issuer", "data-import-selfsigned") == nil {
		t.Errorf("metrics.certManager.enabled: Certificate for %v (want %s) or its Issuer is missing", dnsNames, serverName)
	}
	cd := typed[appsv1.Deployment](t, find(cm, "Deployment", deployment))
	if vol := mountOf(cd.Spec.Template.Spec, cd.Spec.Template.Spec.Containers[0], "/etc/data-import/metrics-certs"); vol == nil || vol.Secret == nil ||
		vol.Secret.SecretName != "data-import-metrics-server-cert" || !slices.Contains(cd.Spec.Template.Spec.Containers[0].Args, "--metrics-cert-dir=/etc/data-import/metrics-certs") {
		t.Errorf("metrics.certManager.enabled: the manager does not serve the certificate's Secret: %+v", vol)
	}

	// Without the receiver the manager listens on no webhook port and no Service exposes one.
	off := renderChart(t, "--set", "receiver.enabled=false")
	od := typed[appsv1.Deployment](t, find(off, "Deployment", deployment))
	if !slices.Contains(od.Spec.Template.Spec.Containers[0].Args, "--receiver-bind-address=0") || find(off, "Service", "data-import-controller-manager-webhook-receiver") != nil {
		t.Errorf("receiver.enabled=false: args %q, or the receiver Service is still rendered", od.Spec.Template.Spec.Containers[0].Args)
	}

	// Sharded with receiverFrom set, the replicas may still reach each other's receiver:
	// each hands the others the events of the sources they serve, at its POD_IP.
	sharded := renderChart(t, "-f", repoPath(t, chartDir+"/ci/postgres-sharded-values.yaml"), "--set", "networkPolicy.enabled=true",
		"--set-string", "networkPolicy.receiverFrom[0].namespaceSelector.matchLabels.ingress=true")
	sd := typed[appsv1.Deployment](t, find(sharded, "Deployment", deployment))
	if !slices.ContainsFunc(sd.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
	}) {
		t.Error("sharded: the manager gets no POD_IP from the downward API to publish its receiver's address")
	}
	snp := typed[networkingv1.NetworkPolicy](t, find(sharded, "NetworkPolicy", "data-import-controller-manager"))
	peers := false
	for _, rule := range snp.Spec.Ingress {
		if len(rule.Ports) != 1 || rule.Ports[0].Port.IntValue() != 9292 {
			continue
		}
		for _, from := range rule.From {
			if from.PodSelector != nil && from.NamespaceSelector == nil && equality.Semantic.DeepEqual(from.PodSelector.MatchLabels, sd.Spec.Selector.MatchLabels) {
				peers = true
			}
		}
		if len(rule.From) != 2 {
			t.Errorf("sharded: the receiver's ingress rule lets in %+v; want receiverFrom and the replicas", rule.From)
		}
	}
	if !peers {
		t.Errorf("sharded with receiverFrom: the NetworkPolicy does not let the replicas reach each other's receiver: %+v", snp.Spec.Ingress)
	}

	pg := renderChart(t, "-f", repoPath(t, chartDir+"/ci/postgres-values.yaml"))
	pdb := find(pg, "PodDisruptionBudget", "data-import-controller-manager")
	if pdb == nil {
		t.Fatal("PodDisruptionBudget is missing with the PostgreSQL values")
	}
	typed[policyv1.PodDisruptionBudget](t, pdb)
}

// pruneProtection are the annotations that make Argo CD and Flux leave an object in place
// when the Application or Kustomization that applied it is deleted or stops listing it.
var pruneProtection = map[string]string{
	"argocd.argoproj.io/sync-options":   "Prune=false,Delete=false",
	"kustomize.toolkit.fluxcd.io/prune": "disabled",
}

// Removing the operator's Argo CD Application or Flux Kustomization (both prune) must not
// delete the CRDs, and with them every tenant's S3Sources: every way of installing them
// carries both annotations.
func TestCRDsSurvivePruning(t *testing.T) {
	renders := map[string][]*unstructured.Unstructured{
		"config/crd":               render(t, "config/crd"),
		"config/default":           render(t, "config/default"),
		"config/overlays/postgres": render(t, "config/overlays/postgres"),
		"the chart":                renderChart(t),
	}
	for name, objs := range renders {
		crds := ofKind(objs, "CustomResourceDefinition")
		if len(crds) != 2 {
			t.Errorf("%s renders %d CRDs, want 2", name, len(crds))
		}
		for _, crd := range crds {
			for k, v := range pruneProtection {
				if got := crd.GetAnnotations()[k]; got != v {
					t.Errorf("%s: CRD %s has %s=%q, want %q", name, crd.GetName(), k, got, v)
				}
			}
		}
		// Nothing else is protected: removing the operator must remove the operator.
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" && o.GetAnnotations()["argocd.argoproj.io/sync-options"] != "" {
				t.Errorf("%s: %s %s is protected from pruning too", name, o.GetKind(), o.GetName())
			}
		}
	}
}
