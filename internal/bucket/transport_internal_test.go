package bucket

import (
	"net/http"
	"testing"
	"time"
)

func TestTransportPoolEvictsUnusedTransports(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &TransportPool{now: func() time.Time { return now }}
	build := func() (*http.Transport, error) { return &http.Transport{}, nil }
	a, _ := p.get("a", build)
	now = now.Add(TransportEvictAfter / 2)
	if _, err := p.get("b", build); err != nil || p.Len() != 2 {
		t.Fatalf("pool holds %d, want a and b", p.Len())
	}
	now = now.Add(TransportEvictAfter/2 + time.Second)
	// a was last used more than TransportEvictAfter ago; b was not.
	if _, err := p.get("c", build); err != nil || p.Len() != 2 {
		t.Fatalf("pool holds %d, want b and c after a's eviction", p.Len())
	}
	if again, _ := p.get("a", build); again == a {
		t.Fatal("an evicted transport came back from the pool")
	}
}
