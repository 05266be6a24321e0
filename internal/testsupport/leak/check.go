package leak

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Options say what Check scans besides the cluster's statuses and events.
type Options struct {
	// Known are secrets that live outside Secrets: MinIO's root password, the API
	// server's credentials (RESTConfigSecrets), tokens a test issued.
	Known []Secret
	// Metrics, if set, is gathered and every series scanned.
	Metrics prometheus.Gatherer
	// Logs are scanned line by line (LogCapture.Texts or LogTexts).
	Logs []Text
	// Texts are scanned as they are, e.g. a CLI's output.
	Texts []Text
	// SkipNamespaces are left out of the status and event scan (their Secrets still
	// count): for a namespace where a test plants leaks on purpose.
	SkipNamespaces []string
}

// Report is what Check scanned and found.
type Report struct {
	Statuses, Events, LogLines, MetricSeries, Texts int
	// Secrets is how many secret values were looked for (Secrets' and known ones).
	Secrets  int
	Findings []Finding
}

// Summary is one line: how much was scanned and how many findings.
func (r Report) Summary() string {
	return fmt.Sprintf("leak scan: %d statuses, %d events (events.k8s.io/v1 and core/v1), %d log lines, %d metric series, %d other texts, %d secrets checked, findings: %d",
		r.Statuses, r.Events, r.LogLines, r.MetricSeries, r.Texts, r.Secrets, len(r.Findings))
}

// Err is nil without findings, else an error listing them (never a secret).
func (r Report) Err() error {
	if len(r.Findings) == 0 {
		return nil
	}
	lines := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		lines[i] = "  " + f.String()
	}
	return fmt.Errorf("%w: %d found\n%s", ErrLeak, len(r.Findings), strings.Join(lines, "\n"))
}

// ErrLeak is what Report.Err wraps.
var ErrLeak = errors.New("secrets leaked into status, events, logs or metrics")

// Check lists every Secret in the cluster through c (which must be allowed to list
// Secrets, S3Sources, IngestionQuotas and Events in all namespaces: an admin's client),
// adds opts.Known, and scans every status and event, the metrics and the logs. The
// error is for failing to scan; findings are in the report (see Report.Err).
func Check(ctx context.Context, c client.Reader, opts Options) (Report, error) {
	secrets, err := SecretsOf(ctx, c)
	if err != nil {
		return Report{}, err
	}
	sc := NewScanner(append(secrets, opts.Known...)...)
	statuses, events, err := ClusterTexts(ctx, c, opts.SkipNamespaces...)
	if err != nil {
		return Report{}, err
	}
	var series []Text
	if opts.Metrics != nil {
		if series, err = MetricTexts(opts.Metrics); err != nil {
			return Report{}, err
		}
	}
	r := Report{
		Statuses: len(statuses), Events: len(events), LogLines: len(opts.Logs),
		MetricSeries: len(series), Texts: len(opts.Texts), Secrets: sc.Secrets(),
	}
	for _, texts := range [][]Text{statuses, events, series, opts.Logs, opts.Texts} {
		r.Findings = append(r.Findings, sc.Scan(texts...)...)
	}
	return r, nil
}
