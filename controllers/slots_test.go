package controllers

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A freed slot goes to the oldest waiting run a user asked for, then to the oldest of the
// others; a waiter that gives up leaves the queue, and one handed a slot while giving up
// passes it on.
func TestRunSlotsHandOutRequestedRunsFirst(t *testing.T) {
	type waiter struct {
		name   string
		urgent bool
	}
	for _, tc := range []struct {
		name    string
		slots   int
		waiters []waiter
		want    []string
	}{
		{"scheduled runs in order of arrival", 1,
			[]waiter{{"a", false}, {"b", false}, {"c", false}}, []string{"a", "b", "c"}},
		{"a refresh overtakes scheduled runs already waiting", 1,
			[]waiter{{"a", false}, {"b", false}, {"refresh", true}}, []string{"refresh", "a", "b"}},
		{"refreshes among themselves in order of arrival", 2,
			[]waiter{{"a", false}, {"r1", true}, {"b", false}, {"r2", true}}, []string{"r1", "r2", "a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRunSlots(tc.slots)
			ctx := context.Background()
			for range tc.slots { // every slot busy
				if !s.acquire(ctx, false) {
					t.Fatal("a free slot was refused")
				}
			}
			got := make(chan string, len(tc.waiters))
			for _, w := range tc.waiters {
				before := queued(s)
				go func() {
					if s.acquire(ctx, w.urgent) {
						got <- w.name
					}
				}()
				waitQueued(t, s, before, w.name)
			}
			var order []string
			for range tc.waiters {
				s.release() // one slot at a time: each hand-over is observed alone
				select {
				case name := <-got:
					order = append(order, name)
				case <-time.After(10 * time.Second):
					t.Fatalf("no waiter got the freed slot; so far %v", order)
				}
			}
			if !slices.Equal(order, tc.want) {
				t.Fatalf("slots handed out in order %v, want %v", order, tc.want)
			}
		})
	}
}

func TestRunSlotsGivingUp(t *testing.T) {
	s := newRunSlots(1)
	if !s.acquire(context.Background(), false) {
		t.Fatal("a free slot was refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan bool)
	go func() { gaveUp <- s.acquire(ctx, true) }()
	waitQueued(t, s, 0, "the waiter")
	cancel()
	if <-gaveUp {
		t.Fatal("a cancelled waiter got a slot")
	}
	if n := queued(s); n != 0 {
		t.Fatalf("%d waiters left in the queue after the only one gave up", n)
	}
	s.release()
	if s.acquire(ctx, false) {
		t.Fatal("acquire with an ended context took a slot")
	}
	if !s.acquire(context.Background(), false) {
		t.Fatal("the released slot was lost")
	}
}

func queued(s *runSlots) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.urgent) + len(s.other)
}

// waitQueued waits until a waiter joined the before already queued, so arrival order is
// the test's.
func waitQueued(t *testing.T, s *runSlots, before int, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for queued(s) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("%s never queued", name)
		}
		time.Sleep(time.Millisecond)
	}
}
