package main

import (
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func TestParseIdentitySelector(t *testing.T) {
	allowed := labels.Set{"dataimport.avon.ai/operator-identity": "allowed"}
	tests := []struct {
		selector    string
		matches     labels.Set
		want, isErr bool
	}{
		{"", allowed, false, false}, // empty allows no namespace, not every one
		{"  ", labels.Set{}, false, false},
		{"dataimport.avon.ai/operator-identity=allowed", allowed, true, false},
		{"dataimport.avon.ai/operator-identity=allowed", labels.Set{}, false, false},
		{"tier in (internal)", labels.Set{"tier": "internal"}, true, false},
		{"tier in (", nil, false, true},
	}
	for _, tt := range tests {
		sel, err := parseIdentitySelector(tt.selector)
		if (err != nil) != tt.isErr {
			t.Fatalf("%q: err %v, want error %v", tt.selector, err, tt.isErr)
		}
		if err == nil && sel.Matches(tt.matches) != tt.want {
			t.Errorf("%q matches %v = %v, want %v", tt.selector, tt.matches, !tt.want, tt.want)
		}
	}
}
