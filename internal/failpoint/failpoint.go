// Package failpoint names the points where the fault-injection suite (test/faults) stops
// the manager to kill it, MinIO or PostgreSQL at a known moment. The hooks do something
// only in a binary built with -tags failpoints; in every other build they are empty
// functions the compiler inlines away, so the production binary contains nothing of them.
//
// A failpoint-enabled manager reads three environment variables:
//
//	DATA_IMPORT_FAILPOINT        the name of the one point to arm (Download, Commit, RunFinished)
//	DATA_IMPORT_FAILPOINT_MATCH  optional: fire only when the point's detail (an object key,
//	                             a source) contains this string
//	DATA_IMPORT_FAILPOINT_DIR    where to signal: the first hit writes NAME.hit (holding the
//	                             detail) and waits until NAME.release exists
//
// The point fires once per process; later hits pass. Waiting for NAME.release that never
// comes is how a test holds the process at the point until it kills it.
package failpoint

// The points.
const (
	// Download fires in a download's body after its first bytes reached the spool file:
	// the detail is the object key.
	Download = "download"
	// Commit fires inside a file's store transaction, after every row of it was written
	// and before COMMIT: the detail is the object key.
	Commit = "commit"
	// RunFinished fires when a discovery run has returned (every file committed or rolled
	// back) and before its result is folded into status: the detail is "namespace/name".
	RunFinished = "run-finished"
)

// Environment variables read by a failpoint-enabled binary.
const (
	EnvName  = "DATA_IMPORT_FAILPOINT"
	EnvMatch = "DATA_IMPORT_FAILPOINT_MATCH"
	EnvDir   = "DATA_IMPORT_FAILPOINT_DIR"
)

// HitFile and ReleaseFile are the signal files of point name in the signal directory.
func HitFile(name string) string     { return name + ".hit" }
func ReleaseFile(name string) string { return name + ".release" }
