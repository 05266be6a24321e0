package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

type report struct {
	Sources        int `json:"sources"`
	FilesPerSource int `json:"filesPerSource"`

	CreateSeconds      float64     `json:"createSeconds"`
	ConvergenceSeconds float64     `json:"convergenceSeconds"`
	Convergence        phaseReport `json:"convergence"`

	IdleSeconds      float64     `json:"idleSeconds"`
	Idle             phaseReport `json:"idle"`
	AtRestFDs        int         `json:"atRestFDs"`
	AtRestGoroutines float64     `json:"atRestGoroutines"`
	AtRestRSSMiB     float64     `json:"atRestRSSMiB"`

	RefreshIdle       latency     `json:"refreshIdle"`
	RefreshLoad       latency     `json:"refreshUnderLoad"`
	RefreshAllSeconds float64     `json:"refreshAllSeconds"`
	Refreshes         phaseReport `json:"refreshes"`

	RestartSettleSeconds  float64     `json:"restartSettleSeconds"`
	Restart               phaseReport `json:"restart"`
	DownloadsAfterRestart int64       `json:"downloadsAfterRestart"`

	PeakRSSMiB float64        `json:"peakRSSMiB"`
	Events     map[string]int `json:"events"`
}

type phaseReport struct {
	Seconds           float64            `json:"seconds"`
	ManagerCPUSeconds float64            `json:"managerCPUSeconds"`
	API               map[string]float64 `json:"apiRequests"` // "VERB resource"
	S3                map[string]float64 `json:"s3Requests"`  // by MinIO api name
	StatusLagP50      float64            `json:"statusLagP50Seconds"`
	StatusLagP99      float64            `json:"statusLagP99Seconds"`
	StatusLagCount    float64            `json:"statusLagSamples"`
}

type latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Seconds"`
	P99 float64 `json:"p99Seconds"`
	Max float64 `json:"maxSeconds"`
}

func latencyOf(secs []float64) latency {
	return latency{N: len(secs), P50: percentile(secs, 0.5), P99: percentile(secs, 0.99), Max: percentile(secs, 1)}
}

func (r *report) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("scale benchmark: %d sources × %d files (real manager binary, envtest, MinIO, SQLite)", r.Sources, r.FilesPerSource)
	p("")
	p("convergence        %.1f s (creating the sources took %.1f s)", r.ConvergenceSeconds, r.CreateSeconds)
	r.Convergence.print(p, "  ")
	p("peak RSS           %.0f MiB", r.PeakRSSMiB)
	p("")
	p("idle %.0f s        manager CPU %.2f s; per idle hour: %s; S3 %s", r.IdleSeconds, r.Idle.ManagerCPUSeconds,
		perHour(writes(r.Idle.API), r.IdleSeconds), perHour(r.Idle.S3, r.IdleSeconds))
	p("at rest            %d fds, %.0f goroutines, %.0f MiB RSS", r.AtRestFDs, r.AtRestGoroutines, r.AtRestRSSMiB)
	p("")
	p("refresh, idle      n=%d p50 %.2f s, p99 %.2f s, max %.2f s", r.RefreshIdle.N, r.RefreshIdle.P50, r.RefreshIdle.P99, r.RefreshIdle.Max)
	p("refresh, under load (every other source refreshed at once)")
	p("                   n=%d p50 %.2f s, p99 %.2f s, max %.2f s; all %d refreshed in %.1f s",
		r.RefreshLoad.N, r.RefreshLoad.P50, r.RefreshLoad.P99, r.RefreshLoad.Max, r.Sources, r.RefreshAllSeconds)
	r.Refreshes.print(p, "  ")
	p("")
	p("restart            settled in %.1f s, %d downloads after restart", r.RestartSettleSeconds, r.DownloadsAfterRestart)
	r.Restart.print(p, "  ")
	p("")
	p("events             %s", kv(intsToFloats(r.Events)))
}

func (ph phaseReport) print(p func(string, ...any), indent string) {
	p("%sAPI requests      %s", indent, kv(ph.API))
	p("%sS3 requests       %s", indent, kv(ph.S3))
	p("%sstatus lag        p50 ≤ %.2f s, p99 ≤ %.2f s (%0.f results; histogram bucket bounds)", indent, ph.StatusLagP50, ph.StatusLagP99, ph.StatusLagCount)
	if ph.ManagerCPUSeconds > 0 {
		p("%smanager CPU       %.1f s in %.1f s", indent, ph.ManagerCPUSeconds, ph.Seconds)
	}
}

// writes keeps the API server's write verbs.
func writes(api map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range api {
		verb, _, _ := strings.Cut(k, " ")
		switch verb {
		case "CREATE", "UPDATE", "PATCH", "DELETE", "APPLY":
			out[k] = v
		}
	}
	return out
}

func perHour(m map[string]float64, seconds float64) string {
	if len(m) == 0 {
		return "0 requests"
	}
	scaled := map[string]float64{}
	for k, v := range m {
		scaled[k] = v * 3600 / seconds
	}
	return kv(scaled)
}

func kv(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func intsToFloats(m map[string]int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}
