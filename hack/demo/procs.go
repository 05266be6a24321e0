package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// stack is everything the demo started, stopped in reverse order of dependence.
type stack struct {
	kube    *kube.Env
	tenancy *kube.Tenancy // kube-controller-manager, aggregating the operator's roles
	s3      *minio.Server
	manager *process
}

// stop stops the operator first (so it does not log a vanished apiserver), then MinIO
// and kube-controller-manager, then the control plane. Safe on a partly started stack.
func (s *stack) stop() error {
	var errs []error
	if s.manager != nil {
		errs = append(errs, s.manager.stop(30*time.Second))
	}
	if s.s3 != nil {
		s.s3.Stop()
	}
	if s.tenancy != nil {
		s.tenancy.Stop()
	}
	if s.kube != nil {
		errs = append(errs, s.kube.Stop())
	}
	return errors.Join(errs...)
}

// process is a child the demo started and must stop.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// startProcess starts bin in its own process group, so the terminal's Ctrl-C reaches the
// demo alone and the demo stops the child in order; a dying demo takes it along.
func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
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
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (the operator's graceful shutdown) and kills after grace.
func (p *process) stop(grace time.Duration) error {
	defer func() { _ = p.log.Close() }()
	if p.exited() {
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

// waitHTTP waits until url answers 200, the process exits, or ctx ends.
func (p *process) waitHTTP(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	for {
		if p.exited() {
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

// freeAddr returns a 127.0.0.1 address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// goBuild builds pkg into root/bin/name.
func goBuild(ctx context.Context, root, name, pkg string) (string, error) {
	out := filepath.Join(root, "bin", name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o bin/%s %s: %w\n%s", name, pkg, err, b)
	}
	return out, nil
}
