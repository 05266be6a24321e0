package bucket_test

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

// dialCounter counts the connections the transports under it dial (not reuse).
type dialCounter struct{ dialed atomic.Int64 }

func (d *dialCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				d.dialed.Add(1)
			}
		}}
		return next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	})
}

// openSockets counts this process's open socket descriptors: MinIO runs in a process of
// its own, so these are the client's connections.
func openSockets(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}

// TestTransportPoolKeepsConnectionsFlat lists one bucket as many sources would, one
// discovery each, with and without a pool. Without it every source dials and keeps its
// own idle connection; with it the sources share one, so the sockets and goroutines a
// manager holds at rest do not grow with the number of sources.
func TestTransportPoolKeepsConnectionsFlat(t *testing.T) {
	const sources = 60
	tests := []struct {
		name        string
		pool        *bucket.TransportPool
		maxDialed   int64
		maxSockets  int
		minDialed   int64
		wantEntries int
	}{
		{name: "pooled", pool: bucket.NewTransportPool(), maxDialed: 2, maxSockets: 2, wantEntries: 1},
		{name: "one transport per source", pool: nil, minDialed: sources},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d dialCounter
			socketsBefore, goroutinesBefore := openSockets(t), runtime.NumGoroutine()
			var clients []*bucket.S3
			for range sources {
				cfg := rootConfig()
				cfg.Transports = tc.pool
				cfg.WrapTransport = d.wrap
				c, err := bucket.New(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := listAll(context.Background(), c, "conversations/"); err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
			}
			sockets, goroutines := openSockets(t)-socketsBefore, runtime.NumGoroutine()-goroutinesBefore
			t.Logf("%d sources: %d connections dialed, %d sockets and %d goroutines more at rest", sources, d.dialed.Load(), sockets, goroutines)
			if tc.pool != nil {
				if d.dialed.Load() > tc.maxDialed || sockets > tc.maxSockets || goroutines > 2*tc.maxSockets {
					t.Errorf("pooled: %d dialed, %d sockets and %d goroutines more; want at most %d, %d and %d",
						d.dialed.Load(), sockets, goroutines, tc.maxDialed, tc.maxSockets, 2*tc.maxSockets)
				}
				if got := tc.pool.Len(); got != tc.wantEntries {
					t.Errorf("pool holds %d transports, want %d (same endpoint and credentials)", got, tc.wantEntries)
				}
				return
			}
			// The baseline proves the measurement sees what pooling saves.
			if d.dialed.Load() < tc.minDialed || sockets < sources/2 {
				t.Errorf("unpooled: %d dialed, %d sockets open; want at least %d dialed and %d sockets", d.dialed.Load(), sockets, tc.minDialed, sources/2)
			}
			_ = clients
		})
	}
}

func TestTransportPoolSeparatesIdentitiesAndTrust(t *testing.T) {
	pool := bucket.NewTransportPool()
	build := func(mut func(*bucket.Config)) {
		t.Helper()
		cfg := rootConfig()
		cfg.Transports = pool
		mut(&cfg)
		if _, err := bucket.New(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		mut  func(*bucket.Config)
		want int
	}{
		{"first source", func(*bucket.Config) {}, 1},
		{"same endpoint and credentials, other bucket", func(c *bucket.Config) { c.Bucket = "other" }, 1},
		{"other secret key", func(c *bucket.Config) {
			c.Credentials = &bucket.StaticCredentials{AccessKeyID: srv.RootUser, SecretAccessKey: "other"}
		}, 2},
		{"other session token", func(c *bucket.Config) {
			c.Credentials = &bucket.StaticCredentials{AccessKeyID: srv.RootUser, SecretAccessKey: srv.RootPassword, SessionToken: "t"}
		}, 3},
		{"assumed role", func(c *bucket.Config) { c.AssumeRole = &bucket.AssumeRole{RoleARN: "arn:aws:iam::1:role/r"} }, 4},
		{"other endpoint", func(c *bucket.Config) { c.Endpoint = "http://127.0.0.2:1" }, 5},
		{"policy", func(c *bucket.Config) {
			c.Policy = &bucket.EndpointPolicy{}
			c.Endpoint = ""
			c.Region = "us-east-1"
		}, 6},
	}
	for _, s := range steps {
		build(s.mut)
		if got := pool.Len(); got != s.want {
			t.Fatalf("after %q the pool holds %d transports, want %d", s.name, got, s.want)
		}
	}
}
