package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// benchPG is the PostgreSQL server of the benchmarks, started by the first benchmark
// that needs it and stopped by TestMain: one server per benchmark process.
var benchPG struct {
	once   sync.Once
	server *pgtest.Server
	stop   func() error
	err    error
	dbs    int
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchPG.stop != nil {
		if err := benchPG.stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// benchPostgres is benchProcess into a real PostgreSQL: a fresh database of the shared
// server per sub-benchmark, its tables emptied before each iteration (outside the
// timer, which benchProcess stops around newStore and Close) so every record is new,
// as in the SQLite sub-benchmark's fresh file. Beside benchProcess's cpu-ms/op it
// reports the server's CPU time per iteration (server-cpu-ms/op, between the store's
// opening and its closing: the server shares the machine's cores with the benchmark).
func benchPostgres(b *testing.B, f benchFile, vs *ingest.Validators) {
	ctx := context.Background()
	benchPG.once.Do(func() { benchPG.server, benchPG.stop, benchPG.err = pgtest.StartServer(ctx) })
	if benchPG.err != nil {
		b.Fatal(benchPG.err)
	}
	benchPG.dbs++
	dsn, err := benchPG.server.CreateDatabase(ctx, fmt.Sprintf("bench_%d", benchPG.dbs))
	if err != nil {
		b.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = admin.Close(ctx) })
	postmaster, err := postmasterPID(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	var server time.Duration
	benchProcess(b, f, func() store.Store {
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := admin.Exec(ctx, `TRUNCATE conversations, files, source_totals, source_pii_totals, file_attempts, usage, reservations`); err != nil {
			b.Fatal(err)
		}
		cs := &cpuStore{Store: st}
		cs.stop = func() { server += serverCPU(postmaster) - cs.server }
		cs.server = serverCPU(postmaster)
		return cs
	}, vs)
	b.ReportMetric(float64(server.Microseconds())/1e3/float64(b.N), "server-cpu-ms/op")
}

// cpuStore notes the server's CPU time from its opening to its closing: one Process,
// as the timer sees it.
type cpuStore struct {
	store.Store
	server time.Duration
	stop   func()
}

func (s *cpuStore) Close() error {
	s.stop()
	return s.Store.Close()
}

// postmasterPID is the parent of conn's backend.
func postmasterPID(ctx context.Context, conn *pgx.Conn) (int, error) {
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0, err
	}
	st, err := procStat(backend)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(st[1])
}

// serverCPU is the CPU time of the PostgreSQL server: the postmaster's own and that of
// its exited children (reaped by it), plus that of its live children (backends,
// background writers). Linux clock ticks are 1/100 s.
func serverCPU(postmaster int) time.Duration {
	const tick = 10 * time.Millisecond
	ticks := func(st []string, fields ...int) (n int64) {
		for _, f := range fields {
			v, _ := strconv.ParseInt(st[f], 10, 64)
			n += v
		}
		return n
	}
	// Fields after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	var total int64
	if st, err := procStat(postmaster); err == nil {
		total += ticks(st, 11, 12, 13, 14)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if st, err := procStat(pid); err == nil && st[1] == strconv.Itoa(postmaster) {
			total += ticks(st, 11, 12, 13, 14)
		}
	}
	return time.Duration(total) * tick
}

// procStat returns the fields of /proc/pid/stat after the command name.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}
