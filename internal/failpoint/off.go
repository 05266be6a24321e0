//go:build !failpoints

package failpoint

import "io"

// Inject does nothing: this binary was built without -tags failpoints.
func Inject(string, string) {}

// Reader returns r: this binary was built without -tags failpoints.
func Reader(_, _ string, r io.Reader) io.Reader { return r }
