package faults

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// manager is one running manager process.
type manager struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// armed is a failpoint for a manager to hold at (internal/failpoint).
type armed struct {
	point, match, dir string
}

// startManager runs bin against the scenario's store and spool directory and waits until
// it is ready. Its log is appended to logPath, so a restart continues the same log.
func startManager(t *testing.T, bin, dsn, spool, logPath string, fp *armed) *manager {
	t.Helper()
	probes := freeAddr(t)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--store", dsn, "--metrics-bind-address", "0", "--health-probe-bind-address", probes, "--receiver-bind-address", "0",
		"--allowed-endpoints", w.s3.Endpoint, "--spool-dir", spool, "--max-file-size", "50M",
		"--concurrent-files", "2", "--files-per-source", "2")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+w.kubeconfig)
	if fp != nil {
		cmd.Env = append(cmd.Env, "DATA_IMPORT_FAILPOINT="+fp.point, "DATA_IMPORT_FAILPOINT_MATCH="+fp.match, "DATA_IMPORT_FAILPOINT_DIR="+fp.dir)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// A dying test binary takes the manager along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &manager{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() { m.kill() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-m.done:
			t.Fatalf("the manager exited during start-up (%v):\n%s", cmd.ProcessState, tail(logPath))
		case <-ctx.Done():
			t.Fatalf("the manager was not ready within a minute:\n%s", tail(logPath))
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get("http://" + probes + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
	}
}

// kill sends SIGKILL, as the kubelet does to a container past its grace period or the
// kernel to one out of memory, and waits until the process is gone.
func (m *manager) kill() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// stop sends SIGTERM and waits for the graceful shutdown.
func (m *manager) stop(t *testing.T) {
	t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.kill()
		t.Errorf("the manager did not stop within 30s of SIGTERM:\n%s", tail(m.log))
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// tail is the end of a log, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 6000 {
		b = b[len(b)-6000:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return fmt.Sprintf("--- %s ---\n%s", path, b)
}
