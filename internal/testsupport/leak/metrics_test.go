package leak

import (
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricTexts(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dataimport_test", Help: "A test gauge."}, []string{"namespace", "reason"})
	reg.MustRegister(g)
	g.WithLabelValues("ns", "AccessDenied").Set(1)
	// A label value with a quote, as a leaked secret might have: not hidden by escaping.
	g.WithLabelValues("ns", `x"`+secretKey).Set(1)

	texts, err := MetricTexts(reg)
	if err != nil {
		t.Fatal(err)
	}
	want := []Text{
		{"metric dataimport_test series 0", `dataimport_test{namespace="ns",reason="AccessDenied"} # A test gauge.`},
		{"metric dataimport_test series 1", `dataimport_test{namespace="ns",reason="x"` + secretKey + `"} # A test gauge.`},
	}
	if !reflect.DeepEqual(texts, want) {
		t.Fatalf("texts = %q\nwant %q", texts, want)
	}
	got := NewScanner(Secret{Name: "k", Value: secretKey}).Scan(texts...)
	if len(got) != 1 || got[0].Text != "metric dataimport_test series 1" || got[0].Kind != "k" {
		t.Errorf("findings = %v", got)
	}
}
