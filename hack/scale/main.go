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
//	go run ./hack/scale --sources 1000 --store postgres           # 1 replica, PostgreSQL
//	go run ./hack/scale --sources 1000 --replicas 2                # 2 replicas, --shards 4
//
// With --replicas > 1 every replica runs with --shards on one PostgreSQL store and the
// report splits the sources and the work (discoveries, files, S3 requests, CPU) by replica.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	replicas     int
	shards       int
	store        string
	// concurrentSources is the manager's --concurrent-sources, for the report.
	concurrentSources int
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
	flag.IntVar(&o.replicas, "replicas", 1, "manager processes; more than one run with --shards on one PostgreSQL store")
	flag.IntVar(&o.shards, "shards", -1, "the managers' --shards (default: 0 with one replica, twice the replicas otherwise)")
	flag.StringVar(&o.store, "store", "", "sqlite or postgres (default: sqlite with one replica, postgres otherwise)")
	flag.Parse()
	if err := o.complete(); err != nil {
		fail(err)
	}

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
		fmt.Fprintln(os.Stderr, "manager logs:", filepath.Join(dir, "manager-*.log"))
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

// complete fills the defaults that depend on other flags and refuses what the manager would.
func (o *options) complete() error {
	if o.replicas < 1 {
		return fmt.Errorf("--replicas %d: at least 1", o.replicas)
	}
	if o.shards < 0 {
		o.shards = 0
		if o.replicas > 1 {
			o.shards = 2 * o.replicas
		}
	}
	if o.store == "" {
		o.store = "sqlite"
		if o.replicas > 1 || o.shards > 0 {
			o.store = "postgres"
		}
	}
	switch {
	case o.store != "sqlite" && o.store != "postgres":
		return fmt.Errorf("--store %q: sqlite or postgres", o.store)
	case o.replicas > 1 && o.shards == 0:
		return fmt.Errorf("--replicas %d needs --shards (only sharded replicas all run discoveries)", o.replicas)
	case o.shards > 0 && o.store != "postgres":
		return fmt.Errorf("--shards needs --store postgres (the manager refuses sharding with SQLite)")
	}
	o.concurrentSources = 4 // the manager's default
	fields := strings.Fields(o.managerFlags)
	for i, f := range fields {
		name, v, hasValue := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if name != "concurrent-sources" {
			continue
		}
		if !hasValue && i+1 < len(fields) {
			v = fields[i+1]
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("--manager-flags: --concurrent-sources %q: %w", v, err)
		}
		o.concurrentSources = n
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}
