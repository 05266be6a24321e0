package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store/internal/migrate"
	"github.com/avon-ai/data-import-operator/internal/store/storetest"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// server is one throwaway PostgreSQL for the package; each test gets its own database.
var server *pgtest.Server

func TestMain(m *testing.M) {
	s, stop, err := pgtest.StartServer(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func openDSN(tb testing.TB, dsn string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func open(tb testing.TB) ingest.Store { return openDSN(tb, server.NewDatabase(tb)) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ingest.Store { return open(t) })
}

// Two pools on one database: two processes' worth of connections.
func TestReserveTwoPools(t *testing.T) {
	dsn := server.NewDatabase(t)
	storetest.ReserveConcurrent(t, openDSN(t, dsn), openDSN(t, dsn))
}

// Commits racing on the same conversations from two pools still converge on the
// Newer-maximum.
func TestConcurrentCommitsTwoPools(t *testing.T) {
	dsn := server.NewDatabase(t)
	storetest.ConcurrentCommits(t, openDSN(t, dsn), openDSN(t, dsn))
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	dsn := server.NewDatabase(t)
	// Concurrent first opens race to create the schema; the migration lock serializes them.
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	s := openDSN(t, dsn)
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var n, max int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || max != len(ms) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d rows, version %d", n, max, len(ms), len(ms))
	}
}

func BenchmarkCommitFile(b *testing.B) {
	storetest.BenchmarkCommitFile(b, open)
}

// Files committing at once (more than the pool has connections) must leave connections
// for Reserve and lookups: waiting commits queue in the process, not on a connection.
func TestCommitsInFlightLeaveConnections(t *testing.T) {
	dsn := server.NewDatabase(t)
	s := openDSN(t, dsn+"&pool_max_conns=4")
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	done := make(chan error, 6)
	for f := range 6 {
		go func() {
			stream := func(yield func(ingest.Conversation) bool) error {
				for i := range 300 { // past one batch: the transaction has begun
					c := ingest.Conversation{AgentID: "agent", ConversationID: fmt.Sprintf("f%d-%d", f, i), ContentHash: "h",
						Raw: []byte(`{}`), ObjectKey: fmt.Sprintf("f%d.json", f), Source: "ns/s", ActivityTime: time.Unix(int64(i), 0)}
					if !yield(c) {
						return ingest.ErrStreamStopped
					}
				}
				started <- struct{}{}
				<-release // the rest of the file is still downloading
				return nil
			}
			_, err := s.CommitFile(ctx, ingest.FileCommit{
				Namespace:     "ns",
				File:          ingest.FileRecord{Source: "ns/s", Key: fmt.Sprintf("f%d.json", f), State: ingest.FileIngested},
				Conversations: stream,
			})
			done <- err
		}()
	}
	<-started // one commit holds the lock; five wait
	time.Sleep(200 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.Reserve(short, ingest.Reservation{Quota: "ns/q", Day: "2026-03-10", Source: "ns/s", Bytes: 1, Limit: 10}); err != nil {
		t.Errorf("Reserve while commits wait: %v", err)
	}
	if _, _, err := s.LookupFile(short, "ns/s", "f0.json"); err != nil {
		t.Errorf("LookupFile while commits wait: %v", err)
	}
	close(release)
	for range 6 {
		if err := <-done; err != nil {
			t.Errorf("CommitFile: %v", err)
		}
	}
}
