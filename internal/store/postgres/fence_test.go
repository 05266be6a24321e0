package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// Two stores on one database are two manager processes: a source's fence is held by
// one at a time, a fence freed by its holder or by its holder's end is free for the
// other, and taking it drops the reservations the previous holder left.
func TestFenceTwoProcesses(t *testing.T) {
	ctx := context.Background()
	dsn := server.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)

	fa, ok, err := a.TryFence(ctx, "ns/x")
	if err != nil || !ok {
		t.Fatalf("a: first fence of ns/x: ok=%v err=%v", ok, err)
	}
	if _, ok, err := b.TryFence(ctx, "ns/x"); err != nil || ok {
		t.Fatalf("b took ns/x while a holds it: ok=%v err=%v", ok, err)
	}
	fb, ok, err := b.TryFence(ctx, "ns/y")
	if err != nil || !ok {
		t.Fatalf("b: ns/y is free: ok=%v err=%v", ok, err)
	}
	fb.Release()
	fa.Release()
	fb, ok, err = b.TryFence(ctx, "ns/x")
	if err != nil || !ok {
		t.Fatalf("b: ns/x after a released it: ok=%v err=%v", ok, err)
	}
	fb.Release()

	// a holds the fence and reserves, then dies: the session's end frees the fence, and
	// b taking it drops a's reservation, which would otherwise hold the quota all day.
	c := openDSN(t, dsn)
	fc, ok, err := c.TryFence(ctx, "ns/x")
	if err != nil || !ok {
		t.Fatalf("c: ok=%v err=%v", ok, err)
	}
	r := store.Reservation{Quota: "ns/q", Day: "2026-03-10", Source: "ns/x", Bytes: 80, Limit: 100}
	if _, err := c.Reserve(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, store.Reservation{Quota: "ns/q", Day: "2026-03-10", Source: "ns/z", Bytes: 80, Limit: 100}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("reserve beside c's reservation: %v, want quota exceeded", err)
	}
	_ = c.Close()
	select {
	case <-fc.Lost():
	default:
		t.Error("closing the store did not mark its fence lost")
	}
	// The server ends the closed session's backend, and its locks, asynchronously; the
	// runner retries each second, the test more often.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fb, ok, err = b.TryFence(ctx, "ns/x")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b: ns/x still fenced long after its holder died")
		}
	}
	defer fb.Release()
	if _, err := b.Reserve(ctx, store.Reservation{Quota: "ns/q", Day: "2026-03-10", Source: "ns/z", Bytes: 80, Limit: 100}); err != nil {
		t.Fatalf("the dead holder's reservation was not dropped: %v", err)
	}
}

// A fence whose session is killed on the server is reported lost within fencePing.
func TestFenceLostWhenSessionKilled(t *testing.T) {
	ctx := context.Background()
	dsn := server.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	f, ok, err := a.TryFence(ctx, "ns/x")
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	var pid int32
	a.fences.mu.Lock()
	err = a.fences.cur.conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid)
	a.fences.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Lost():
	case <-time.After(5 * fencePing):
		t.Fatal("a killed fence session was not noticed")
	}
	f.Release() // a no-op on a dead session
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, ok, err := b.TryFence(ctx, "ns/x")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed session's fence is still held")
		}
	}
	// a reconnects for its next fence.
	if _, ok, err := a.TryFence(ctx, "ns/w"); err != nil || !ok {
		t.Fatalf("a after its session was killed: ok=%v err=%v", ok, err)
	}
}
