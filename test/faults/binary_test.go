package faults

import (
	"os/exec"
	"strings"
	"testing"
)

// The production build carries no failpoint: the hooks compile to nothing without
// -tags failpoints. The failpoint build, which the suite relies on, does carry them.
func TestProductionBinaryHasNoFailpoints(t *testing.T) {
	symbols := func(bin string) int {
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm %s: %v", bin, err)
		}
		return strings.Count(string(out), "internal/failpoint.")
	}
	if n := symbols(w.manager); n != 0 {
		t.Errorf("the production manager holds %d symbols of internal/failpoint, want none", n)
	}
	if n := symbols(w.faulty); n == 0 {
		t.Error("the failpoint build holds no symbol of internal/failpoint: the suite could not hold the manager anywhere")
	}
}
