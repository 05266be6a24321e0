package controllers

import (
	"slices"
	"testing"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
)

func TestPIIFoldStatus(t *testing.T) {
	email := v1.Validator{Type: v1.ValidatorEmail, Action: v1.ValidatorFlag}
	ticket := v1.Validator{Name: "ticket", Type: v1.ValidatorRegex, Action: v1.ValidatorRedact, Pattern: "T-[0-9]+"}
	tests := []struct {
		name  string
		prev  []v1.PIICount
		specs []v1.Validator
		run   []ingest.PIICount
		want  []v1.PIICount
	}{
		{name: "no validators", want: nil},
		{name: "first run", specs: []v1.Validator{email, ticket},
			run:  []ingest.PIICount{{Validator: "ticket", Action: ingest.ActionRedact, Records: 2, Matches: 3}},
			want: []v1.PIICount{{Validator: "ticket", Action: v1.ValidatorRedact, Records: 2, Matches: 3}}},
		{name: "adds up, in spec order", specs: []v1.Validator{email, ticket},
			prev: []v1.PIICount{{Validator: "ticket", Action: v1.ValidatorRedact, Records: 2, Matches: 3}},
			run:  []ingest.PIICount{{Validator: "ticket", Action: ingest.ActionRedact, Records: 1, Matches: 1}, {Validator: "email", Action: ingest.ActionFlag, Records: 1, Matches: 4}},
			want: []v1.PIICount{{Validator: "email", Action: v1.ValidatorFlag, Records: 1, Matches: 4}, {Validator: "ticket", Action: v1.ValidatorRedact, Records: 3, Matches: 4}}},
		{name: "removed validator dropped", specs: []v1.Validator{email},
			prev: []v1.PIICount{{Validator: "ticket", Action: v1.ValidatorRedact, Records: 2, Matches: 3}}, want: nil},
		{name: "changed action restarts the count", specs: []v1.Validator{{Type: v1.ValidatorEmail, Action: v1.ValidatorReject}},
			prev: []v1.PIICount{{Validator: "email", Action: v1.ValidatorFlag, Records: 5, Matches: 5}},
			run:  []ingest.PIICount{{Validator: "email", Action: ingest.ActionReject, Records: 1, Matches: 1}},
			want: []v1.PIICount{{Validator: "email", Action: v1.ValidatorReject, Records: 1, Matches: 1}}},
		{name: "a run under the old action does not count for the new one", specs: []v1.Validator{{Type: v1.ValidatorEmail, Action: v1.ValidatorReject}},
			run:  []ingest.PIICount{{Validator: "email", Action: ingest.ActionFlag, Records: 2, Matches: 2}},
			want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := foldPII(tt.prev, tt.specs, tt.run); !slices.Equal(got, tt.want) {
				t.Errorf("foldPII = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPIIFromTotals(t *testing.T) {
	email := v1.Validator{Type: v1.ValidatorEmail, Action: v1.ValidatorFlag}
	ticket := v1.Validator{Name: "ticket", Type: v1.ValidatorRegex, Action: v1.ValidatorRedact, Pattern: "T-[0-9]+"}
	totals := []store.PIITotal{
		{Validator: "email", Action: "Flag", Records: 4, Matches: 5},
		{Validator: "email", Action: "Reject", Records: 1, Matches: 1},
		{Validator: "ticket", Action: "Redact", Records: 2, Matches: 3},
		{Validator: "gone", Action: "Flag", Records: 9, Matches: 9},
	}
	tests := []struct {
		name  string
		specs []v1.Validator
		want  []v1.PIICount
	}{
		{"no validators", nil, nil},
		{"in spec order, under the current action", []v1.Validator{ticket, email},
			[]v1.PIICount{{Validator: "ticket", Action: v1.ValidatorRedact, Records: 2, Matches: 3}, {Validator: "email", Action: v1.ValidatorFlag, Records: 4, Matches: 5}}},
		{"another action shows its own counts", []v1.Validator{{Type: v1.ValidatorEmail, Action: v1.ValidatorReject}},
			[]v1.PIICount{{Validator: "email", Action: v1.ValidatorReject, Records: 1, Matches: 1}}},
		{"nothing counted yet", []v1.Validator{{Type: v1.ValidatorEmail, Action: v1.ValidatorRedact}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := piiFromTotals(tt.specs, totals); !slices.Equal(got, tt.want) {
				t.Errorf("piiFromTotals = %+v, want %+v", got, tt.want)
			}
		})
	}
}
