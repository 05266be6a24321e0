package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/ingest"
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
	var n, max int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != 1 || max != 1 {
		t.Errorf("schema_migrations has %d rows up to version %d, want 1 row, version 1", n, max)
	}
}

func BenchmarkCommitFile(b *testing.B) {
	storetest.BenchmarkCommitFile(b, open)
}
