package leak

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// MetricTexts gathers g and returns one text per series, rendered like the text exposition
// format (name{label="value",...} # help) but with label values unescaped, so a secret
// cannot hide behind escaping. The text's name is the family and the series' index, not
// its labels: a label value could be the leak.
func MetricTexts(g prometheus.Gatherer) ([]Text, error) {
	families, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	var out []Text
	for _, f := range families {
		for i, m := range f.GetMetric() {
			out = append(out, Text{
				Name: fmt.Sprintf("metric %s series %d", f.GetName(), i),
				Body: series(f, m),
			})
		}
	}
	return out, nil
}

func series(f *dto.MetricFamily, m *dto.Metric) string {
	var b strings.Builder
	b.WriteString(f.GetName())
	b.WriteString("{")
	for i, l := range m.GetLabel() {
		if i > 0 {
			b.WriteString(",")
		}
		// Unquoted and unescaped: the value exactly as the operator set it.
		fmt.Fprintf(&b, `%s="%s"`, l.GetName(), l.GetValue())
	}
	b.WriteString("} # " + f.GetHelp())
	return b.String()
}
