package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
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

func open(tb testing.TB) store.Store { return openDSN(tb, server.NewDatabase(tb)) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
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

// heldCommit starts a commit of namespace that streams past one batch (so its
// transaction has begun and holds its locks), reports on started, and waits for release
// before the end of its file, as a download still in progress does.
func heldCommit(s *Store, namespace, key string, started chan<- string, release <-chan struct{}) <-chan error {
	done := make(chan error, 1)
	source := namespace + "/s"
	stream := func(yield func(store.Conversation) bool) error {
		for i := range 300 {
			c := store.Conversation{AgentID: "agent", ConversationID: fmt.Sprintf("%s-%d", key, i), ContentHash: "h",
				Raw: []byte(`{}`), ObjectKey: key, Source: source, ActivityTime: time.Unix(int64(i), 0)}
			if !yield(c) {
				return store.ErrStreamStopped
			}
		}
		started <- namespace + "/" + key
		<-release
		return nil
	}
	go func() {
		_, err := s.CommitFile(context.Background(), store.FileCommit{Namespace: namespace,
			File: store.FileRecord{Source: source, Key: key, State: store.FileIngested}, Conversations: stream})
		done <- err
	}()
	return done
}

// Files committing at once (more than the pool has connections) must leave connections
// for Reserve and lookups: waiting commits queue in the process, not on a connection.
// One namespace's commits run one at a time; other namespaces' run beside them, up to
// half the pool.
func TestCommitsInFlightLeaveConnections(t *testing.T) {
	tests := []struct {
		name         string
		namespaces   []string // one commit each
		wantInFlight int
	}{
		{"one namespace", []string{"ns", "ns", "ns", "ns", "ns", "ns"}, 1},
		{"six namespaces, a pool of 4", []string{"a", "b", "c", "d", "e", "f"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openDSN(t, server.NewDatabase(t)+"&pool_max_conns=4")
			release := make(chan struct{})
			started := make(chan string, len(tt.namespaces))
			var done []<-chan error
			for i, ns := range tt.namespaces {
				done = append(done, heldCommit(s, ns, fmt.Sprintf("f%d.json", i), started, release))
			}
			for range tt.wantInFlight {
				<-started
			}
			time.Sleep(200 * time.Millisecond)
			if n := len(started); n != 0 {
				t.Errorf("%d more commits in flight, want %d in all", n, tt.wantInFlight)
			}
			short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := s.Reserve(short, store.Reservation{Quota: "ns/q", Day: "2026-03-10", Source: "ns/s", Bytes: 1, Limit: 10}); err != nil {
				t.Errorf("Reserve while commits wait: %v", err)
			}
			if _, _, err := s.LookupFile(short, "ns/s", "f0.json"); err != nil {
				t.Errorf("LookupFile while commits wait: %v", err)
			}
			close(release)
			for _, d := range done {
				if err := <-d; err != nil {
					t.Errorf("CommitFile: %v", err)
				}
			}
		})
	}
}

// A commit in progress holds up later commits of its namespace only, in this process
// (the gate) and in another (the advisory lock).
func TestCommitsOfOtherNamespacesDoNotWait(t *testing.T) {
	tests := []struct {
		name      string
		namespace string
		otherPool bool
		wantWait  bool
	}{
		{"same namespace, same pool", "tenant-a", false, true},
		{"same namespace, another pool", "tenant-a", true, true},
		{"other namespace, same pool", "tenant-b", false, false},
		{"other namespace, another pool", "tenant-b", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := server.NewDatabase(t)
			first := openDSN(t, dsn)
			second := first
			if tt.otherPool {
				second = openDSN(t, dsn)
			}
			release := make(chan struct{})
			started := make(chan string, 2)
			held := heldCommit(first, "tenant-a", "held.json", started, release)
			<-started
			done := make(chan error, 1)
			go func() {
				f := storetest.File(tt.namespace+"/s", "quick.json", time.Unix(0, 0), storetest.Conv("agent", "held.json-0", time.Unix(9, 0), "later"))
				_, err := second.CommitFile(context.Background(), f.FileCommit)
				done <- err
			}()
			select {
			case err := <-done:
				if tt.wantWait {
					t.Errorf("the commit did not wait for the held commit of its namespace (err %v)", err)
				} else if err != nil {
					t.Errorf("CommitFile: %v", err)
				}
			case <-time.After(time.Second):
				if !tt.wantWait {
					t.Error("the commit waited for another namespace's commit")
				}
			}
			close(release)
			if err := <-held; err != nil {
				t.Errorf("held CommitFile: %v", err)
			}
			if tt.wantWait {
				if err := <-done; err != nil {
					t.Errorf("CommitFile after the held one: %v", err)
				}
			}
		})
	}
}
