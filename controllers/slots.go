package controllers

import (
	"context"
	"sync"
)

// runSlots bounds the discovery runs executing at once (--concurrent-sources). A run
// waiting for a slot is either urgent (a user asked for it: the refresh or
// reconcile-request annotation) or not (first discovery, interval, retry, spec change,
// quota, event-named keys). A freed slot goes to the urgent run that waited longest, else
// to the run that waited longest: a refresh overtakes the scheduled discoveries already
// waiting, which would otherwise hold it back for minutes when thousands are due at once.
// Scheduled runs cannot starve: refreshes are rare, one per annotation change, and each
// still waits for a slot to free.
type runSlots struct {
	mu   sync.Mutex
	free int
	// waiting holds one channel per waiting run, oldest first; a slot is handed over by
	// closing it.
	urgent, other []chan struct{}
}

func newRunSlots(n int) *runSlots { return &runSlots{free: max(n, 1)} }

// acquire waits for a slot; it reports false when ctx ended first (no slot held).
func (s *runSlots) acquire(ctx context.Context, urgent bool) bool {
	if ctx.Err() != nil {
		return false
	}
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	if urgent {
		s.urgent = append(s.urgent, ch)
	} else {
		s.other = append(s.other, ch)
	}
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch:
		// Handed a slot while giving up: pass it on.
		s.releaseLocked()
	default:
		s.urgent, s.other = without(s.urgent, ch), without(s.other, ch)
	}
	return false
}

// release frees a slot, handing it to the next waiting run.
func (s *runSlots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *runSlots) releaseLocked() {
	switch {
	case len(s.urgent) > 0:
		close(s.urgent[0])
		s.urgent = s.urgent[1:]
	case len(s.other) > 0:
		close(s.other[0])
		s.other = s.other[1:]
	default:
		s.free++
	}
}

func without(q []chan struct{}, ch chan struct{}) []chan struct{} {
	for i, c := range q {
		if c == ch {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}
