package controllers

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/avon-ai/data-import-operator/internal/receiver"
)

// The queue is a set per source: duplicates add nothing; past the bound it becomes one
// full discovery; a source is woken once until a reconcile takes its keys; wrong tokens
// re-read the Secret at most every mismatchRefresh.
func TestEventQueue(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	runs := newRunTracker(nil, nil, 1)
	q := &eventQueue{registry: receiver.NewRegistry(), runs: runs, now: clk.Now, max: 3, enabled: true,
		pending: map[types.NamespacedName]*pendingKeys{}, lastMismatch: map[types.NamespacedName]time.Time{}}
	a := types.NamespacedName{Namespace: "a", Name: "src"}
	wakes := func() int { return len(runs.events) }

	_ = q.enqueue("a/src", []string{"k1", "k2"})
	_ = q.enqueue("a/src", []string{"k2", "k1"})
	if wakes() != 1 {
		t.Fatalf("%d wakes, want 1", wakes())
	}
	keys, overflow := q.take(a)
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"k1", "k2"}) || overflow {
		t.Fatalf("took %v overflow %v", keys, overflow)
	}
	if keys, _ := q.take(a); keys != nil {
		t.Fatalf("took %v twice", keys)
	}

	_ = q.enqueue("a/src", []string{"k1", "k2", "k3", "k4"})
	if wakes() != 2 {
		t.Fatalf("%d wakes after the take, want 2", wakes())
	}
	if keys, overflow := q.take(a); len(keys) != 0 || !overflow {
		t.Fatalf("over the bound: took %v overflow %v, want a full discovery", keys, overflow)
	}

	q.mismatch("a/src")
	q.mismatch("a/src")
	if wakes() != 3 {
		t.Fatalf("%d wakes after two mismatches, want one more", wakes())
	}
	clk.Step(mismatchRefresh)
	q.mismatch("a/src")
	if wakes() != 4 {
		t.Fatalf("%d wakes after the refresh interval, want one more", wakes())
	}
}

func TestHostAllowed(t *testing.T) {
	allowed := []string{"sns.eu-west-1.amazonaws.com", "*.amazonaws.com.cn"}
	for host, want := range map[string]bool{
		"sns.eu-west-1.amazonaws.com":     true,
		"SNS.EU-WEST-1.AMAZONAWS.COM":     true,
		"sns.us-east-1.amazonaws.com":     false,
		"sns.cn-north-1.amazonaws.com.cn": true,
		"amazonaws.com.cn":                false,
		"evil-amazonaws.com.cn":           false,
		"169.254.169.254":                 false,
	} {
		if got := hostAllowed(host, allowed); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	if hostAllowed("sns.eu-west-1.amazonaws.com", nil) {
		t.Error("no allowed host must allow none")
	}
}

// TestEventsTokenReadOnlyWhenNeeded: a reconcile re-reads the events Secret only for a
// new spec, after a wrong token, or once the recheck passed.
func TestEventsTokenReadOnlyWhenNeeded(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	q := &eventQueue{runs: newRunTracker(nil, nil, 1), now: clk.Now,
		lastMismatch: map[types.NamespacedName]time.Time{}, read: map[types.NamespacedName]secretRead{}}
	a := types.NamespacedName{Namespace: "a", Name: "src"}
	const recheck = time.Minute
	if q.tokenCurrent(a, 1, recheck) {
		t.Fatal("a token never read is current")
	}
	q.tokenRead(a, 1)
	clk.Step(time.Second)
	steps := []struct {
		name       string
		do         func()
		generation int64
		want       bool
	}{
		{"just read", func() {}, 1, true},
		{"spec changed", func() {}, 2, false},
		{"wrong token seen", func() { clk.Step(time.Second); q.mismatch("a/src") }, 1, false},
		{"read again", func() { clk.Step(time.Second); q.tokenRead(a, 1); clk.Step(time.Second) }, 1, true},
		{"recheck passed", func() { clk.Step(recheck) }, 1, false},
	}
	for _, st := range steps {
		st.do()
		if got := q.tokenCurrent(a, st.generation, recheck); got != st.want {
			t.Errorf("%s: tokenCurrent = %v, want %v", st.name, got, st.want)
		}
	}
}
