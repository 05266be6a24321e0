package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads a Prometheus text endpoint with client (which carries any auth).
func scrape(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// sumBy sums a counter or gauge family by the values of labels (joined with " "),
// keeping only series whose labels match keep.
func sumBy(fams map[string]*dto.MetricFamily, name string, keep map[string]string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
series:
	for _, m := range f.GetMetric() {
		values := map[string]string{}
		for _, l := range m.GetLabel() {
			values[l.GetName()] = l.GetValue()
		}
		for k, v := range keep {
			if values[k] != v {
				continue series
			}
		}
		var parts []string
		for _, l := range labels {
			parts = append(parts, values[l])
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		out[strings.Join(parts, " ")] += v
	}
	return out
}

// value is one series' value (the sum of a family filtered by keep).
func value(fams map[string]*dto.MetricFamily, name string, keep map[string]string) float64 {
	return sumBy(fams, name, keep)[""]
}

// histogram is a cumulative histogram's buckets, for differences between two scrapes.
type histogram struct {
	bounds []float64
	counts []float64
	total  float64
}

func histogramOf(fams map[string]*dto.MetricFamily, name string) histogram {
	var h histogram
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return h
	}
	m := f.GetMetric()[0].GetHistogram()
	for _, b := range m.GetBucket() {
		h.bounds = append(h.bounds, b.GetUpperBound())
		h.counts = append(h.counts, float64(b.GetCumulativeCount()))
	}
	h.total = float64(m.GetSampleCount())
	return h
}

func (h histogram) minus(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), total: h.total - o.total}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

func (h histogram) plus(o histogram) histogram {
	if h.bounds == nil {
		return o
	}
	out := histogram{bounds: h.bounds, counts: append([]float64(nil), h.counts...), total: h.total + o.total}
	for i := range out.counts {
		if i < len(o.counts) {
			out.counts[i] += o.counts[i]
		}
	}
	return out
}

// histogramCount is the number of observations of every series of a histogram family.
func histogramCount(fams map[string]*dto.MetricFamily, name string) float64 {
	n := 0.0
	if f := fams[name]; f != nil {
		for _, m := range f.GetMetric() {
			n += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return n
}

// quantile is the upper bound of the bucket holding quantile q (what a histogram can say).
func (h histogram) quantile(q float64) float64 {
	if h.total == 0 {
		return 0
	}
	rank := q * h.total
	for i, c := range h.counts {
		if c >= rank {
			return h.bounds[i]
		}
	}
	return math.Inf(1)
}

// procStats are a process's resource figures from /proc.
type procStats struct {
	pid                    int
	rssBytes, peakRSSBytes int64
	cpuSeconds             float64
	fds                    int
}

func readProc(pid int) (procStats, error) {
	st := procStats{pid: pid}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			st.rssBytes = kb * 1024
		case "VmHWM:":
			st.peakRSSBytes = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(rest) > 12 {
		utime, _ := strconv.ParseFloat(rest[11], 64)
		stime, _ := strconv.ParseFloat(rest[12], 64)
		st.cpuSeconds = (utime + stime) / 100 // USER_HZ is 100 on Linux
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err == nil {
		st.fds = len(fds)
	}
	return st, nil
}

// percentile of sorted-on-demand durations in seconds.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
