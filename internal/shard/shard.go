// Package shard divides keys between the replicas of a manager with nothing but
// coordination.k8s.io Leases, so several replicas share the work and adding or removing
// one rebalances it without a restart.
//
// A key belongs to one of a fixed number of shards, Of(key, shards). Each shard is a
// Lease "<prefix>-shard-<i>"; a replica serves the keys of the shards whose Lease it
// holds. Each replica also renews a member Lease "<prefix>-member-<identity>", and the
// live member Leases count the replicas, so every replica aims at ceil(shards/replicas)
// shards: it takes free or expired shards while it holds fewer and hands back its
// surplus when a new replica appears. A replica that stops hands all its shards back.
//
// Handing a shard over never lets two replicas serve it at once as far as the Leases
// can tell: a replica stops serving a shard (Owns turns false, then OnReleasing waits
// until nothing of it runs here) before it releases the Lease, and keeps renewing the
// Lease meanwhile. A replica that cannot renew for RenewDeadline stops serving on its
// own, before others may take the Lease at LeaseDuration. Leases cannot fence a replica
// that is paused or partitioned past that; callers that write shared state add a fence
// of their own there (the data import operator holds a PostgreSQL advisory lock per
// source while it runs).
//
// Expiry is judged, as client-go's leader election does, by when this replica last saw
// a Lease change on its own clock, never by the renew time another replica wrote, so
// clock skew between nodes does not matter.
package shard

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels of the Leases, so one List reads them all.
const (
	LabelGroup = "dataimport.avon.ai/shard-group"
	LabelRole  = "dataimport.avon.ai/lease-role"
	roleShard  = "shard"
	roleMember = "member"
	// AnnotationAddress on a member Lease is the host:port other replicas reach this
	// replica's webhook receiver at (Options.Address).
	AnnotationAddress = "dataimport.avon.ai/receiver-address"
)

// DefaultLeaseDuration is Options.LeaseDuration's default; the renew deadline and period
// default to two thirds and one third of the lease. Every replica writes (shards/replicas
// + 1) Leases each RenewPeriod, so the API server takes (Shards + replicas) / RenewPeriod
// writes a second in all: 4 a second with 32 shards, 4 replicas and the defaults.
const DefaultLeaseDuration = 30 * time.Second

// Of is the shard of key among shards (FNV-1a, so every replica and release agrees).
func Of(key string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(shards))
}

// Options configure an Elector.
type Options struct {
	// Client reads and writes Leases; it should not be a cached client (a cache would
	// watch every Lease of the cluster and answer with stale ones).
	Client client.Client
	// Namespace holds the Leases (the operator's own).
	Namespace string
	// Prefix names the Leases and labels them as one group: "<prefix>-shard-<i>".
	Prefix string
	// Identity of this replica (its pod name); unique among the replicas.
	Identity string
	// Address, when set, is published on this replica's member Lease (AnnotationAddress)
	// so that other replicas can hand it requests for the keys it serves (see Holder).
	Address string
	// Shards is the fixed number of shards; every replica must use the same.
	Shards int
	// LeaseDuration is how long a Lease not seen renewed stays held; RenewDeadline (less)
	// is how long this replica keeps serving a shard it could not renew; RenewPeriod
	// (less again) is how often it renews and looks for work.
	LeaseDuration, RenewDeadline, RenewPeriod time.Duration
	Clock                                     clock.WithTicker
	// OnAcquired is called, in a goroutine of its own, once a shard is served here (Owns
	// is true for its keys): enqueueing thousands of keys must not hold up renewals.
	OnAcquired func(shard int)
	// OnReleasing is called once a shard is no longer served (Owns is false for its
	// keys); it returns when nothing of the shard runs here any more. Only then is the
	// Lease released.
	OnReleasing func(ctx context.Context, shard int)
	Log         logr.Logger
}

// Elector holds this replica's shards. Start it as a manager Runnable on every replica.
type Elector struct {
	o Options

	mu sync.RWMutex
	// serving are the shards whose keys this replica serves.
	serving map[int]bool
	// held are the shard Leases this replica holds (served or being released), with
	// the Lease last written and when.
	held map[int]*heldLease
	// seen is, per Lease name, the version last read and when this replica saw it change.
	seen map[string]observation
	// holders is, as of the last tick's list, the replica holding each shard and the
	// address each live member published (see Holder).
	holders   map[int]string
	addresses map[string]string

	// releasing counts the shards being handed back; Start waits for them.
	releasing sync.WaitGroup
}

type heldLease struct {
	lease   *coordinationv1.Lease
	renewed time.Time
	// releasing: the shard is no longer served and its Lease goes once its runs stopped.
	releasing bool
}

type observation struct {
	version string
	at      time.Time
}

// New checks o and fills in its defaults.
func New(o Options) (*Elector, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("shard: no client")
	case o.Namespace == "":
		return nil, errors.New("shard: no namespace for the Leases (set POD_NAMESPACE)")
	case o.Identity == "":
		return nil, errors.New("shard: no identity (set POD_NAME)")
	case o.Shards < 1:
		return nil, fmt.Errorf("shard: %d shards; want at least 1", o.Shards)
	}
	if o.Prefix == "" {
		o.Prefix = "data-import"
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = o.LeaseDuration * 2 / 3
	}
	if o.RenewPeriod == 0 {
		o.RenewPeriod = o.LeaseDuration / 3
	}
	if o.RenewPeriod >= o.RenewDeadline || o.RenewDeadline >= o.LeaseDuration {
		return nil, fmt.Errorf("shard: want renew period %s < renew deadline %s < lease duration %s", o.RenewPeriod, o.RenewDeadline, o.LeaseDuration)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.OnAcquired == nil {
		o.OnAcquired = func(int) {}
	}
	if o.OnReleasing == nil {
		o.OnReleasing = func(context.Context, int) {}
	}
	return &Elector{o: o, serving: map[int]bool{}, held: map[int]*heldLease{}, seen: map[string]observation{},
		holders: map[int]string{}, addresses: map[string]string{}}, nil
}

// Wire sets the callbacks after New, for a caller whose handlers need the elector
// first. Call it before Start.
func (e *Elector) Wire(onAcquired func(shard int), onReleasing func(ctx context.Context, shard int)) {
	e.o.OnAcquired, e.o.OnReleasing = onAcquired, onReleasing
}

// Shards is the number of shards.
func (e *Elector) Shards() int { return e.o.Shards }

// Owns reports whether this replica serves key now.
func (e *Elector) Owns(key string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.serving[Of(key, e.o.Shards)]
}

// Holder is who holds a key's shard, as far as this replica knows.
type Holder struct {
	// Identity of the holding replica; "" when the shard is free or its Lease expired.
	Identity string
	// Address the holder published (Options.Address); "" when none.
	Address string
	// Self: this replica holds the shard (it may be handing it back: see Owns).
	Self bool
}

// Holder reports which replica holds key's shard as of the last tick (at most a
// RenewPeriod old): a caller handing it work must expect the holder to have moved on.
func (e *Elector) Holder(key string) Holder {
	i := Of(key, e.o.Shards)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if _, mine := e.held[i]; mine {
		return Holder{Identity: e.o.Identity, Address: e.o.Address, Self: true}
	}
	id := e.holders[i]
	if id == "" || id == e.o.Identity {
		// Listed as ours but no longer held: released since the last tick.
		return Holder{}
	}
	return Holder{Identity: id, Address: e.addresses[id]}
}

// Serving lists the shards served here, in order.
func (e *Elector) Serving() []int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []int
	for i := range e.serving {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// NeedLeaderElection: every replica runs an elector; that is the point.
func (e *Elector) NeedLeaderElection() bool { return false }

// Start ticks every RenewPeriod until ctx ends, then hands every shard back (stopping
// their runs first) and removes this replica's member Lease.
func (e *Elector) Start(ctx context.Context) error {
	t := e.o.Clock.NewTicker(e.o.RenewPeriod)
	defer t.Stop()
	for {
		if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.o.Log.Error(err, "shard leases")
		}
		select {
		case <-ctx.Done():
			e.Stop(context.WithoutCancel(ctx))
			return nil
		case <-t.C():
		}
	}
}

// Stop hands every shard back and removes the member Lease.
func (e *Elector) Stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.o.LeaseDuration)
	defer cancel()
	e.mu.Lock()
	var all []int
	for i, h := range e.held {
		if !h.releasing {
			all = append(all, i)
		}
	}
	e.mu.Unlock()
	for _, i := range all {
		e.handBack(ctx, i, true)
	}
	e.releasing.Wait()
	member := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: e.o.Namespace, Name: e.memberName(e.o.Identity)}}
	if err := client.IgnoreNotFound(e.o.Client.Delete(ctx, member)); err != nil {
		e.o.Log.Error(err, "removing the member lease")
	}
}

// Tick renews what this replica holds, counts the replicas, hands back its surplus and
// takes free shards up to its share. Tests call it directly with a fake clock.
func (e *Elector) Tick(ctx context.Context) error {
	now := e.o.Clock.Now()
	// A hung API call must not keep this replica serving past the renew deadline:
	// a tick ends within a period, and stale shards are dropped first.
	e.dropStale(ctx, now)
	ctx, cancel := context.WithTimeout(ctx, e.o.RenewPeriod)
	defer cancel()
	memberErr := e.renewMember(ctx, now)
	var list coordinationv1.LeaseList
	if err := e.o.Client.List(ctx, &list, client.InNamespace(e.o.Namespace), client.MatchingLabels{LabelGroup: e.o.Prefix}); err != nil {
		e.dropStale(ctx, e.o.Clock.Now()) // the List may have hung past the deadline
		return fmt.Errorf("listing leases: %w", err)
	}
	shards := map[int]*coordinationv1.Lease{}
	members := map[string]bool{e.o.Identity: true}
	holders, addresses := map[int]string{}, map[string]string{}
	for i := range list.Items {
		l := &list.Items[i]
		e.observe(l, now)
		switch l.Labels[LabelRole] {
		case roleShard:
			if n, ok := e.shardOf(l.Name); ok {
				shards[n] = l
				if h := holder(l); h != "" && !e.expired(l, now) {
					holders[n] = h
				}
			}
		case roleMember:
			if h := holder(l); h != "" && !e.expired(l, now) {
				members[h] = true
				addresses[h] = l.Annotations[AnnotationAddress]
			}
		}
	}
	e.mu.Lock()
	e.holders, e.addresses = holders, addresses
	e.mu.Unlock()
	target := (e.o.Shards + len(members) - 1) / len(members)

	var errs []error
	if memberErr != nil {
		errs = append(errs, memberErr)
	}
	// Renew what is held; a Lease gone or taken was lost.
	e.mu.Lock()
	heldNow := make([]int, 0, len(e.held))
	for i := range e.held {
		heldNow = append(heldNow, i)
	}
	e.mu.Unlock()
	slices.Sort(heldNow)
	for _, i := range heldNow {
		l := shards[i]
		if l == nil || holder(l) != e.o.Identity {
			e.lose(ctx, i, "the lease was removed or taken")
			continue
		}
		if err := e.renew(ctx, i, l, now); err != nil {
			errs = append(errs, err)
		}
	}
	e.dropStale(ctx, e.o.Clock.Now()) // renewals that hung must not extend serving

	// Hand back the surplus, the shards this replica ranks lowest first.
	e.mu.Lock()
	var active []int
	for i, h := range e.held {
		if !h.releasing {
			active = append(active, i)
		}
	}
	e.mu.Unlock()
	if surplus := len(active) - target; surplus > 0 {
		slices.SortFunc(active, func(a, b int) int { return compareRank(e.rank(a), e.rank(b)) })
		for _, i := range active[:surplus] {
			e.handBack(ctx, i, false)
		}
		return errors.Join(errs...)
	}

	// Take free shards up to the share, those this replica ranks highest first, so
	// replicas reach for different shards and rarely conflict.
	var free []int
	for i := 0; i < e.o.Shards; i++ {
		e.mu.RLock()
		_, mine := e.held[i]
		e.mu.RUnlock()
		if mine {
			continue
		}
		if l := shards[i]; l == nil || holder(l) == "" || e.expired(l, now) {
			free = append(free, i)
		}
	}
	slices.SortFunc(free, func(a, b int) int { return compareRank(e.rank(b), e.rank(a)) })
	for _, i := range free {
		if len(active) >= target {
			break
		}
		ok, err := e.acquire(ctx, i, shards[i], now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			active = append(active, i)
			go e.o.OnAcquired(i)
		}
	}
	return errors.Join(errs...)
}

// renewMember writes this replica's member Lease.
func (e *Elector) renewMember(ctx context.Context, now time.Time) error {
	name := e.memberName(e.o.Identity)
	l := &coordinationv1.Lease{}
	err := e.o.Client.Get(ctx, client.ObjectKey{Namespace: e.o.Namespace, Name: name}, l)
	switch {
	case apierrors.IsNotFound(err):
		l = e.newLease(name, roleMember)
		e.stamp(l, now, true)
		e.publishAddress(l)
		err = e.o.Client.Create(ctx, l)
	case err == nil:
		e.stamp(l, now, holder(l) != e.o.Identity)
		e.publishAddress(l)
		err = e.o.Client.Update(ctx, l)
	}
	if err != nil {
		return fmt.Errorf("renewing member lease %s: %w", name, err)
	}
	return nil
}

// publishAddress sets (or clears) the address annotation of this replica's member Lease.
func (e *Elector) publishAddress(l *coordinationv1.Lease) {
	if e.o.Address == "" {
		delete(l.Annotations, AnnotationAddress)
		return
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[AnnotationAddress] = e.o.Address
}

// renew writes a held shard Lease; the resourceVersion makes a Lease taken meanwhile a
// conflict, never an overwrite.
func (e *Elector) renew(ctx context.Context, i int, l *coordinationv1.Lease, now time.Time) error {
	l = l.DeepCopy()
	e.stamp(l, now, false)
	if err := e.o.Client.Update(ctx, l); err != nil {
		if apierrors.IsNotFound(err) {
			e.lose(ctx, i, "the lease was removed")
			return nil
		}
		if apierrors.IsConflict(err) {
			return nil // changed since the list (released, or deleted and created again): the next tick sees it
		}
		return fmt.Errorf("renewing %s: %w", l.Name, err)
	}
	e.mu.Lock()
	if h := e.held[i]; h != nil {
		h.lease, h.renewed = l, now
	}
	e.mu.Unlock()
	e.observe(l, now)
	return nil
}

// acquire takes shard i, creating its Lease or taking a free or expired one; a conflict
// (another replica was faster) is not an error.
func (e *Elector) acquire(ctx context.Context, i int, l *coordinationv1.Lease, now time.Time) (bool, error) {
	var err error
	if l == nil {
		l = e.newLease(e.shardName(i), roleShard)
		e.stamp(l, now, true)
		err = e.o.Client.Create(ctx, l)
	} else {
		l = l.DeepCopy()
		e.stamp(l, now, true)
		err = e.o.Client.Update(ctx, l)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquiring %s: %w", l.Name, err)
	}
	e.observe(l, now)
	e.mu.Lock()
	e.held[i] = &heldLease{lease: l, renewed: now}
	e.serving[i] = true
	e.mu.Unlock()
	e.o.Log.Info("acquired shard", "shard", i)
	return true, nil
}

// handBack stops serving shard i, waits in the background until its runs stopped, then
// releases its Lease (renewed meanwhile by Tick); wait makes it wait here instead.
func (e *Elector) handBack(ctx context.Context, i int, wait bool) {
	e.mu.Lock()
	h := e.held[i]
	if h == nil || h.releasing {
		e.mu.Unlock()
		return
	}
	h.releasing = true
	delete(e.serving, i)
	e.mu.Unlock()
	e.o.Log.Info("handing back shard", "shard", i)
	ctx = context.WithoutCancel(ctx) // a shutdown must not cut the wait for runs short
	e.releasing.Add(1)
	release := func() {
		defer e.releasing.Done()
		e.o.OnReleasing(ctx, i)
		e.mu.Lock()
		h := e.held[i]
		delete(e.held, i)
		e.mu.Unlock()
		if h == nil {
			return // lost meanwhile: nothing to release
		}
		if err := e.release(ctx, h.lease.DeepCopy()); err != nil {
			e.o.Log.Error(err, "releasing shard lease; it expires instead", "shard", i)
		}
	}
	if wait {
		release()
		return
	}
	go release()
}

// release empties a Lease this replica holds, so others may take it at once. A renewal
// that raced it leaves a newer version: read that one and try again.
func (e *Elector) release(ctx context.Context, l *coordinationv1.Lease) error {
	for attempt := 0; ; attempt++ {
		if holder(l) != e.o.Identity {
			return nil
		}
		l.Spec.HolderIdentity = nil
		l.Spec.AcquireTime, l.Spec.RenewTime = nil, nil
		one := int32(1)
		l.Spec.LeaseDurationSeconds = &one
		err := e.o.Client.Update(ctx, l)
		if !apierrors.IsConflict(err) || attempt == 2 {
			return client.IgnoreNotFound(err)
		}
		if err := e.o.Client.Get(ctx, client.ObjectKeyFromObject(l), l); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
}

// lose forgets shard i without touching its Lease (it is gone, taken, or could not be
// renewed) and stops what runs of it, in the background.
func (e *Elector) lose(ctx context.Context, i int, why string) {
	e.mu.Lock()
	h := e.held[i]
	delete(e.held, i)
	wasServing := e.serving[i]
	delete(e.serving, i)
	e.mu.Unlock()
	if h == nil {
		return
	}
	e.o.Log.Info("lost shard", "shard", i, "why", why)
	ctx = context.WithoutCancel(ctx)
	if wasServing {
		e.releasing.Add(1)
		go func() {
			defer e.releasing.Done()
			e.o.OnReleasing(ctx, i)
		}()
	}
}

// dropStale loses the shards not renewed for RenewDeadline: others may take them at
// LeaseDuration, and this replica must have stopped serving them by then.
func (e *Elector) dropStale(ctx context.Context, now time.Time) {
	e.mu.RLock()
	var stale []int
	for i, h := range e.held {
		if now.Sub(h.renewed) >= e.o.RenewDeadline {
			stale = append(stale, i)
		}
	}
	e.mu.RUnlock()
	for _, i := range stale {
		e.lose(ctx, i, "not renewed within the renew deadline")
	}
}

// observe records when this replica saw l change.
func (e *Elector) observe(l *coordinationv1.Lease, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if o, ok := e.seen[l.Name]; !ok || o.version != l.ResourceVersion {
		e.seen[l.Name] = observation{version: l.ResourceVersion, at: now}
	}
}

// expired: l was not seen to change for its lease duration.
func (e *Elector) expired(l *coordinationv1.Lease, now time.Time) bool {
	e.mu.RLock()
	o := e.seen[l.Name]
	e.mu.RUnlock()
	d := e.o.LeaseDuration
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return !now.Before(o.at.Add(d))
}

func (e *Elector) stamp(l *coordinationv1.Lease, now time.Time, acquire bool) {
	id := e.o.Identity
	secs := int32((e.o.LeaseDuration + time.Second - 1) / time.Second)
	t := metav1.NewMicroTime(now)
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &id, &secs, &t
	if acquire {
		l.Spec.AcquireTime = &t
		n := int32(1)
		if l.Spec.LeaseTransitions != nil {
			n = *l.Spec.LeaseTransitions + 1
		}
		l.Spec.LeaseTransitions = &n
	}
}

func (e *Elector) newLease(name, role string) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Namespace: e.o.Namespace, Name: name,
		Labels: map[string]string{LabelGroup: e.o.Prefix, LabelRole: role},
	}}
}

func (e *Elector) shardName(i int) string      { return e.o.Prefix + "-shard-" + strconv.Itoa(i) }
func (e *Elector) memberName(id string) string { return e.o.Prefix + "-member-" + id }

func (e *Elector) shardOf(name string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, e.o.Prefix+"-shard-"))
	if err != nil || n < 0 || n >= e.o.Shards || e.shardName(n) != name {
		return 0, false
	}
	return n, true
}

// rank is this replica's preference for shard i (rendezvous hashing).
func (e *Elector) rank(i int) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(e.o.Identity + "/" + strconv.Itoa(i)))
	return h.Sum64()
}

func compareRank(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
