package controllers_test

import (
	"net/http"
	"sync"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

// gateSet holds back the downloads (GetObject) of chosen buckets, so a test can stop a
// manager while its discovery is in flight. A held request waits until the gate opens or
// its context ends (the manager stopping cancels it); listing is never held.
type gateSet struct {
	mu    sync.Mutex
	gates map[string]*gate
}

type gate struct {
	open    chan struct{}
	waiting chan struct{} // receives one value per held request
	mu      sync.Mutex
	pass    int // requests let through before the gate holds
}

// letThrough reports whether a request passes the closed gate, using up one pass.
func (gt *gate) letThrough() bool {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	if gt.pass > 0 {
		gt.pass--
		return true
	}
	return false
}

// closeAfter is close, letting the first n downloads through.
func (g *gateSet) closeAfter(bkt string, n int) *gate {
	gt := g.close(bkt)
	gt.mu.Lock()
	gt.pass = n
	gt.mu.Unlock()
	return gt
}

var downloadGates = &gateSet{gates: map[string]*gate{}}

// close holds the downloads of bkt from now on; the returned gate reports held requests.
func (g *gateSet) close(bkt string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	gt := &gate{open: make(chan struct{}), waiting: make(chan struct{}, 1024)}
	g.gates[bkt] = gt
	return gt
}

// release lets the downloads of bkt through again.
func (g *gateSet) release(bkt string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gt := g.gates[bkt]; gt != nil {
		close(gt.open)
		delete(g.gates, bkt)
	}
}

func (g *gateSet) of(bkt string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gates[bkt]
}

func (g *gateSet) wrap(bkt string, next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if gt := g.of(bkt); gt != nil && bucket.Operation(req) == bucket.OpGetObject && !gt.letThrough() {
			gt.waiting <- struct{}{}
			select {
			case <-gt.open:
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
		return next.RoundTrip(req)
	})
}
