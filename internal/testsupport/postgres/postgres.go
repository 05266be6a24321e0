// Package postgres starts throwaway PostgreSQL servers for tests: a cluster initdb'd in
// a temporary directory, listening on a free 127.0.0.1 port, removed when stopped.
//
// The binaries come from PATH (initdb, postgres), else /usr/lib/postgresql/*/bin, else
// hack/postgres.sh installs them. PostgreSQL refuses to run as root, so as root the
// cluster belongs to, and the server runs as, the postgres system user.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// readyTimeout bounds the wait for a started server to accept connections.
const readyTimeout = 60 * time.Second

// Server is one running cluster.
type Server struct {
	dir  string
	port int
	bin  string
	cred *syscall.Credential
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process exits
	log  *bytes.Buffer
	mu   sync.Mutex // guards log
	dbs  atomic.Int64
}

// Start starts a server for t, creates a database on it and returns that database's
// DSN; the server is stopped and its directory removed when t ends.
func Start(t testing.TB) string {
	t.Helper()
	s, stop, err := StartServer(context.Background())
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return s.NewDatabase(t)
}

// StartServer starts a server; stop shuts it down and removes its files. Use it from
// TestMain to share one server between a package's tests.
func StartServer(ctx context.Context) (s *Server, stop func() error, err error) {
	bin, err := binDir(ctx)
	if err != nil {
		return nil, nil, err
	}
	cred, err := credential(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Not t.TempDir: its parents are private to root, and the server may run as postgres.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, nil, fmt.Errorf("postgres: chown %s: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}
	// A free port can be taken between probing and binding; try a few.
	for attempt := 0; ; attempt++ {
		s, err = start(ctx, bin, dir, cred)
		if err == nil || attempt == 4 || !strings.Contains(err.Error(), "could not bind") {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return s, s.stop, nil
}

func start(ctx context.Context, bin, dir string, cred *syscall.Credential) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, port: port, bin: bin, cred: cred, log: &bytes.Buffer{}}
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// launch starts the server process on s's directory and port and waits until it accepts
// connections.
func (s *Server) launch(ctx context.Context) error {
	s.done = make(chan struct{})
	// Durability is pointless for a throwaway cluster; these settings make it fast.
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB", "-c", "max_connections=200")
	s.cmd.Stdout = s.logWriter()
	s.cmd.Stderr = s.logWriter()
	// Pdeathsig: a killed test binary does not leave a server behind.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("postgres: start server: %w", err)
	}
	cmd, done := s.cmd, s.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.kill()
		return err
	}
	return nil
}

// Crash stops the server in immediate mode (SIGQUIT to the postmaster, what
// "pg_ctl stop -m immediate" sends): every backend is killed at once, open
// transactions are lost, no checkpoint is written, and the next start recovers from
// the WAL. It returns once the server is gone.
func (s *Server) Crash() {
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.kill()
	}
}

// Restart starts a crashed server again on the same data directory and port.
func (s *Server) Restart(ctx context.Context) error {
	select {
	case <-s.done:
	default:
		return errors.New("postgres: the server is still running: Crash it first")
	}
	return s.launch(ctx)
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres: server exited during start-up:\n%s", s.Log())
		case <-ctx.Done():
			return fmt.Errorf("postgres: server not ready after %s: %w\n%s", readyTimeout, err, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DSN returns the connection string of database db (trust authentication, no password).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// CreateDatabase creates database name and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("postgres: create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	var version int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return "", fmt.Errorf("postgres: create database %s: %w", name, err)
	}
	if version >= 150000 {
		// Copying the template's files is about twice as fast as WAL-logging them.
		q += " STRATEGY FILE_COPY"
	}
	if _, err := conn.Exec(ctx, q); err != nil {
		return "", fmt.Errorf("postgres: create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// CreateDurableDatabase is CreateDatabase for a database whose commits must survive
// Crash: the server runs with synchronous_commit=off, under which a commit reported to
// the client may still sit in the server's memory when it is killed; this database's
// sessions use synchronous_commit=on.
func (s *Server) CreateDurableDatabase(ctx context.Context, name string) (string, error) {
	dsn, err := s.CreateDatabase(ctx, name)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("postgres: durable database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" SET synchronous_commit = on"); err != nil {
		return "", fmt.Errorf("postgres: durable database %s: %w", name, err)
	}
	return dsn, nil
}

// NewDatabase creates a new, empty database for t and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	dsn, err := s.CreateDatabase(context.Background(), fmt.Sprintf("test_%d", s.dbs.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Log returns what the server wrote so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

func (s *Server) logWriter() lockedWriter { return lockedWriter{s} }

// stop asks for a fast shutdown (SIGINT: roll back, disconnect, exit), escalates to
// SIGKILL, then removes the cluster.
func (s *Server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.kill()
	}
	return os.RemoveAll(s.dir)
}

func (s *Server) kill() error {
	_ = s.cmd.Process.Kill()
	<-s.done
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("postgres: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var installOnce struct {
	sync.Once
	dir string
	err error
}

// binDir finds initdb and postgres, installing them with hack/postgres.sh if needed.
func binDir(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	installOnce.Do(func() { installOnce.dir, installOnce.err = runHack(ctx) })
	return installOnce.dir, installOnce.err
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runHack runs hack/postgres.sh, which installs PostgreSQL and prints its bin directory.
func runHack(ctx context.Context) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("postgres: cannot locate hack/postgres.sh")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "..", "hack", "postgres.sh")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("postgres: %s: %w\n%s", script, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// credential is the postgres user's when running as root, else nil (run as ourselves).
func credential(ctx context.Context) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		// hack/postgres.sh creates the system user.
		if _, herr := runHack(ctx); herr != nil {
			return nil, herr
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("postgres: running as root needs a postgres user: %w", err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}
