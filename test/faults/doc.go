// Package faults is the fault-injection suite: it runs the real manager binary against a
// real kube-apiserver and etcd (envtest), MinIO and PostgreSQL, kills the manager, MinIO
// or PostgreSQL with real signals at points the failpoints (internal/failpoint, compiled
// into the manager only with -tags failpoints) hold them at, lets the import settle and
// compares the store with a fault-free import of the same objects. The suite lives in
// this package's tests; this file only names the package.
package faults
