package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

func TestBytesFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "500M", want: 500_000_000},
		{in: "500Mi", want: 500 * 1 << 20},
		{in: "10G", want: 10_000_000_000},
		{in: "1k", want: 1000},
		{in: "12345", want: 12345},
		{in: "0", wantErr: "greater than zero"},
		{in: "-1M", wantErr: "greater than zero"},
		{in: "ten", wantErr: "not a quantity"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			b := newBytesFlag("1")
			err := b.Set(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || int64(*b) != tt.want {
				t.Fatalf("Set(%q) = %d, %v; want %d", tt.in, *b, err, tt.want)
			}
		})
	}
}

func TestCheckSpool(t *testing.T) {
	tests := []struct {
		name      string
		free      uint64
		files     int
		maxFile   int64
		wantError bool
	}{
		{"defaults fit the manifest's 1Gi emptyDir", 1 << 30, 4, 100_000_000, false},
		{"exactly enough", 800, 4, 100, false},
		{"one byte short", 799, 4, 100, true},
		{"ZIP copies count twice", 400, 4, 100, true},
		{"a tiny tmpfs", 1 << 20, 4, 1_000_000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSpool("/spool", tt.free, tt.files, tt.maxFile)
			if (err != nil) != tt.wantError {
				t.Fatalf("checkSpool(free %d, %d × %d) = %v, want error %v", tt.free, tt.files, tt.maxFile, err, tt.wantError)
			}
			if err != nil && !strings.Contains(err.Error(), "--max-file-size") {
				t.Errorf("the error does not name the flag to change: %v", err)
			}
		})
	}
}

// The real manager binary refuses to start, before it opens the store or talks to the API
// server, when its downloads would not fit the spool directory: here a real 1 MiB tmpfs.
// The last case fits and shows the same setup does reach out when the check passes.
func TestManagerRefusesSpoolTooSmall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root; run this test as root (as CI does)")
	}
	bin := buildManager(t)
	spool := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", spool).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", spool).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", spool, err, out)
		}
	})

	tests := []struct {
		name        string
		args        []string
		wantCode    int
		wantStderr  []string
		wantConnect bool
	}{
		{
			name:       "4 files of 1M do not fit 1 MiB",
			args:       []string{"--concurrent-files=4", "--max-file-size=1M"},
			wantCode:   1,
			wantStderr: []string{"manager: the spool directory " + spool + " has", "--concurrent-files=4 downloads of up to --max-file-size=1 MB need 8 MB"},
		},
		{
			name:       "the default ceiling does not fit 1 MiB",
			args:       nil,
			wantCode:   1,
			wantStderr: []string{"--max-file-size=100 MB need 800 MB"},
		},
		{
			name:       "a file ceiling above the daily ceiling",
			args:       []string{"--max-file-size=2G", "--max-daily-limit=1G"},
			wantCode:   1,
			wantStderr: []string{"--max-file-size=2 GB is above --max-daily-limit=1 GB"},
		},
		{
			name:       "not a quantity",
			args:       []string{"--max-file-size=lots"},
			wantCode:   2,
			wantStderr: []string{`invalid value "lots" for flag -max-file-size`},
		},
		{
			name:        "2 files of 100k fit: the manager goes on to the store",
			args:        []string{"--concurrent-files=2", "--max-file-size=100k"},
			wantCode:    1,
			wantStderr:  []string{"opening the store"},
			wantConnect: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One listener stands in for both the store and the API server: any connection
			// means the manager got past the check.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var connections atomic.Int32
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					connections.Add(1)
					c.Close()
				}
			}()
			dir := t.TempDir()
			kubeconfig := filepath.Join(dir, "kubeconfig")
			if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(kubeconfigTemplate, ln.Addr())), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{
				"--spool-dir=" + spool,
				"--store=postgres://manager@" + ln.Addr().String() + "/store?sslmode=disable&connect_timeout=5",
				"--metrics-bind-address=0", "--health-probe-bind-address=0",
			}, tt.args...)
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PGPASSWORD=x")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("the manager did not exit within 60s; stderr:\n%s", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tt.wantCode {
				t.Fatalf("exit: %v, want code %d; stderr:\n%s", err, tt.wantCode, stderr.String())
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
				}
			}
			if got := connections.Load() > 0; got != tt.wantConnect {
				t.Errorf("connected to the store or API server: %v, want %v (stderr:\n%s)", got, tt.wantConnect, stderr.String())
			}
		})
	}
}

const kubeconfigTemplate = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://%s
    insecure-skip-tls-verify: true
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
users:
- name: u
  user: {token: not-a-real-token}
`

// buildManager builds the real manager binary, as the image does.
func buildManager(t *testing.T) string {
	t.Helper()
	root, err := testsupport.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}
	return bin
}
