package controllers

import (
	"errors"
	"fmt"
	"testing"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
)

// TestRunFailureReason: a failed run's Ready reason names what failed. A store outage is
// StoreError (the bucket is fine; nothing is stalled), not DiscoveryFailed.
func TestRunFailureReason(t *testing.T) {
	src := &v1.S3Source{Spec: v1.S3SourceSpec{Bucket: "b", Prefix: "p/"}}
	tests := []struct {
		name        string
		err         error
		wantReason  string
		wantStalled bool
	}{
		{"bucket denied", &bucket.Error{Reason: bucket.ReasonAccessDenied, Message: "denied"}, bucket.ReasonAccessDenied, true},
		{"store unreachable", fmt.Errorf("committing p/a.json: %w", errors.Join(discovery.ErrStore, errors.New("connection refused"))), v1.ReasonStoreError, false},
		{"anything else", errors.New("boom"), v1.ReasonDiscoveryFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := runFailure(src, &discovery.Result{Err: tt.err})
			if f.reason != tt.wantReason || f.stalled != tt.wantStalled {
				t.Errorf("runFailure = %s (stalled %v), want %s (stalled %v)", f.reason, f.stalled, tt.wantReason, tt.wantStalled)
			}
		})
	}
}
