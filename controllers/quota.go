package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// Default ceilings, the defaults of the manager's --max-daily-limit and --max-file-size.
//
// The file-size ceiling is what the spool volume must hold: each of --concurrent-files
// downloads is spooled to --spool-dir, and a ZIP archive is copied once more there for
// random access, so the manager needs concurrent-files × 2 × max-file-size free (4 × 2 ×
// 100M = 800M), within the 1Gi emptyDir of config/manager/manager.yaml; the manager refuses
// to start when the spool directory has less free space. The daily ceiling, 10G, is twenty
// times the default quota (500M): a generous ceiling an admin lowers or raises per
// platform, not a tenant's everyday budget, and still a day of work for one manager (10G a
// day is about 120 kB/s on average, far below what one pod parses).
const (
	DefaultMaxDailyLimit = "10G"
	DefaultMaxFileSize   = "100M"
)

// SpoolCopiesPerDownload is how many copies of one file the spool directory holds at most
// while it is processed: the downloaded object, and for a ZIP archive a second copy that
// archive/zip reads at random.
const SpoolCopiesPerDownload = 2

// Ceilings are the platform admin's upper bounds on every IngestionQuota (quota.Ceilings).
type Ceilings = quota.Ceilings

// resolvedQuota is an IngestionQuota's spec in the units the operator works with: the
// effective limits, after the ceilings.
type resolvedQuota struct {
	quota.Capped
	// Missing is true when the named quota does not exist and the defaults apply.
	Missing bool
}

// quotaFromSpec resolves a spec, filling what the API server did not default, with
// quota.Resolve, and bounds it by the ceilings.
func quotaFromSpec(key string, spec v1.IngestionQuotaSpec, ceil Ceilings) (resolvedQuota, error) {
	s := quota.Spec{TimeZone: spec.TimeZone}
	if spec.DailyLimit != nil {
		n := spec.DailyLimit.Value()
		s.DailyLimit = &n
	}
	if spec.MaxFileSize != nil {
		n := spec.MaxFileSize.Value()
		s.MaxFileSize = &n
	}
	if spec.RefreshCooldown != nil {
		s.RefreshCooldown = &spec.RefreshCooldown.Duration
	}
	q, err := quota.Resolve(key, s)
	rq := resolvedQuota{Capped: q.Cap(ceil)}
	var tze *quota.TimeZoneError
	if errors.As(err, &tze) {
		return rq, &stepFailure{reason: v1.ReasonInvalidTimeZone, stalled: true, message: err.Error()}
	}
	return rq, err
}

// resolveQuota reads the named IngestionQuota of a namespace, or the documented defaults
// when the namespace's "default" quota does not exist; the ceilings bound both. Any other
// missing quota stalls the source.
func resolveQuota(ctx context.Context, c client.Reader, ns, name string, ceil Ceilings) (resolvedQuota, error) {
	if name == "" {
		name = v1.DefaultQuotaName
	}
	key := ns + "/" + name
	var iq v1.IngestionQuota
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &iq)
	switch {
	case apierrors.IsNotFound(err) && name != v1.DefaultQuotaName:
		// Only the namespace's "default" quota may be missing. Were every missing name
		// its own set of defaults, a tenant could name q1, q2, ... qN and get N daily
		// limits and cooldowns of its own, around the quota the admin set.
		return resolvedQuota{}, &stepFailure{reason: v1.ReasonQuotaNotFound, stalled: true,
			message: fmt.Sprintf("IngestionQuota %s named by spec.quotaRef does not exist: only the platform admin creates quotas; "+
				"name an existing one, or leave quotaRef out to use the namespace's %q quota (or the defaults while it does not exist)", key, v1.DefaultQuotaName)}
	case apierrors.IsNotFound(err):
		q, err := quotaFromSpec(key, v1.IngestionQuotaSpec{}, ceil)
		q.Missing = true
		return q, err
	case err != nil:
		return resolvedQuota{}, fmt.Errorf("reading IngestionQuota %s: %w", key, err)
	}
	return quotaFromSpec(key, iq.Spec, ceil)
}

func (q resolvedQuota) describe() string {
	s := fmt.Sprintf("%s a day, %s a file, %s refresh cooldown", quota.FormatBytes(q.DailyLimit), quota.FormatBytes(q.MaxFileSize), q.RefreshCooldown)
	if len(q.Lowered()) > 0 {
		s += ", capped by the operator's ceilings"
	}
	if q.Missing {
		return fmt.Sprintf("IngestionQuota %s not found: using the defaults (%s)", q.Key, s)
	}
	return fmt.Sprintf("IngestionQuota %s: %s", q.Key, s)
}

// quotaAvailability is the QuotaAvailable condition (status, reason, message) of a quota
// from its effective daily limit and today's usage. The IngestionQuota and each of its
// S3Sources use it, so the two never contradict each other. A limit lowered below what was
// already used today reads as such, not as "59.4 kB of 10 kB used".
func quotaAvailability(limit, used int64, resetsAt time.Time) (metav1.ConditionStatus, string, string) {
	reset := resetsAt.UTC().Format(time.RFC3339)
	switch {
	case used > limit:
		return metav1.ConditionFalse, v1.ReasonQuotaExceeded, fmt.Sprintf("limit lowered to %s; %s already used today, nothing more until the reset at %s",
			quota.FormatBytes(limit), quota.FormatBytes(used), reset)
	case used == limit:
		return metav1.ConditionFalse, v1.ReasonQuotaExceeded, fmt.Sprintf("today's %s are used up; nothing more until the reset at %s", quota.FormatBytes(limit), reset)
	}
	return metav1.ConditionTrue, v1.ReasonQuotaAvailable, fmt.Sprintf("%s of %s left today", quota.FormatBytes(limit-used), quota.FormatBytes(limit))
}

// usageSummary is an IngestionQuota's status.usage.
func usageSummary(limit, used int64, resetsAt time.Time) string {
	if used > limit {
		_, _, msg := quotaAvailability(limit, used, resetsAt)
		return msg
	}
	return fmt.Sprintf("%s of %s used today", quota.FormatBytes(used), quota.FormatBytes(limit))
}
