package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// The scrape grows with the number of sources by a few series each, not by a histogram
// each: at 10,000 sources it was 250,000 lines (21 MB), 100,000 of them the discovery
// duration buckets.
func TestMetricSeriesPerSource(t *testing.T) {
	series := func(sources int) int {
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		start := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
		for i := range sources {
			src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("s%05d", i)}}
			m.observeRun(src, &discovery.Result{Started: start, Finished: start.Add(time.Second), Listed: 3, Ingested: 3,
				Downloaded: 3, BytesDownloaded: 300, Conversations: store.RecordCounts{New: 3}})
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range families {
			for _, s := range f.GetMetric() {
				n++
				if h := s.GetHistogram(); h != nil {
					n += len(h.GetBucket()) + 1 // _bucket lines, +Inf, _sum and _count
				}
			}
		}
		return n
	}
	small, large := series(10), series(1010)
	perSource := float64(large-small) / 1000
	if perSource > 10 {
		t.Errorf("%.1f series per source (10 sources: %d, 1,010: %d); want at most 10", perSource, small, large)
	}
	t.Logf("%.1f series per source", perSource)
}
