package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/discovery"
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

// Ceilings are the platform admin's upper bounds on every IngestionQuota, and on the
// defaults that apply when a source's quota does not exist. A tenant cannot raise them:
// they are manager flags (--max-daily-limit, --max-file-size). Zero means no ceiling.
type Ceilings struct {
	DailyLimit  int64
	MaxFileSize int64
}

// resolvedQuota is an IngestionQuota's spec in the units the operator works with: the
// effective limits, after the ceilings.
type resolvedQuota struct {
	discovery.Quota
	RefreshCooldown time.Duration
	// Missing is true when the named quota does not exist and the defaults apply.
	Missing bool
	// RequestedDailyLimit and RequestedMaxFileSize are what the spec (or the defaults)
	// asked for, before the ceilings.
	RequestedDailyLimit, RequestedMaxFileSize int64
	// Ceilings are the bounds that were applied.
	Ceilings Ceilings
}

// capped says which limits the ceilings lowered, in words for a condition message; empty
// when the spec applies as written.
func (q resolvedQuota) capped() []string {
	var out []string
	if q.DailyLimit < q.RequestedDailyLimit {
		out = append(out, fmt.Sprintf("dailyLimit %s is above the operator's ceiling of %s (--max-daily-limit): %s applies",
			discovery.HumanBytes(q.RequestedDailyLimit), discovery.HumanBytes(q.Ceilings.DailyLimit), discovery.HumanBytes(q.DailyLimit)))
	}
	if q.MaxFileSize < q.RequestedMaxFileSize {
		why := fmt.Sprintf("the operator's ceiling of %s (--max-file-size)", discovery.HumanBytes(q.Ceilings.MaxFileSize))
		if q.Ceilings.MaxFileSize <= 0 || q.MaxFileSize < q.Ceilings.MaxFileSize {
			why = fmt.Sprintf("the effective daily limit of %s", discovery.HumanBytes(q.DailyLimit))
		}
		out = append(out, fmt.Sprintf("maxFileSize %s is above %s: %s applies",
			discovery.HumanBytes(q.RequestedMaxFileSize), why, discovery.HumanBytes(q.MaxFileSize)))
	}
	return out
}

// capAt returns v bounded by ceiling; a ceiling of zero or less bounds nothing.
func capAt(v, ceiling int64) int64 {
	if ceiling > 0 && v > ceiling {
		return ceiling
	}
	return v
}

// quotaFromSpec resolves a spec, filling what the API server did not default, and bounds
// it by the ceilings. A file larger than a day's limit could never be ingested, so the
// effective maxFileSize never exceeds the effective dailyLimit either.
func quotaFromSpec(key string, spec v1.IngestionQuotaSpec, ceil Ceilings) (resolvedQuota, error) {
	q := resolvedQuota{Quota: discovery.Quota{Key: key}, Ceilings: ceil}
	q.RequestedDailyLimit = quantityOr(spec.DailyLimit, v1.DefaultDailyLimit)
	q.RequestedMaxFileSize = quantityOr(spec.MaxFileSize, v1.DefaultMaxFileSize)
	q.DailyLimit = capAt(q.RequestedDailyLimit, ceil.DailyLimit)
	q.MaxFileSize = capAt(capAt(q.RequestedMaxFileSize, ceil.MaxFileSize), q.DailyLimit)
	q.RefreshCooldown = time.Minute
	if spec.RefreshCooldown != nil {
		q.RefreshCooldown = spec.RefreshCooldown.Duration
	}
	tz := spec.TimeZone
	if tz == "" {
		tz = v1.DefaultTimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return q, &stepFailure{reason: v1.ReasonInvalidTimeZone, stalled: true,
			message: fmt.Sprintf("IngestionQuota %s: timeZone %q is not an IANA time zone name (want e.g. UTC or Europe/Paris)", key, tz)}
	}
	q.Location = loc
	return q, nil
}

func quantityOr(q *resource.Quantity, def string) int64 {
	if q == nil {
		d := resource.MustParse(def)
		return d.Value()
	}
	return q.Value()
}

// resolveQuota reads the named IngestionQuota of a namespace, or the documented defaults
// when it does not exist; the ceilings bound both.
func resolveQuota(ctx context.Context, c client.Reader, ns, name string, ceil Ceilings) (resolvedQuota, error) {
	if name == "" {
		name = "default"
	}
	key := ns + "/" + name
	var quota v1.IngestionQuota
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &quota)
	switch {
	case apierrors.IsNotFound(err):
		q, err := quotaFromSpec(key, v1.IngestionQuotaSpec{}, ceil)
		q.Missing = true
		return q, err
	case err != nil:
		return resolvedQuota{}, fmt.Errorf("reading IngestionQuota %s: %w", key, err)
	}
	return quotaFromSpec(key, quota.Spec, ceil)
}

func (q resolvedQuota) describe() string {
	s := fmt.Sprintf("%s a day, %s a file, %s refresh cooldown", discovery.HumanBytes(q.DailyLimit), discovery.HumanBytes(q.MaxFileSize), q.RefreshCooldown)
	if len(q.capped()) > 0 {
		s += ", capped by the operator's ceilings"
	}
	if q.Missing {
		return fmt.Sprintf("IngestionQuota %s not found: using the defaults (%s)", q.Key, s)
	}
	return fmt.Sprintf("IngestionQuota %s: %s", q.Key, s)
}
