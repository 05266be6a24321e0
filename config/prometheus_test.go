package config_test

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
)

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func readRules(t *testing.T) []alertRule {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "config/prometheus/rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(data, &pr); err != nil {
		t.Fatalf("config/prometheus/rules.yaml: %v", err)
	}
	var rules []alertRule
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	if pr.Kind != "PrometheusRule" || len(rules) == 0 {
		t.Fatalf("config/prometheus/rules.yaml: a %s with %d rules, want a PrometheusRule with alerts", pr.Kind, len(rules))
	}
	return rules
}

// exportedMetrics builds the manager's collectors on a fresh registry, gives every vector a
// child so it gathers, and returns each series name with its label names. Histograms are
// listed under their _bucket, _sum and _count series.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := controllers.NewMetrics(reg)
	fields := reflect.ValueOf(m).Elem()
	for i := range fields.NumField() {
		touch(t, fields.Type().Field(i).Name, fields.Field(i).Interface())
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != fields.NumField() {
		t.Fatalf("gathered %d metric families from %d collectors: a collector was not touched", len(families), fields.NumField())
	}
	out := map[string][]string{}
	for _, f := range families {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		if f.GetType().String() == "HISTOGRAM" {
			out[f.GetName()+"_bucket"] = append(slices.Clone(labels), "le")
			out[f.GetName()+"_sum"] = labels
			out[f.GetName()+"_count"] = labels
			continue
		}
		out[f.GetName()] = labels
	}
	return out
}

// touch creates one child of a metric vector, trying label counts until the vector accepts
// one (GetMetricWithLabelValues reports a wrong count as an error, it does not panic).
func touch(t *testing.T, field string, collector any) {
	t.Helper()
	for n := range 8 {
		vals := slices.Repeat([]string{"x"}, n)
		var err error
		switch v := collector.(type) {
		case *prometheus.CounterVec:
			var c prometheus.Counter
			if c, err = v.GetMetricWithLabelValues(vals...); err == nil {
				c.Inc()
			}
		case *prometheus.GaugeVec:
			var g prometheus.Gauge
			if g, err = v.GetMetricWithLabelValues(vals...); err == nil {
				g.Set(1)
			}
		case *prometheus.HistogramVec:
			var o prometheus.Observer
			if o, err = v.GetMetricWithLabelValues(vals...); err == nil {
				o.Observe(1)
			}
		default:
			t.Fatalf("Metrics.%s is a %T; teach this test to touch it", field, collector)
		}
		if err == nil {
			return
		}
	}
	t.Fatalf("Metrics.%s accepted no label count up to 8", field)
}

// The alerts only use metrics and labels the manager exports: a renamed metric or label
// would otherwise silently turn an alert into one that never fires.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	for _, r := range readRules(t) {
		t.Run(r.Alert, func(t *testing.T) {
			expr, err := parser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("expr does not parse: %v\n%s", err, r.Expr)
			}
			used := map[string]bool{} // labels the expression's series carry
			for _, problem := range checkExpr(expr, exported, used) {
				t.Error(problem)
			}
			if len(used) == 0 {
				t.Errorf("expr uses no dataimport_* metric: %s", r.Expr)
			}
			reported := map[string]bool{}
			for _, m := range regexp.MustCompile(`\$labels\.(\w+)`).FindAllStringSubmatch(r.Annotations["summary"]+r.Annotations["description"], -1) {
				if !used[m[1]] && !reported[m[1]] {
					reported[m[1]] = true
					t.Errorf("annotations use $labels.%s, which no series of the expression has", m[1])
				}
			}
		})
	}
}

// checkExpr reports metric names, matchers and grouping labels of node that the manager
// does not export, and records in used the labels of the series node yields.
func checkExpr(node parser.Node, exported map[string][]string, used map[string]bool) []string {
	var problems []string
	switch n := node.(type) {
	case *parser.VectorSelector:
		labels, ok := exported[n.Name]
		if !ok {
			return []string{fmt.Sprintf("metric %q is not exported by the manager (exported: %v)", n.Name, keys(exported))}
		}
		for _, l := range labels {
			used[l] = true
		}
		for _, m := range n.LabelMatchers {
			if m.Name != "__name__" && !slices.Contains(labels, m.Name) {
				problems = append(problems, fmt.Sprintf("%s has no label %q (labels: %v)", n.Name, m.Name, labels))
			}
		}
		return problems
	case *parser.AggregateExpr:
		sub := map[string]bool{}
		problems = checkExpr(n.Expr, exported, sub)
		if !n.Without {
			for _, g := range n.Grouping {
				if !sub[g] {
					problems = append(problems, fmt.Sprintf("%s groups by %q, which its series do not have", n.Op, g))
				}
			}
			// After "by", only the grouping labels survive.
			clear(sub)
			for _, g := range n.Grouping {
				sub[g] = true
			}
		}
		for l := range sub {
			used[l] = true
		}
		return problems
	}
	for _, child := range parser.Children(node) {
		problems = append(problems, checkExpr(child, exported, used)...)
	}
	return problems
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Each alert carries a severity, a summary and a runbook that names a condition reason the
// operator really sets, so whoever is paged knows what to look at.
func TestAlertRulesAreActionable(t *testing.T) {
	reasons := []string{v1.ReasonAccessDenied, v1.ReasonNoSuchBucket, v1.ReasonInvalidCredentials, v1.ReasonSecretNotFound,
		v1.ReasonEndpointUnreachable, v1.ReasonThrottled, v1.ReasonTimeout, v1.ReasonFilesFailed, v1.ReasonQuotaExceeded, v1.ReasonStoreError}
	for _, r := range readRules(t) {
		t.Run(r.Alert, func(t *testing.T) {
			if !strings.HasPrefix(r.Alert, "DataImport") {
				t.Errorf("alert %q: name it DataImport...", r.Alert)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("severity %q, want critical, warning or info", r.Labels["severity"])
			}
			desc := r.Annotations["description"]
			if r.Annotations["summary"] == "" || !strings.Contains(desc, "Runbook:") {
				t.Errorf("want a summary and a description with a Runbook: line, got %v", r.Annotations)
			}
			if !slices.ContainsFunc(reasons, func(reason string) bool { return strings.Contains(desc, reason) }) {
				t.Errorf("the description names none of the condition reasons %v", reasons)
			}
		})
	}
}

// checkMonitorAuth checks a ServiceMonitor's one endpoint: a bearer token from a Secret
// (authorization, not the deprecated bearerTokenFile or bearerTokenSecret) whose token may
// GET /metrics when the Secret is rendered alongside, and TLS verified with the CA in caSecret
// for serverName (no insecureSkipVerify).
func checkMonitorAuth(t *testing.T, mon *unstructured.Unstructured, objs []*unstructured.Unstructured, caSecret, serverName string) {
	t.Helper()
	endpoints, _, _ := unstructured.NestedSlice(mon.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor has %d endpoints, want 1", len(endpoints))
	}
	ep, _ := endpoints[0].(map[string]any)
	for _, deprecated := range []string{"bearerTokenFile", "bearerTokenSecret"} {
		if ep[deprecated] != nil {
			t.Errorf("ServiceMonitor endpoint uses the deprecated %s", deprecated)
		}
	}
	authType, _, _ := unstructured.NestedString(ep, "authorization", "type")
	tokenSecret, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
	tokenKey, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "key")
	if authType != "Bearer" || tokenSecret == "" || tokenKey == "" {
		t.Errorf("ServiceMonitor authorization %v: want type Bearer with credentials from a Secret", ep["authorization"])
	}
	if s := find(objs, "Secret", tokenSecret); s != nil {
		sec := typed[corev1.Secret](t, s)
		sa := sec.Annotations[corev1.ServiceAccountNameKey]
		if sec.Type != corev1.SecretTypeServiceAccountToken || tokenKey != corev1.ServiceAccountTokenKey || sa == "" {
			t.Errorf("Secret %s is a %s for %q with key %q: want a ServiceAccount token", tokenSecret, sec.Type, sa, tokenKey)
		}
		bound := false
		for _, b := range ofKind(objs, "ClusterRoleBinding") {
			rb := typed[rbacv1.ClusterRoleBinding](t, b)
			if strings.HasSuffix(rb.RoleRef.Name, "metrics-reader") && slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool {
				return s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == mon.GetNamespace()
			}) {
				bound = true
			}
		}
		if !bound {
			t.Errorf("ServiceAccount %s (the scrape token's) is not bound to the metrics-reader ClusterRole", sa)
		}
	}
	tls, _, _ := unstructured.NestedMap(ep, "tlsConfig")
	ca, _, _ := unstructured.NestedString(tls, "ca", "secret", "name")
	caKey, _, _ := unstructured.NestedString(tls, "ca", "secret", "key")
	if skip, _ := tls["insecureSkipVerify"].(bool); skip || ca != caSecret || caKey == "" || tls["serverName"] != serverName {
		t.Errorf("ServiceMonitor tlsConfig %v: want the CA from Secret %s and serverName %s, verified", tls, caSecret, serverName)
	}
}
