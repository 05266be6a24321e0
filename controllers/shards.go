package controllers

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/shard"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// Sharding is a shard elector (internal/shard.Elector), run by the manager.
type Sharding interface {
	manager.Runnable
	// Owns reports whether this replica serves the source "namespace/name".
	Owns(key string) bool
	// Shards is the number of shards.
	Shards() int
}

// setupShards fences runs when the store can, and in sharded mode runs the elector and
// the controller on every replica (not only the leader); it returns the controller's
// options.
func (r *S3SourceReconciler) setupShards(mgr manager.Manager, opts controller.Options) (controller.Options, error) {
	r.runs.fencer, _ = r.Store.(store.Fencer)
	r.shardEvents = make(chan event.GenericEvent, 1024)
	if r.Shards == nil {
		return opts, nil
	}
	if r.runs.fencer == nil {
		// Without fences two replicas could run one source while a shard moves.
		return opts, errors.New("sharding needs a store shared by processes with source fences (PostgreSQL)")
	}
	r.runs.owns = func(key types.NamespacedName) bool { return r.Shards.Owns(key.String()) }
	opts.NeedLeaderElection = ptr.To(false)
	return opts, mgr.Add(r.Shards)
}

// ShardAcquired enqueues the sources of a shard this replica now serves.
func (r *S3SourceReconciler) ShardAcquired(i int) {
	var list v1.S3SourceList
	if err := r.List(context.Background(), &list); err != nil {
		// Their next event or resync reconciles them.
		log.Log.Error(err, "listing the S3Sources of an acquired shard", "shard", i)
		return
	}
	for k := range list.Items {
		if src := &list.Items[k]; shard.Of(client.ObjectKeyFromObject(src).String(), r.Shards.Shards()) == i {
			r.shardEvents <- event.GenericEvent{Object: src}
		}
	}
}

// ShardReleasing stops the runs of a shard this replica no longer serves and waits for
// them, so the replica taking it over never runs a source this one still runs.
func (r *S3SourceReconciler) ShardReleasing(ctx context.Context, i int) {
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	n := r.Shards.Shards()
	r.runs.stopWhere(ctx, func(key types.NamespacedName) bool { return shard.Of(key.String(), n) == i })
	// A source's series live on the replica serving it: left here they would count twice
	// in sums over replicas. The new owner restores its last success from status.
	var list v1.S3SourceList
	if err := r.List(ctx, &list); err != nil {
		log.Log.Error(err, "listing the S3Sources of a released shard to drop their metrics", "shard", i)
		return
	}
	for k := range list.Items {
		if src := &list.Items[k]; shard.Of(client.ObjectKeyFromObject(src).String(), n) == i {
			r.Metrics.forget(src)
		}
	}
}

// fenceSource holds the source's fence, when the store has fences, so that no run of it
// in another process (a replica that served it before, still finishing a commit) writes
// after what the caller does; it fails while such a run goes on.
func (r *S3SourceReconciler) fenceSource(ctx context.Context, key types.NamespacedName) (release func(), err error) {
	if r.runs.fencer == nil {
		return func() {}, nil
	}
	f, ok, err := r.runs.fencer.TryFence(ctx, key.String())
	if err != nil {
		return nil, fmt.Errorf("fencing %s: %w", key, err)
	}
	if !ok {
		return nil, fmt.Errorf("another replica is still running the discovery of %s; retrying", key)
	}
	return f.Release, nil
}

// notOwned: another replica serves this source; nothing of it may run here.
func (r *S3SourceReconciler) notOwned(ctx context.Context, key types.NamespacedName) {
	stopCtx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	r.runs.stop(stopCtx, key)
}

// dropMetricsIfHandedBack runs at the end of a reconcile of an owned source: when its
// shard was handed back meanwhile, the series this reconcile set could be set after
// ShardReleasing dropped them, and must go too.
func (r *S3SourceReconciler) dropMetricsIfHandedBack(key types.NamespacedName) {
	if !r.Shards.Owns(key.String()) {
		r.Metrics.forget(&v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
	}
}
