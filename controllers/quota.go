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

// resolvedQuota is an IngestionQuota's spec in the units the operator works with.
type resolvedQuota struct {
	discovery.Quota
	RefreshCooldown time.Duration
	// Missing is true when the named quota does not exist and the defaults apply.
	Missing bool
}

// quotaFromSpec resolves a spec, filling what the API server did not default.
func quotaFromSpec(key string, spec v1.IngestionQuotaSpec) (resolvedQuota, error) {
	q := resolvedQuota{Quota: discovery.Quota{Key: key}}
	q.DailyLimit = quantityOr(spec.DailyLimit, v1.DefaultDailyLimit)
	q.MaxFileSize = quantityOr(spec.MaxFileSize, v1.DefaultMaxFileSize)
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
// when it does not exist.
func resolveQuota(ctx context.Context, c client.Reader, ns, name string) (resolvedQuota, error) {
	if name == "" {
		name = "default"
	}
	key := ns + "/" + name
	var quota v1.IngestionQuota
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &quota)
	switch {
	case apierrors.IsNotFound(err):
		q, err := quotaFromSpec(key, v1.IngestionQuotaSpec{})
		q.Missing = true
		return q, err
	case err != nil:
		return resolvedQuota{}, fmt.Errorf("reading IngestionQuota %s: %w", key, err)
	}
	return quotaFromSpec(key, quota.Spec)
}

func (q resolvedQuota) describe() string {
	s := fmt.Sprintf("%s a day, %s a file, %s refresh cooldown", discovery.HumanBytes(q.DailyLimit), discovery.HumanBytes(q.MaxFileSize), q.RefreshCooldown)
	if q.Missing {
		return fmt.Sprintf("IngestionQuota %s not found: using the defaults (%s)", q.Key, s)
	}
	return fmt.Sprintf("IngestionQuota %s: %s", q.Key, s)
}
