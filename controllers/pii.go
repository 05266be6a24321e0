package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// validatorConfigs maps spec.validators to the engine's configuration.
func validatorConfigs(specs []v1.Validator) []ingest.ValidatorConfig {
	out := make([]ingest.ValidatorConfig, 0, len(specs))
	for _, v := range specs {
		action := ingest.PIIAction(v.Action)
		if action == "" {
			action = ingest.ActionReject // the CRD's default, for objects that bypassed it
		}
		out = append(out, ingest.ValidatorConfig{Name: v.Name, Type: ingest.PIIType(v.Type), Action: action, Pattern: v.Pattern, Regions: v.Regions})
	}
	return out
}

// stepValidators compiles spec.validators. The CRD refuses what it can check (types,
// actions, lengths, a pattern that does not compile or matches the empty string); what
// slips past admission (an object stored before the rules, a region libphonenumber does
// not know) stalls the source: only a spec change helps.
func (r *S3SourceReconciler) stepValidators(_ context.Context, s *sourceScope) (time.Duration, error) {
	vs, err := ingest.CompileValidators(validatorConfigs(s.src.Spec.Validators))
	if err != nil {
		return 0, &stepFailure{reason: v1.ReasonInvalidValidators, message: "spec." + strings.TrimPrefix(err.Error(), ingest.ErrInvalidValidator.Error()+": "), stalled: true}
	}
	s.validators = vs
	return 0, nil
}

// foldPII adds a run's PII counts to status.pii, keeping one entry per validator of the
// current spec (a removed validator's entry is dropped), in the spec's order.
func foldPII(prev []v1.PIICount, specs []v1.Validator, run []ingest.PIICount) []v1.PIICount {
	var out []v1.PIICount
	for _, cfg := range validatorConfigs(specs) {
		name := cfg.Name
		if name == "" {
			name = ingest.DefaultValidatorName(cfg.Type)
		}
		c := v1.PIICount{Validator: name, Action: v1.ValidatorAction(cfg.Action)}
		if i := slices.IndexFunc(prev, func(p v1.PIICount) bool { return p.Validator == name }); i >= 0 && prev[i].Action == c.Action {
			c.Records, c.Matches = prev[i].Records, prev[i].Matches
		}
		// A run started before the spec changed counted under the old action: it is not
		// this validator's count any more.
		if i := slices.IndexFunc(run, func(p ingest.PIICount) bool {
			return p.Validator == name && v1.ValidatorAction(p.Action) == c.Action
		}); i >= 0 {
			c.Records += run[i].Records
			c.Matches += run[i].Matches
		}
		if c.Records > 0 {
			out = append(out, c)
		}
	}
	return out
}

// piiFromTotals is status.pii from the store's lifetime totals: per validator in the
// spec, in the spec's order, what it counted under its current action (a validator
// removed from the spec is dropped; one whose action changed shows that action's counts).
func piiFromTotals(specs []v1.Validator, totals []store.PIITotal) []v1.PIICount {
	var out []v1.PIICount
	for _, cfg := range validatorConfigs(specs) {
		name := cfg.Name
		if name == "" {
			name = ingest.DefaultValidatorName(cfg.Type)
		}
		i := slices.IndexFunc(totals, func(p store.PIITotal) bool { return p.Validator == name && p.Action == string(cfg.Action) })
		if i >= 0 && totals[i].Records > 0 {
			out = append(out, v1.PIICount{Validator: name, Action: v1.ValidatorAction(cfg.Action), Records: totals[i].Records, Matches: totals[i].Matches})
		}
	}
	return out
}

// emitPIIEvents raises a Normal event when a run stored files that a Redact or a Flag
// validator matched. Rejections fail their files, which the FilesFailed event reports.
func (r *S3SourceReconciler) emitPIIEvents(src *v1.S3Source, res *discovery.Result) {
	summary := func(action ingest.PIIAction) string {
		var parts []string
		for _, c := range res.PII {
			if c.Action == action {
				parts = append(parts, fmt.Sprintf("%s: %d record(s)", c.Validator, c.Records))
			}
		}
		return strings.Join(parts, ", ")
	}
	if res.FilesRedacted > 0 {
		r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, v1.ReasonPIIRedacted, "Ingest",
			"%d file(s) stored with personal data redacted (%s); see status.pii", res.FilesRedacted, summary(ingest.ActionRedact))
	}
	if res.FilesFlagged > 0 {
		r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, v1.ReasonPIIFlagged, "Ingest",
			"%d file(s) stored with personal data flagged (%s); see status.pii", res.FilesFlagged, summary(ingest.ActionFlag))
	}
}
