// Package proc starts and stops the child processes of the demo and the benchmarks (the
// manager binary), in their own process group.
package proc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Process is a child started by a tool (the demo, a benchmark) that must stop it.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Log is the path of the process's output.
func (p *Process) Log() string { return p.log.Name() }

// Start starts bin in its own process group, so the terminal's Ctrl-C reaches the parent
// alone and the parent stops the child in order; a dying parent takes it along. Its output
// goes to logPath.
func Start(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM (the operator's graceful shutdown) and kills after grace.
func (p *Process) Stop(grace time.Duration) error {
	defer func() { _ = p.log.Close() }()
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s and was killed", p.name, grace)
	}
}

// WaitHTTP waits until url answers 200, the process exits, or ctx ends.
func (p *Process) WaitHTTP(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited (%v); see %s", p.name, p.cmd.ProcessState, p.log.Name())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w", p.name, url, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// FreeAddr returns a 127.0.0.1 address with a port free right now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// GoBuild builds pkg into root/bin/name.
func GoBuild(ctx context.Context, root, name, pkg string) (string, error) {
	out := filepath.Join(root, "bin", name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o bin/%s %s: %w\n%s", name, pkg, err, b)
	}
	return out, nil
}
