//go:build !failpoints

package failpoint

import (
	"strings"
	"testing"
)

// Without the build tag the hooks are inert, whatever the environment says.
func TestHooksAreInertWithoutTag(t *testing.T) {
	t.Setenv(EnvName, Commit)
	t.Setenv(EnvDir, t.TempDir())
	Inject(Commit, "any")
	r := strings.NewReader("x")
	if Reader(Download, "any", r) != r {
		t.Fatal("Reader wrapped its reader in a build without failpoints")
	}
}
