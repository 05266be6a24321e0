package controllers

import (
	"context"
	"errors"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/discovery"
)

// stepFilters checks spec.include and spec.exclude. CEL cannot parse a glob, so a
// pattern that is not one (an unclosed '[' or '{') passes admission and stalls the
// source here, before any S3 request: only a spec change helps.
func (r *S3SourceReconciler) stepFilters(_ context.Context, s *sourceScope) (time.Duration, error) {
	err := errors.Join(
		discovery.ValidatePatterns("spec.include", s.src.Spec.Include),
		discovery.ValidatePatterns("spec.exclude", s.src.Spec.Exclude))
	if err != nil {
		return 0, &stepFailure{reason: v1.ReasonInvalidFilters, message: err.Error(), stalled: true}
	}
	return 0, nil
}

func filterOf(spec *v1.S3SourceSpec) discovery.Filter {
	f := discovery.Filter{Include: slices.Clone(spec.Include), Exclude: slices.Clone(spec.Exclude)}
	if spec.MaxFileAge != nil {
		f.MaxFileAge = spec.MaxFileAge.Duration
	}
	return f
}

// observedFilter is the filter a run applied, as status reports it (as Flux's
// observedIgnore).
func observedFilter(f discovery.Filter) (include, exclude []string, maxAge *metav1.Duration) {
	if f.MaxFileAge > 0 {
		maxAge = &metav1.Duration{Duration: f.MaxFileAge}
	}
	return slices.Clone(f.Include), slices.Clone(f.Exclude), maxAge
}
