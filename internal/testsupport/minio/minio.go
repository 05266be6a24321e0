// Package minio starts a real MinIO server (built by hack/minio.sh) for tests and demos,
// and offers the few bucket, object and user helpers the tests need.
package minio

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/madmin-go/v3"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

// Region is the region the server is started with; any region signs for MinIO.
const Region = "us-east-1"

// Options tune StartServer. The zero value is fine.
type Options struct {
	// Binary overrides the MinIO binary; empty runs hack/minio.sh to build or find it.
	Binary string
	// ReadyTimeout bounds the wait for /minio/health/ready. Default 60 s.
	ReadyTimeout time.Duration
	// Env adds environment variables, e.g. MINIO_IDENTITY_OPENID_* to trust an OpenID
	// provider for AssumeRoleWithWebIdentity.
	Env []string
	// TrustedCAs are PEM bundles MinIO trusts as a TLS client (its certs dir's CAs/), e.g.
	// the CA of an OpenID provider served over HTTPS. MinIO itself still serves plain HTTP.
	TrustedCAs [][]byte
}

// Server is a running MinIO with its own data directory and random root credentials.
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:40123.
	Endpoint     string
	RootUser     string
	RootPassword string

	dir   string
	cmd   *exec.Cmd
	exit  chan struct{}
	log   *os.File
	s3    *s3.Client
	admin *madmin.AdminClient
	once  sync.Once
}

// Start starts a server for one test and stops it when the test ends. It fails the test if
// MinIO cannot be built or started; it never skips.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartServer(Options{})
	if err != nil {
		t.Fatalf("starting MinIO: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartServer starts a server; the caller must Stop it. For TestMain and demo programs.
func StartServer(opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = testsupport.HackScript("minio.sh"); err != nil {
			return nil, err
		}
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = time.Minute
	}
	// A port picked free can be taken before MinIO binds it; try again on a fresh one.
	var errs []error
	for range 3 {
		s, err := start(bin, opts)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func start(bin string, opts Options) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "minio-test-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:     "http://127.0.0.1:" + strconv.Itoa(port),
		RootUser:     "root" + randomHex(8),
		RootPassword: randomHex(20),
		dir:          dir,
		exit:         make(chan struct{}),
	}
	if s.log, err = os.Create(filepath.Join(dir, "minio.log")); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	certsDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(filepath.Join(certsDir, "CAs"), 0o700); err != nil {
		s.cleanup()
		return nil, err
	}
	for i, ca := range opts.TrustedCAs {
		if err := os.WriteFile(filepath.Join(certsDir, "CAs", fmt.Sprintf("ca-%d.crt", i)), ca, 0o600); err != nil {
			s.cleanup()
			return nil, err
		}
	}
	s.cmd = exec.Command(bin, "server", "--quiet", "--anonymous",
		"--address", "127.0.0.1:"+strconv.Itoa(port),
		"--console-address", "127.0.0.1:"+strconv.Itoa(consolePort),
		"--certs-dir", certsDir,
		filepath.Join(dir, "data"))
	s.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.RootUser,
		"MINIO_ROOT_PASSWORD="+s.RootPassword,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_REGION="+Region,
	)
	s.cmd.Env = append(s.cmd.Env, opts.Env...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	setParentDeathSignal(s.cmd)
	if err := s.cmd.Start(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exit)
	}()
	if err := s.waitReady(opts.ReadyTimeout); err != nil {
		logTail := s.logTail()
		s.Stop()
		return nil, fmt.Errorf("%w\nMinIO log:\n%s", err, logTail)
	}
	if err := s.connect(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Kill kills the server with SIGKILL, as a crash would, and waits until it is gone. Its
// data stays for Restart.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exit
}

// Restart starts a killed server again with the same command line: the same data
// directory, port and credentials.
func (s *Server) Restart() error {
	select {
	case <-s.exit:
	default:
		return errors.New("MinIO is still running: Kill it first")
	}
	cmd := exec.Command(s.cmd.Path, s.cmd.Args[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = s.cmd.Env, s.log, s.log
	setParentDeathSignal(cmd)
	exit := make(chan struct{})
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restarting MinIO: %w", err)
	}
	s.cmd, s.exit = cmd, exit
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	if err := s.waitReady(time.Minute); err != nil {
		return fmt.Errorf("%w\nMinIO log:\n%s", err, s.logTail())
	}
	return nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.exit:
			return fmt.Errorf("MinIO exited before it was ready (%v)", s.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(s.Endpoint + "/minio/health/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("MinIO at %s not ready within %s", s.Endpoint, timeout)
}

func (s *Server) connect() error {
	s.s3 = s.newS3Client(s.RootUser, s.RootPassword)
	host := s.Endpoint[len("http://"):]
	admin, err := madmin.New(host, s.RootUser, s.RootPassword, false)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	s.admin = admin
	return nil
}

// newS3Client is a path-style client for the given user. Tests of internal/bucket use
// their own clients; this one seeds buckets.
func (s *Server) newS3Client(accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

// Stop stops the server and removes its data. Safe to call more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(os.Interrupt)
			select {
			case <-s.exit:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exit
			}
		}
		s.cleanup()
	})
}

func (s *Server) cleanup() {
	if s.log != nil {
		_ = s.log.Close()
	}
	_ = os.RemoveAll(s.dir)
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "minio.log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// helperTimeout bounds each helper call so a wedged server fails a test instead of hanging it.
const helperTimeout = 2 * time.Minute

func helperContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), helperTimeout)
}
