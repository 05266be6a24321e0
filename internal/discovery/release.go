package discovery

import (
	"context"
	"sync"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// pendingReleases are reservations a download could not release because the store
// failed (a database outage). Left in the store, each would hold its bytes of the day's
// quota until the manager restarts (ReleaseAll); every run first retries them.
type pendingReleases struct {
	mu  sync.Mutex
	ids []int64
}

func (p *pendingReleases) add(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, id)
}

// retry releases what it can and keeps the rest for the next run.
func (p *pendingReleases) retry(ctx context.Context, st store.Store) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.ids[:0]
	for _, id := range p.ids {
		if err := st.Release(ctx, id); err != nil {
			kept = append(kept, id)
		}
	}
	p.ids = kept
}
