package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/receiver"
)

// Metrics are exported on the controller-runtime registry (the manager's /metrics).
// config/prometheus alerts refer to these names; a test keeps them in step.
type Metrics struct {
	Files             *prometheus.CounterVec
	Bytes             *prometheus.CounterVec
	Conversations     *prometheus.CounterVec
	DiscoveryDuration *prometheus.HistogramVec
	ObjectsListed     *prometheus.GaugeVec
	FilesByState      *prometheus.GaugeVec
	DiscoveryFailures *prometheus.CounterVec
	LastSuccess       *prometheus.GaugeVec
	QuotaUsed         *prometheus.GaugeVec
	QuotaLimit        *prometheus.GaugeVec
	PIIMatches        *prometheus.CounterVec
	// StatusLag is how long a finished run waited before its result was in status: the
	// time results spend queued behind other work (one series, not one per source).
	// A vector without labels: it shows no series until a run was folded.
	StatusLag *prometheus.HistogramVec
	// WebhookRequests counts requests to the webhook receiver by result.
	WebhookRequests *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg (nil: the
// controller-runtime registry). Registering twice (tests) reuses the first collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = metrics.Registry
	}
	src := []string{"namespace", "source"}
	m := &Metrics{
		Files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dataimport_files_processed_total",
			Help: "Files downloaded and processed, by result (ingested, failed)."}, append(src, "result")),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dataimport_bytes_downloaded_total",
			Help: "Object bytes downloaded and processed (what the daily quota counts)."}, src),
		Conversations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dataimport_conversations_total",
			Help: "Conversations seen in processed files, by outcome (new, updated, unchanged, invalid)."}, append(src, "outcome")),
		// By namespace, not source: a histogram is 12 series, which per source made it 40%
		// of a 21 MB scrape at 10,000 sources.
		DiscoveryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dataimport_discovery_duration_seconds",
			Help: "Duration of discovery runs of a namespace's sources.", Buckets: prometheus.ExponentialBuckets(0.05, 4, 9)}, []string{"namespace"}),
		ObjectsListed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dataimport_objects_listed",
			Help: "Objects under the prefix at the last successful discovery."}, src),
		FilesByState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dataimport_files",
			Help: "Objects under the prefix by ledger state at the last successful discovery (states with none are not exported)."}, append(src, "state")),
		DiscoveryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dataimport_discovery_failures_total",
			Help: "Discovery runs that failed, by reason (AccessDenied, NoSuchBucket, ...)."}, append(src, "reason")),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dataimport_last_successful_discovery_timestamp_seconds",
			Help: "Unix time of the last successful discovery."}, src),
		QuotaUsed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dataimport_quota_used_bytes",
			Help: "Bytes charged to a quota in its current window."}, []string{"namespace", "quota"}),
		QuotaLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dataimport_quota_limit_bytes",
			Help: "Daily limit of a quota."}, []string{"namespace", "quota"}),
		// validator is the validator's name: at most 16 per source (the CRD's bound).
		PIIMatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dataimport_pii_matches_total",
			Help: "Personal data found by a source's validators in processed files, by validator name and action (Reject, Redact, Flag)."},
			append(src, "validator", "action")),
		StatusLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dataimport_status_lag_seconds",
			Help:    "Time from the end of a discovery run to its result written to the S3Source's status.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300}}, nil),
		WebhookRequests: receiver.NewRequestsCounter(),
	}
	register := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				return are.ExistingCollector
			}
			panic(err)
		}
		return c
	}
	m.Files = register(m.Files).(*prometheus.CounterVec)
	m.Bytes = register(m.Bytes).(*prometheus.CounterVec)
	m.Conversations = register(m.Conversations).(*prometheus.CounterVec)
	m.DiscoveryDuration = register(m.DiscoveryDuration).(*prometheus.HistogramVec)
	m.ObjectsListed = register(m.ObjectsListed).(*prometheus.GaugeVec)
	m.FilesByState = register(m.FilesByState).(*prometheus.GaugeVec)
	m.DiscoveryFailures = register(m.DiscoveryFailures).(*prometheus.CounterVec)
	m.LastSuccess = register(m.LastSuccess).(*prometheus.GaugeVec)
	m.QuotaUsed = register(m.QuotaUsed).(*prometheus.GaugeVec)
	m.QuotaLimit = register(m.QuotaLimit).(*prometheus.GaugeVec)
	m.PIIMatches = register(m.PIIMatches).(*prometheus.CounterVec)
	m.StatusLag = register(m.StatusLag).(*prometheus.HistogramVec)
	m.WebhookRequests = register(m.WebhookRequests).(*prometheus.CounterVec)
	return m
}

func (m *Metrics) observeRun(src *v1.S3Source, res *discovery.Result) {
	ns, name := src.Namespace, src.Name
	m.DiscoveryDuration.WithLabelValues(ns).Observe(res.Finished.Sub(res.Started).Seconds())
	if res.Err != nil {
		reason := runFailure(src, res).reason
		m.DiscoveryFailures.WithLabelValues(ns, name, reason).Inc()
		return
	}
	m.LastSuccess.WithLabelValues(ns, name).Set(float64(res.Finished.Unix()))
	m.ObjectsListed.WithLabelValues(ns, name).Set(float64(res.Listed))
	for state, n := range map[string]int64{"ingested": res.Ingested, "failed": res.Failed, "deferred": res.Deferred, "ignored": res.Ignored} {
		// Most sources have files in one state: a series for each empty state would
		// quadruple the gauge's series.
		if n == 0 {
			m.FilesByState.DeleteLabelValues(ns, name, state)
			continue
		}
		m.FilesByState.WithLabelValues(ns, name, state).Set(float64(n))
	}
	m.countFiles(src, res)
}

// countFiles adds what a run (a discovery or an event run) downloaded to the counters.
func (m *Metrics) countFiles(src *v1.S3Source, res *discovery.Result) {
	ns, name := src.Namespace, src.Name
	m.Files.WithLabelValues(ns, name, "ingested").Add(float64(res.Downloaded - res.DownloadedFailed))
	m.Files.WithLabelValues(ns, name, "failed").Add(float64(res.DownloadedFailed))
	m.Bytes.WithLabelValues(ns, name).Add(float64(res.BytesDownloaded))
	for outcome, n := range map[string]int64{"new": res.Conversations.New, "updated": res.Conversations.Updated,
		"unchanged": res.Conversations.Unchanged, "invalid": res.Conversations.Invalid} {
		m.Conversations.WithLabelValues(ns, name, outcome).Add(float64(n))
	}
	for _, c := range res.PII {
		m.PIIMatches.WithLabelValues(ns, name, c.Validator, string(c.Action)).Add(float64(c.Matches))
	}
}

// restoreLastSuccess sets the last-success gauge from status when this process has not
// observed a run yet (after a restart or a leader change), so alerts see no gap.
func (m *Metrics) restoreLastSuccess(src *v1.S3Source) {
	last := src.Status.LastDiscoveryTime
	if last == nil || src.Status.ConsecutiveFailures > 0 {
		return
	}
	g := m.LastSuccess.WithLabelValues(src.Namespace, src.Name)
	if gaugeValue(g) < float64(last.Unix()) {
		g.Set(float64(last.Unix()))
	}
}

// gaugeValue reads a gauge's current value.
func gaugeValue(g prometheus.Gauge) float64 {
	var out dto.Metric
	if err := g.Write(&out); err != nil || out.Gauge == nil {
		return 0
	}
	return out.Gauge.GetValue()
}

func (m *Metrics) forget(src *v1.S3Source) {
	labels := map[string]string{"namespace": src.Namespace, "source": src.Name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.Files, m.Bytes, m.Conversations, m.ObjectsListed, m.FilesByState, m.DiscoveryFailures, m.LastSuccess, m.PIIMatches,
	} {
		v.DeletePartialMatch(labels)
	}
}
