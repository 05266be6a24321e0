package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/avon-ai/data-import-operator/internal/shard"
	"github.com/avon-ai/data-import-operator/internal/testsupport/proc"
)

// leaseNamespace holds the shard and member Leases (the manager's own namespace in a
// cluster: POD_NAMESPACE).
const leaseNamespace = "scale-system"

// replica is one manager process. With --replicas > 1 every replica runs with --shards on
// the one PostgreSQL store, as the postgres-sharded overlay deploys them.
type replica struct {
	id      string // POD_NAME: its identity in the shard Leases
	proc    *proc.Process
	metrics string // its /metrics URL
	probes  string // its /readyz URL
	starts  int
}

// startManagers starts every replica (again, after a stop) and waits until each is ready
// and, when sharded, until the shards are split evenly between them: a replica starting
// alone would otherwise take every shard and hand half back once the other joins.
func (b *bench) startManagers(ctx context.Context) error {
	if b.mgrs == nil {
		for i := range b.opts.replicas {
			b.mgrs = append(b.mgrs, &replica{id: fmt.Sprintf("replica-%d", i)})
		}
	}
	errs := make([]error, len(b.mgrs))
	var wg sync.WaitGroup
	for i, r := range b.mgrs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = b.startReplica(ctx, r) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if b.opts.shards == 0 {
		return nil
	}
	start := time.Now()
	for {
		held, err := b.holders(ctx)
		if err != nil {
			return err
		}
		if b.even(held) {
			b.shardSettle = append(b.shardSettle, time.Since(start).Seconds())
			return nil
		}
		if time.Since(start) > 3*time.Minute {
			return fmt.Errorf("shards not split evenly after 3m: %v", held)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *bench) startReplica(ctx context.Context, r *replica) error {
	metrics, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	probes, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	// A spool directory per replica, as each pod has its own emptyDir.
	spool := filepath.Join(b.dir, "spool-"+r.id)
	if err := os.MkdirAll(spool, 0o750); err != nil {
		return err
	}
	args := []string{"--store", b.dsn,
		"--metrics-bind-address", metrics, "--health-probe-bind-address", probes, "--receiver-bind-address", "0",
		"--allowed-endpoints", b.proxy.URL, "--spool-dir", spool, "--max-file-size", "10M"}
	if b.opts.shards > 0 {
		args = append(args, "--shards", strconv.Itoa(b.opts.shards))
	}
	if b.opts.managerFlags != "" {
		args = append(args, strings.Fields(b.opts.managerFlags)...)
	}
	logPath := filepath.Join(b.dir, fmt.Sprintf("manager-%s-%d.log", r.id, r.starts))
	r.starts++
	p, err := proc.Start("manager "+r.id, logPath, []string{"KUBECONFIG=" + b.kubeconfig, "POD_NAME=" + r.id, "POD_NAMESPACE=" + leaseNamespace},
		b.managerBin, args...)
	if err != nil {
		return err
	}
	r.proc, r.metrics, r.probes = p, "http://"+metrics+"/metrics", "http://"+probes+"/readyz"
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return p.WaitHTTP(wctx, r.probes)
}

// stopManagers stops every replica at once (SIGTERM: each hands its shards back).
func (b *bench) stopManagers() error {
	errs := make([]error, len(b.mgrs))
	var wg sync.WaitGroup
	for i, r := range b.mgrs {
		if r.proc == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.proc.Stop(time.Minute) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// exited names a replica that exited, if any.
func (b *bench) exited() error {
	for _, r := range b.mgrs {
		if r.proc != nil && r.proc.Exited() {
			return fmt.Errorf("manager %s exited; see %s", r.id, r.proc.Log())
		}
	}
	return nil
}

// holders maps each shard to the replica holding its Lease (absent: not held).
func (b *bench) holders(ctx context.Context) (map[int]string, error) {
	out := map[int]string{}
	if b.opts.shards == 0 {
		return out, nil
	}
	var leases coordinationv1.LeaseList
	if err := b.cl.List(ctx, &leases, client.InNamespace(leaseNamespace), client.MatchingLabels{shard.LabelRole: "shard"}); err != nil {
		return nil, fmt.Errorf("shard Leases: %w", err)
	}
	for _, l := range leases.Items {
		i, err := strconv.Atoi(l.Name[strings.LastIndexByte(l.Name, '-')+1:])
		if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			continue
		}
		out[i] = *l.Spec.HolderIdentity
	}
	return out, nil
}

// even reports whether every shard is held and each replica holds its share.
func (b *bench) even(held map[int]string) bool {
	if len(held) < b.opts.shards {
		return false
	}
	per := map[string]int{}
	for _, id := range held {
		per[id]++
	}
	share := b.opts.shards / len(b.mgrs)
	for _, r := range b.mgrs {
		if n := per[r.id]; n < share || n > share+1 {
			return false
		}
	}
	return true
}

// ownerOf is the replica serving source name (in the benchmark's namespace) by the shard
// Leases held at one moment; unsharded, the one replica.
func (b *bench) ownerOf(name string, held map[int]string) string {
	if b.opts.shards == 0 {
		return b.mgrs[0].id
	}
	if id, ok := held[shard.Of(namespace+"/"+name, b.opts.shards)]; ok {
		return id
	}
	return "(no holder)"
}

// waitSettled waits until every restarted replica reconciled every source once (a replica
// reconciles the sources of other shards too, returning at once) and its queue is empty.
func (b *bench) waitSettled(ctx context.Context, since time.Time) error {
	for {
		settled := 0
		var state []string
		for _, r := range b.mgrs {
			fams, err := scrape(ctx, http.DefaultClient, r.metrics)
			if err != nil {
				return err
			}
			reconciled := 0.0
			for _, v := range sumBy(fams, "controller_runtime_reconcile_total", map[string]string{"controller": "s3source"}, "result") {
				reconciled += v
			}
			depth := value(fams, "workqueue_depth", map[string]string{"name": "s3source"})
			if reconciled >= float64(b.opts.sources) && depth == 0 {
				settled++
			}
			state = append(state, fmt.Sprintf("%s: %v reconciles, queue depth %v", r.id, reconciled, depth))
		}
		if settled == len(b.mgrs) {
			return nil
		}
		if time.Since(since) > 30*time.Minute {
			return fmt.Errorf("after 30m: %s", strings.Join(state, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
