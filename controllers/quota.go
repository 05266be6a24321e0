package controllers

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// resolvedQuota is an IngestionQuota's spec in the units the operator works with.
type resolvedQuota struct {
	quota.Quota
	// Missing is true when the named quota does not exist and the defaults apply.
	Missing bool
}

// quotaFromSpec resolves a spec, filling what the API server did not default, with
// quota.Resolve.
func quotaFromSpec(key string, spec v1.IngestionQuotaSpec) (resolvedQuota, error) {
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
	var tze *quota.TimeZoneError
	if errors.As(err, &tze) {
		return resolvedQuota{Quota: q}, &stepFailure{reason: v1.ReasonInvalidTimeZone, stalled: true, message: err.Error()}
	}
	return resolvedQuota{Quota: q}, err
}

// resolveQuota reads the named IngestionQuota of a namespace, or the documented defaults
// when it does not exist.
func resolveQuota(ctx context.Context, c client.Reader, ns, name string) (resolvedQuota, error) {
	if name == "" {
		name = "default"
	}
	key := ns + "/" + name
	var iq v1.IngestionQuota
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &iq)
	switch {
	case apierrors.IsNotFound(err):
		q, err := quotaFromSpec(key, v1.IngestionQuotaSpec{})
		q.Missing = true
		return q, err
	case err != nil:
		return resolvedQuota{}, fmt.Errorf("reading IngestionQuota %s: %w", key, err)
	}
	return quotaFromSpec(key, iq.Spec)
}

func (q resolvedQuota) describe() string {
	s := fmt.Sprintf("%s a day, %s a file, %s refresh cooldown", quota.FormatBytes(q.DailyLimit), quota.FormatBytes(q.MaxFileSize), q.RefreshCooldown)
	if q.Missing {
		return fmt.Sprintf("IngestionQuota %s not found: using the defaults (%s)", q.Key, s)
	}
	return fmt.Sprintf("IngestionQuota %s: %s", q.Key, s)
}
