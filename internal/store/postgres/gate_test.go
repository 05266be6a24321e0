package postgres

import (
	"context"
	"testing"
	"time"
)

// A commit that gives up while waiting (its namespace's turn or a slot) leaves nothing
// held behind.
func TestGateCancel(t *testing.T) {
	tests := []struct {
		name    string
		holding string // the namespace of the commit in progress
		waiting string // the namespace of the one that gives up
	}{
		{"waiting for its namespace", "a", "a"},
		{"waiting for a slot", "a", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate(1)
			leave, err := g.enter(context.Background(), tt.holding)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if _, err := g.enter(ctx, tt.waiting); err == nil {
				t.Fatal("enter succeeded while the gate was full")
			}
			leave()
			leave() // leaving twice is harmless
			if len(g.ns) != 0 || len(g.slots) != 0 {
				t.Fatalf("gate holds %d namespaces, %d slots after everyone left", len(g.ns), len(g.slots))
			}
			short, cancel2 := context.WithTimeout(context.Background(), time.Second)
			defer cancel2()
			l, err := g.enter(short, tt.waiting)
			if err != nil {
				t.Fatalf("enter after a cancelled wait: %v", err)
			}
			l()
		})
	}
}
