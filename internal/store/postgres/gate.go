package postgres

import (
	"context"
	"sync"
)

// gate admits commits: one at a time per namespace, and at most n in all.
type gate struct {
	slots chan struct{}
	mu    sync.Mutex
	ns    map[string]*nsGate
}

// nsGate is one namespace's turn, dropped when no commit of it holds or waits for it.
type nsGate struct {
	turn chan struct{}
	refs int
}

func newGate(n int) *gate {
	return &gate{slots: make(chan struct{}, n), ns: map[string]*nsGate{}}
}

// enter waits for namespace's turn, then for a slot, and returns the function that
// leaves both. A commit waiting for its namespace holds no slot, so the other
// namespaces' commits are not held up by it.
func (g *gate) enter(ctx context.Context, namespace string) (leave func(), err error) {
	g.mu.Lock()
	e := g.ns[namespace]
	if e == nil {
		e = &nsGate{turn: make(chan struct{}, 1)}
		g.ns[namespace] = e
	}
	e.refs++
	g.mu.Unlock()
	drop := func() {
		g.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(g.ns, namespace)
		}
		g.mu.Unlock()
	}
	select {
	case e.turn <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		<-e.turn
		drop()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-g.slots
			<-e.turn
			drop()
		})
	}, nil
}
