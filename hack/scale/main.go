// Command scale is the scale benchmark of issue #12: it runs the real manager binary
// against a real kube-apiserver + etcd (envtest) and a real MinIO, creates N S3Sources
// with a few small files each, and reports in one run what a platform team sizes a
// replica by: convergence time, peak RSS, CPU, API requests by verb and resource, events,
// S3 requests, the status lag of finished runs, refresh latency idle and under load, what
// an idle period costs, and what a restart costs. It is a benchmark, not a test: it
// asserts nothing and does not run in CI.
//
//	go run ./hack/scale --sources 1000
//	go run ./hack/scale --sources 10000 --idle 5m
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

type options struct {
	sources      int
	files        int
	idle         time.Duration
	probes       int
	workers      int
	keep         bool
	jsonPath     string
	managerFlags string
}

func main() {
	var o options
	flag.IntVar(&o.sources, "sources", 1000, "S3Sources to create")
	flag.IntVar(&o.files, "files", 3, "small files per source")
	flag.DurationVar(&o.idle, "idle", 2*time.Minute, "idle sample after convergence; API writes and S3 calls are scaled to an hour")
	flag.IntVar(&o.probes, "probes", 20, "sources whose refresh latency is measured, idle and under load")
	flag.IntVar(&o.workers, "workers", 16, "parallel creates and uploads")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (store, logs)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	flag.StringVar(&o.managerFlags, "manager-flags", "", "extra manager flags, space separated")
	flag.Parse()

	ctrllog.SetLogger(logr.Discard())
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "data-import-scale-")
	if err != nil {
		fail(err)
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	b := &bench{opts: o, dir: dir}
	rep, err := b.run(ctx)
	b.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		fmt.Fprintln(os.Stderr, "manager log:", filepath.Join(dir, "manager.log"))
		os.Exit(1)
	}
	rep.print(os.Stdout)
	if o.jsonPath != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonPath, data, 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}
