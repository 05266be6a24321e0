package postgres

import (
	"context"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartServer(t *testing.T) {
	ctx := context.Background()
	s, stop, err := StartServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stop()
		}
	}()
	dsns := map[string]bool{}
	for i := 0; i < 2; i++ {
		dsn := s.NewDatabase(t)
		if dsns[dsn] {
			t.Fatalf("NewDatabase returned %s twice", dsn)
		}
		dsns[dsn] = true
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var db string
		var fsync string
		if err := conn.QueryRow(ctx, `SELECT current_database(), current_setting('fsync')`).Scan(&db, &fsync); err != nil {
			t.Fatal(err)
		}
		if want := "test_" + strconv.Itoa(i+1); db != want || fsync != "off" {
			t.Errorf("connected to %s with fsync=%s, want %s with fsync=off", db, fsync, want)
		}
		conn.Close(ctx)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s remains after stop (%v)", s.dir, err)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port)); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after stop", s.port)
	}
}

func TestStart(t *testing.T) {
	dsn := Start(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var one int
	if err := conn.QueryRow(context.Background(), `SELECT 1`).Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

// A crashed server restarts on the same port and recovers every commit of a durable
// database from its WAL.
func TestCrashAndRestart(t *testing.T) {
	ctx := context.Background()
	s, stop, err := StartServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop() }()
	dsn, err := s.CreateDurableDatabase(ctx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var sync string
	if err := conn.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&sync); err != nil || sync != "on" {
		t.Fatalf("synchronous_commit = %q, %v; want on", sync, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (v int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// An open transaction is lost in the crash.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	s.Crash()
	conn.Close(ctx)
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port)); err == nil {
		c.Close()
		t.Fatal("the port still accepts connections after Crash")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, sum int
	if err := conn.QueryRow(ctx, `SELECT count(*), sum(v) FROM t`).Scan(&n, &sum); err != nil || n != 1 || sum != 1 {
		t.Fatalf("after the restart t holds %d rows summing %d (%v), want the committed row alone", n, sum, err)
	}
}
