package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// A source's fence is a session advisory lock, (lockSource, hash32(source)), held on one
// connection of this process kept outside the pool: a lock held through a pool
// connection would pin one connection per running source and starve commits. Locks
// are only tried, never waited for, so the connection's mutex is held for one round
// trip. When the session ends (the process died, the connection broke) the server
// drops its locks; a ping notices the break here and closes Lost so runs stop.
// Collisions of hash32 only make two sources wait for each other.
const lockSource int32 = lockQuota + 1

// fencePing is how often the fence session is checked while it holds fences.
const fencePing = 2 * time.Second

var _ store.Fencer = (*Store)(nil)

// fenceSession is one connection and the fences taken on it.
type fenceSession struct {
	conn *pgx.Conn
	lost chan struct{}
	held int
}

type fences struct {
	cfg *pgx.ConnConfig
	mu  sync.Mutex
	cur *fenceSession
	// stop ends the ping loop when the store closes.
	stop      chan struct{}
	once      sync.Once
	closeOnce sync.Once
}

func newFences(cfg *pgx.ConnConfig) *fences {
	return &fences{cfg: cfg, stop: make(chan struct{})}
}

// TryFence implements store.Fencer.
func (s *Store) TryFence(ctx context.Context, source string) (store.Fence, bool, error) {
	f := s.fences
	f.once.Do(func() { go f.ping() })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur == nil {
		conn, err := pgx.ConnectConfig(ctx, f.cfg)
		if err != nil {
			return nil, false, fmt.Errorf("fence of %s: connect: %w", source, err)
		}
		f.cur = &fenceSession{conn: conn, lost: make(chan struct{})}
	}
	sess := f.cur
	var ok bool
	if err := sess.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockSource, hash32(source)).Scan(&ok); err != nil {
		f.drop(sess)
		return nil, false, fmt.Errorf("fence of %s: %w", source, err)
	}
	if !ok {
		return nil, false, nil
	}
	sess.held++
	fence := &fence{f: f, sess: sess, key: hash32(source)}
	// Reservations are made only under the fence: those left are a previous holder's.
	if _, err := s.pool.Exec(ctx, `DELETE FROM reservations WHERE source = $1`, source); err != nil {
		fence.unlock()
		return nil, false, fmt.Errorf("fence of %s: dropping stale reservations: %w", source, err)
	}
	return fence, true, nil
}

// drop forgets a broken session: its locks died with it. f.mu is held.
func (f *fences) drop(sess *fenceSession) {
	if f.cur != sess {
		return
	}
	f.cur = nil
	close(sess.lost)
	_ = sess.conn.Close(context.Background())
}

// ping checks the session while it holds fences, so a broken connection stops the runs
// relying on it within fencePing.
func (f *fences) ping() {
	t := time.NewTicker(fencePing)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		f.mu.Lock()
		if sess := f.cur; sess != nil && sess.held > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), fencePing)
			if err := sess.conn.Ping(ctx); err != nil {
				f.drop(sess)
			}
			cancel()
		}
		f.mu.Unlock()
	}
}

// close ends the session (and so releases every fence) when the store closes.
func (f *fences) close() {
	f.closeOnce.Do(func() { close(f.stop) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil {
		f.drop(f.cur)
	}
}

type fence struct {
	f    *fences
	sess *fenceSession
	key  int32
	once sync.Once
}

func (x *fence) Lost() <-chan struct{} { return x.sess.lost }

func (x *fence) Release() {
	x.once.Do(func() {
		x.f.mu.Lock()
		defer x.f.mu.Unlock()
		x.unlockLocked()
	})
}

func (x *fence) unlock() { x.once.Do(x.unlockLocked) }

// unlockLocked gives the lock back on its session; a session gone took it along.
func (x *fence) unlockLocked() {
	if x.f.cur != x.sess {
		return
	}
	x.sess.held--
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := x.sess.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, lockSource, x.key); err != nil {
		x.f.drop(x.sess)
	}
}
