package shard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/avon-ai/data-import-operator/internal/shard"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
)

// The electors run against a real kube-apiserver (envtest); time is a fake clock that
// the tests step between explicit ticks.
var (
	env *kube.Env
	k8s client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if env, err = kube.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = env.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

const (
	leaseDuration = 30 * time.Second
	renewDeadline = 20 * time.Second
	renewPeriod   = 10 * time.Second
)

// replica is one elector with a record of what it was told.
type replica struct {
	*shard.Elector
	mu       sync.Mutex
	acquired []int
	released []int
	// heldAtRelease: whether the shard's Lease still named this replica when
	// OnReleasing ran (it must: the Lease goes only after the runs stopped).
	heldAtRelease []bool
}

func newReplica(t *testing.T, c client.Client, ns, id string, shards int, clk *clocktesting.FakeClock) *replica {
	t.Helper()
	return newReplicaAt(t, c, ns, id, "", shards, clk)
}

// newReplicaAt is newReplica publishing addr on its member Lease.
func newReplicaAt(t *testing.T, c client.Client, ns, id, addr string, shards int, clk *clocktesting.FakeClock) *replica {
	t.Helper()
	r := &replica{}
	e, err := shard.New(shard.Options{
		Client: c, Namespace: ns, Identity: id, Address: addr, Shards: shards, Clock: clk,
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RenewPeriod: renewPeriod,
		OnAcquired: func(i int) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.acquired = append(r.acquired, i)
		},
		OnReleasing: func(ctx context.Context, i int) {
			var l coordinationv1.Lease
			err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("data-import-shard-%d", i)}, &l)
			r.mu.Lock()
			defer r.mu.Unlock()
			r.released = append(r.released, i)
			r.heldAtRelease = append(r.heldAtRelease, err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == id)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Elector = e
	return r
}

func namespace(t *testing.T, name string) string {
	t.Helper()
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// tick ticks every replica once, in order, and checks that no shard is served twice.
func tick(t *testing.T, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		if err := r.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		disjoint(t, rs...)
	}
}

// settle ticks until the background hand-backs finished and a round changes nothing.
func settle(t *testing.T, clk *clocktesting.FakeClock, rs ...*replica) {
	t.Helper()
	for range 10 {
		before := servingOf(rs...)
		tick(t, rs...)
		time.Sleep(50 * time.Millisecond) // hand-backs release their Lease in the background
		tick(t, rs...)
		if fmt.Sprint(before) == fmt.Sprint(servingOf(rs...)) {
			return
		}
		clk.Step(time.Second)
	}
	t.Fatalf("no stable assignment: %v", servingOf(rs...))
}

func servingOf(rs ...*replica) [][]int {
	var out [][]int
	for _, r := range rs {
		out = append(out, r.Serving())
	}
	return out
}

func disjoint(t *testing.T, rs ...*replica) {
	t.Helper()
	seen := map[int]int{}
	for n, r := range rs {
		for _, i := range r.Serving() {
			if m, ok := seen[i]; ok {
				t.Fatalf("shard %d served by replicas %d and %d at once", i, m, n)
			}
			seen[i] = n
		}
	}
}

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		key    string
		shards int
	}{{"a/b", 32}, {"tenant-a/orders", 7}, {"x/y", 1}, {"x/y", 0}} {
		got := shard.Of(tc.key, tc.shards)
		if got != shard.Of(tc.key, tc.shards) || got < 0 || (tc.shards > 0 && got >= tc.shards) {
			t.Errorf("Of(%q, %d) = %d", tc.key, tc.shards, got)
		}
	}
	// 3,200 keys over 32 shards: none empty, none more than twice its share.
	counts := make([]int, 32)
	for i := range 3200 {
		counts[shard.Of(fmt.Sprintf("ns-%d/source-%d", i%17, i), 32)]++
	}
	for i, n := range counts {
		if n == 0 || n > 200 {
			t.Errorf("shard %d has %d of 3,200 keys; want about 100", i, n)
		}
	}
}

// One replica takes every shard; a second joins and they split them evenly, each shard
// handed back only after its runs stopped; the second leaves and the first takes all
// again. No shard is ever served by both.
func TestJoinAndLeaveRebalance(t *testing.T) {
	ns := namespace(t, "join-leave")
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	const shards = 8
	a := newReplica(t, k8s, ns, "a", shards, clk)
	tick(t, a)
	if got := a.Serving(); len(got) != shards {
		t.Fatalf("alone, a serves %v; want all %d", got, shards)
	}
	for i := range shards {
		if !a.Owns(keyOf(i, shards)) {
			t.Fatalf("a does not own a key of shard %d", i)
		}
	}

	b := newReplica(t, k8s, ns, "b", shards, clk)
	settle(t, clk, a, b)
	if len(a.Serving()) != shards/2 || len(b.Serving()) != shards/2 {
		t.Fatalf("after b joined: a %v, b %v; want %d each", a.Serving(), b.Serving(), shards/2)
	}
	a.mu.Lock()
	if len(a.released) != shards/2 || slices.Contains(a.heldAtRelease, false) {
		t.Errorf("a handed back %v, still holding the Lease when its runs were stopped: %v", a.released, a.heldAtRelease)
	}
	a.mu.Unlock()
	// b is told of its shards in the background.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		got := slices.Sorted(slices.Values(b.acquired))
		b.mu.Unlock()
		if slices.Equal(got, b.Serving()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b was told of %v, serves %v", got, b.Serving())
		}
	}

	b.Stop(context.Background())
	if len(b.Serving()) != 0 {
		t.Fatalf("b still serves %v after Stop", b.Serving())
	}
	// b's member Lease is gone, so a counts one replica again and takes everything back
	// without waiting for an expiry.
	settle(t, clk, a)
	if len(a.Serving()) != shards {
		t.Fatalf("after b left: a serves %v; want all", a.Serving())
	}
}

// Each replica publishes its address on its member Lease, and every replica can tell who
// holds a key's shard and where it listens: the webhook receiver hands events for a
// source to the replica serving it. A replica that left is nobody's holder.
func TestHolderNamesTheServingReplicaAndItsAddress(t *testing.T) {
	ns := namespace(t, "holders")
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	const shards = 4
	a := newReplicaAt(t, k8s, ns, "a", "10.0.0.1:9292", shards, clk)
	b := newReplicaAt(t, k8s, ns, "b", "10.0.0.2:9292", shards, clk)
	settle(t, clk, a, b)
	addr := map[string]string{"a": "10.0.0.1:9292", "b": "10.0.0.2:9292"}
	for i := range shards {
		key := keyOf(i, shards)
		for _, view := range []struct {
			self string
			r    *replica
		}{{"a", a}, {"b", b}} {
			h := view.r.Holder(key)
			want := "a"
			if b.Owns(key) {
				want = "b"
			}
			if h.Identity != want || h.Address != addr[want] || h.Self != (want == view.self) {
				t.Errorf("shard %d seen from %s: holder %+v; want %s at %s (self %v)", i, view.self, h, want, addr[want], want == view.self)
			}
		}
	}
	var member coordinationv1.Lease
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "data-import-member-b"}, &member); err != nil {
		t.Fatal(err)
	}
	if got := member.Annotations[shard.AnnotationAddress]; got != "10.0.0.2:9292" {
		t.Errorf("b's member Lease publishes %q", got)
	}

	b.Stop(context.Background())
	tick(t, a) // sees b's shards free (and takes them): b holds nothing any more
	for i := range shards {
		if h := a.Holder(keyOf(i, shards)); h.Identity == "b" {
			t.Errorf("shard %d: b left but is still named its holder: %+v", i, h)
		}
	}
}

// A replica that cannot reach the API server stops serving at the renew deadline, and
// the other takes its shards only once their Leases expired, after that.
func TestUnreachableReplicaStopsBeforeOthersTake(t *testing.T) {
	ns := namespace(t, "unreachable")
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	const shards = 4
	var cut sync.Mutex
	down := false
	flaky := interceptor.NewClient(k8sWithWatch(), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			cut.Lock()
			defer cut.Unlock()
			if down {
				return errors.New("connection refused")
			}
			return c.List(ctx, list, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			cut.Lock()
			defer cut.Unlock()
			if down {
				return errors.New("connection refused")
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	a := newReplica(t, flaky, ns, "a", shards, clk)
	b := newReplica(t, k8s, ns, "b", shards, clk)
	settle(t, clk, a, b)
	if len(a.Serving()) != shards/2 {
		t.Fatalf("a serves %v; want %d shards", a.Serving(), shards/2)
	}
	aShards := a.Serving()

	cut.Lock()
	down = true
	cut.Unlock()
	clk.Step(renewPeriod)
	_ = a.Tick(context.Background())
	if len(a.Serving()) != shards/2 {
		t.Fatalf("a dropped its shards before the renew deadline: %v", a.Serving())
	}
	clk.Step(renewDeadline - renewPeriod)
	_ = a.Tick(context.Background())
	if len(a.Serving()) != 0 {
		t.Fatalf("a still serves %v past the renew deadline", a.Serving())
	}
	// b counts a as alive until a's member Lease expires, and must not take a's shards
	// before their Leases expired.
	tick(t, b)
	for _, i := range aShards {
		if slices.Contains(b.Serving(), i) {
			t.Fatalf("b took shard %d before its Lease expired", i)
		}
	}
	clk.Step(leaseDuration)
	tick(t, b)
	if len(b.Serving()) != shards {
		t.Fatalf("b serves %v after a's Leases expired; want all %d", b.Serving(), shards)
	}
}

// Deleting a shard's Lease (an admin, or a test forcing a rebalance) makes its holder
// stop serving it at its next renewal.
func TestDeletedLeaseIsLost(t *testing.T) {
	ns := namespace(t, "deleted")
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	a := newReplica(t, k8s, ns, "a", 2, clk)
	tick(t, a)
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-import-shard-1"}}
	if err := k8s.Delete(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	clk.Step(renewPeriod)
	// One tick loses it, the same tick creates it again: it is free.
	tick(t, a)
	// The runs of a lost shard are stopped in the background.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a.mu.Lock()
		released := slices.Clone(a.released)
		a.mu.Unlock()
		if slices.Contains(released, 1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard 1's runs were not stopped when its Lease was deleted: released %v", released)
		}
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    shard.Options
	}{
		{"no namespace", shard.Options{Client: k8s, Identity: "a", Shards: 2}},
		{"no identity", shard.Options{Client: k8s, Namespace: "x", Shards: 2}},
		{"no shards", shard.Options{Client: k8s, Namespace: "x", Identity: "a"}},
		{"deadline past duration", shard.Options{Client: k8s, Namespace: "x", Identity: "a", Shards: 2, LeaseDuration: time.Second, RenewDeadline: 2 * time.Second, RenewPeriod: time.Second / 2}},
	} {
		if _, err := shard.New(tc.o); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func keyOf(i, shards int) string {
	for n := 0; ; n++ {
		if k := fmt.Sprintf("ns/key-%d", n); shard.Of(k, shards) == i {
			return k
		}
	}
}

func k8sWithWatch() client.WithWatch {
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		panic(err)
	}
	return c
}

// An API server that hangs instead of refusing does not keep a replica serving past the
// renew deadline: a tick gives up within its period, and the next drops stale shards.
func TestHungAPIServerDoesNotBlockTheDeadline(t *testing.T) {
	ns := namespace(t, "hung")
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	hung := false
	c := interceptor.NewClient(k8sWithWatch(), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			mu.Lock()
			h := hung
			mu.Unlock()
			if h {
				<-ctx.Done() // a connection that never answers
				return ctx.Err()
			}
			return c.List(ctx, list, opts...)
		},
	})
	e, err := shard.New(shard.Options{Client: c, Namespace: ns, Identity: "a", Shards: 2, Clock: clk,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RenewPeriod: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.Serving()) != 2 {
		t.Fatalf("serving %v", e.Serving())
	}
	mu.Lock()
	hung = true
	mu.Unlock()
	if err := e.Tick(context.Background()); err == nil {
		t.Fatal("a tick against a hung API server reported no error")
	}
	clk.Step(2 * time.Second)
	_ = e.Tick(context.Background())
	if got := e.Serving(); len(got) != 0 {
		t.Fatalf("still serving %v past the renew deadline with a hung API server", got)
	}
}
