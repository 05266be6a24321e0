package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

type report struct {
	Sources           int    `json:"sources"`
	FilesPerSource    int    `json:"filesPerSource"`
	Replicas          int    `json:"replicas"`
	Shards            int    `json:"shards"`
	Store             string `json:"store"`
	ConcurrentSources int    `json:"concurrentSourcesPerReplica"`
	// ShardSettleSeconds is, for each start of the replicas, how long until the shards
	// were split evenly between them (the benchmark waits for it before going on).
	ShardSettleSeconds []float64 `json:"shardSettleSeconds,omitempty"`

	CreateSeconds      float64     `json:"createSeconds"`
	ConvergenceSeconds float64     `json:"convergenceSeconds"`
	Convergence        phaseReport `json:"convergence"`

	IdleSeconds float64     `json:"idleSeconds"`
	Idle        phaseReport `json:"idle"`
	// IdleWritesPerHour and IdleS3PerHour scale the idle sample to an hour: beyond
	// scheduled discoveries when Idle.Discoveries is 0 (none fell into the sample).
	IdleWritesPerHour map[string]float64 `json:"idleAPIWritesPerHour"`
	IdleS3PerHour     map[string]float64 `json:"idleS3RequestsPerHour"`
	AtRest            []atRest           `json:"atRest"` // by replica

	RefreshIdle latency `json:"refreshIdle"`
	// RefreshScheduled is the refresh latency of the probes asked for once every other
	// source's discovery (started by a spec change, the same run as an hourly one) was
	// already waiting for a run slot.
	RefreshScheduled    latency     `json:"refreshBehindScheduled"`
	ScheduledAllSeconds float64     `json:"scheduledAllSeconds"`
	Scheduled           phaseReport `json:"scheduled"`
	// RefreshLoad is the refresh latency of the probes asked for at the same moment as a
	// refresh of every other source: refreshes behind refreshes, first come first served.
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
	Discoveries       float64            `json:"discoveries"`
	FilesIngested     float64            `json:"filesIngested"`
	Replicas          []replicaPhase     `json:"replicas"`
}

// replicaPhase is one replica's share of a phase.
type replicaPhase struct {
	ID string `json:"id"`
	// Sources and Shards it served at the end of the phase (from the shard Leases).
	Sources       int     `json:"sources"`
	Shards        int     `json:"shards"`
	Discoveries   float64 `json:"discoveries"`
	FilesIngested float64 `json:"filesIngested"`
	// S3Requests are those naming a source it served at the end of the phase.
	S3Requests float64 `json:"s3Requests"`
	CPUSeconds float64 `json:"cpuSeconds"`
}

type atRest struct {
	ID         string  `json:"id"`
	FDs        int     `json:"fds"`
	Goroutines float64 `json:"goroutines"`
	RSSMiB     float64 `json:"rssMiB"`
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
	setup := fmt.Sprintf("%d replica, %s", r.Replicas, r.Store)
	if r.Replicas > 1 {
		setup = fmt.Sprintf("%d replicas, %s", r.Replicas, r.Store)
	}
	if r.Shards > 0 {
		setup += fmt.Sprintf(", --shards %d (shards split evenly in %s s)", r.Shards, seconds(r.ShardSettleSeconds))
	}
	p("scale benchmark: %d sources × %d files (real manager binary, envtest, MinIO; %s; --concurrent-sources %d per replica)",
		r.Sources, r.FilesPerSource, setup, r.ConcurrentSources)
	p("")
	p("convergence        %.1f s (creating the sources took %.1f s)", r.ConvergenceSeconds, r.CreateSeconds)
	r.Convergence.print(p, "  ", r.Replicas > 1)
	p("peak RSS           %.0f MiB (largest replica)", r.PeakRSSMiB)
	p("")
	p("idle %.0f s        manager CPU %.2f s", r.IdleSeconds, r.Idle.ManagerCPUSeconds)
	if r.Idle.Discoveries == 0 {
		// Every source was discovered less than an interval before the sample: no
		// scheduled discovery falls into it, and what it shows is all beyond them.
		p("                   per idle hour beyond scheduled discoveries (none ran in the sample): API writes %s; S3 %s",
			perHour(writes(r.Idle.API), r.IdleSeconds), perHour(r.Idle.S3, r.IdleSeconds))
	} else {
		p("                   per idle hour, including the %.0f discoveries that ran in the sample: API writes %s; S3 %s",
			r.Idle.Discoveries, perHour(writes(r.Idle.API), r.IdleSeconds), perHour(r.Idle.S3, r.IdleSeconds))
	}
	if r.Scheduled.Discoveries > 0 {
		p("                   the scheduled discoveries themselves: one costs API writes %s; S3 %s (from the phase behind scheduled discoveries),",
			perRun(writes(r.Scheduled.API), r.Scheduled.Discoveries), perRun(r.Scheduled.S3, r.Scheduled.Discoveries))
		p("                   and %d sources at the default 1 h interval make %d of them an hour", r.Sources, r.Sources)
	}
	for _, a := range r.AtRest {
		p("at rest            %s: %d fds, %.0f goroutines, %.0f MiB RSS", a.ID, a.FDs, a.Goroutines, a.RSSMiB)
	}
	p("")
	p("refresh, idle      n=%d p50 %.2f s, p99 %.2f s, max %.2f s", r.RefreshIdle.N, r.RefreshIdle.P50, r.RefreshIdle.P99, r.RefreshIdle.Max)
	p("refresh, behind scheduled discoveries (every other source's discovery already waiting for a run slot)")
	p("                   n=%d p50 %.2f s, p99 %.2f s, max %.2f s; all %d discovered in %.1f s",
		r.RefreshScheduled.N, r.RefreshScheduled.P50, r.RefreshScheduled.P99, r.RefreshScheduled.Max, r.Sources, r.ScheduledAllSeconds)
	r.Scheduled.print(p, "  ", r.Replicas > 1)
	p("refresh, under load (every other source refreshed at the same moment: refreshes behind refreshes)")
	p("                   n=%d p50 %.2f s, p99 %.2f s, max %.2f s; all %d refreshed in %.1f s",
		r.RefreshLoad.N, r.RefreshLoad.P50, r.RefreshLoad.P99, r.RefreshLoad.Max, r.Sources, r.RefreshAllSeconds)
	r.Refreshes.print(p, "  ", r.Replicas > 1)
	p("")
	p("restart            settled in %.1f s, %d downloads after restart", r.RestartSettleSeconds, r.DownloadsAfterRestart)
	r.Restart.print(p, "  ", r.Replicas > 1)
	p("")
	p("events             %s", kv(intsToFloats(r.Events)))
}

func (ph phaseReport) print(p func(string, ...any), indent string, perReplica bool) {
	p("%sAPI requests      %s", indent, kv(ph.API))
	p("%sS3 requests       %s", indent, kv(ph.S3))
	p("%sstatus lag        p50 ≤ %.2f s, p99 ≤ %.2f s (%0.f results; histogram bucket bounds)", indent, ph.StatusLagP50, ph.StatusLagP99, ph.StatusLagCount)
	p("%swork              %.0f discoveries, %.0f files ingested, manager CPU %.1f s in %.1f s", indent, ph.Discoveries, ph.FilesIngested, ph.ManagerCPUSeconds, ph.Seconds)
	if !perReplica {
		return
	}
	for _, r := range ph.Replicas {
		p("%s  %-12s    %d sources (%d shards), %.0f discoveries, %.0f files ingested, %.0f S3 requests, CPU %.1f s",
			indent, r.ID, r.Sources, r.Shards, r.Discoveries, r.FilesIngested, r.S3Requests, r.CPUSeconds)
	}
}

func seconds(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.1f", x))
	}
	return strings.Join(parts, ", ")
}

// perRun divides counts by the runs that made them.
func perRun(m map[string]float64, runs float64) string {
	if len(m) == 0 {
		return "none"
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprintf("%.2f", v/runs)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(out)) {
		parts = append(parts, k+"="+out[k])
	}
	return strings.Join(parts, ", ")
}

// writes keeps the write verbs, as apiserver_request_total names them (POST, PUT, ...).
func writes(api map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range api {
		verb, _, _ := strings.Cut(k, " ")
		switch verb {
		case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY":
			out[k] = v
		}
	}
	return out
}

func perHour(m map[string]float64, seconds float64) string {
	if len(m) == 0 {
		return "0 requests"
	}
	return kv(scaledToHour(m, seconds))
}

func scaledToHour(m map[string]float64, seconds float64) map[string]float64 {
	scaled := map[string]float64{}
	for k, v := range m {
		scaled[k] = v * 3600 / seconds
	}
	return scaled
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
