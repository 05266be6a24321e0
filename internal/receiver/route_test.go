package receiver_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/avon-ai/data-import-operator/internal/receiver"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name      string
		route     receiver.Route
		forwarded bool
		want      receiver.Action
	}{
		{name: "served here", route: receiver.Route{Local: true}, want: receiver.ActEnqueue},
		{name: "handed on to the replica serving it", route: receiver.Route{Local: true}, forwarded: true, want: receiver.ActEnqueue},
		{name: "served elsewhere", route: receiver.Route{Owner: "10.0.0.2:9292"}, want: receiver.ActForward},
		{name: "served elsewhere, already handed on once: no second hop", route: receiver.Route{Owner: "10.0.0.2:9292"}, forwarded: true, want: receiver.ActUnavailable},
		{name: "no replica serves it (handover)", route: receiver.Route{}, want: receiver.ActUnavailable},
		{name: "no replica serves it, handed on", route: receiver.Route{}, forwarded: true, want: receiver.ActUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := receiver.Decide(tc.route, tc.forwarded); got != tc.want {
				t.Errorf("Decide(%+v, %v) = %v, want %v", tc.route, tc.forwarded, got, tc.want)
			}
		})
	}
}

// replicaUnderTest is one replica's receiver on a real listener.
type replicaUnderTest struct {
	h      *receiver.Handler
	srv    *httptest.Server
	mu     sync.Mutex
	queued []string
	logs   strings.Builder
	// headers are the Authorization and forwarded headers of every request it got.
	headers []string
}

func newReplicaUnderTest(t testing.TB, route func(string) receiver.Route) *replicaUnderTest {
	t.Helper()
	r := &replicaUnderTest{}
	reg := receiver.NewRegistry()
	reg.Set(receiver.Target{Source: "a/src", Bucket: "logs", Prefix: "conversations/"}, "a", "src", "token-of-tenant-a-0123")
	r.h = &receiver.Handler{
		Registry: reg, Requests: receiver.NewRequestsCounter(), Route: route,
		Enqueue: func(source string, keys []string) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.queued = append(r.queued, source+":"+strings.Join(keys, ","))
			return nil
		},
		Log: funcr.New(func(prefix, args string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.logs.WriteString(prefix + args + "\n")
		}, funcr.Options{}),
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Get("Authorization")+"|"+req.Header.Get(receiver.ForwardedHeader))
		r.mu.Unlock()
		r.h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replicaUnderTest) addr() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *replicaUnderTest) count(result string) float64 {
	return testutil.ToFloat64(r.h.Requests.WithLabelValues(result))
}

func (r *replicaUnderTest) takeQueued() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := strings.Join(r.queued, ";")
	r.queued = nil
	return q
}

// Two replicas over real HTTP: the one that does not serve the source authenticates the
// request, hands it to the one that does, and answers with its answer; the owner checks
// the token again and queues the keys once. An unauthenticated request costs the owner
// nothing, and neither the token nor the request appears in a log.
func TestForwardToOwner(t *testing.T) {
	const token = "token-of-tenant-a-0123"
	var ownerRoute receiver.Route
	owner := newReplicaUnderTest(t, func(string) receiver.Route { return ownerRoute })
	ownerRoute = receiver.Route{Local: true}
	var route receiver.Route
	other := newReplicaUnderTest(t, func(string) receiver.Route { return route })
	path := receiver.WebhookPath(token, "src", "a")
	postTo := func(r *replicaUnderTest, auth, mac string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, r.srv.URL+path, strings.NewReader(minioEvent))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if mac != "" {
			req.Header.Set(receiver.ForwardedHeader, mac)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	post := func(auth string) *http.Response { t.Helper(); return postTo(other, auth, "") }

	route = receiver.Route{Owner: owner.addr()}
	if resp := post("Bearer " + token); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("forwarded event answered %d, want the owner's 202", resp.StatusCode)
	}
	if q := owner.takeQueued(); q != "a/src:conversations/a b,c.json" {
		t.Errorf("owner queued %q", q)
	}
	if q := other.takeQueued(); q != "" {
		t.Errorf("the replica not serving the source queued %q", q)
	}
	// The token never left the replica it was sent to: the owner got a MAC only.
	owner.mu.Lock()
	if len(owner.headers) != 1 || strings.Contains(owner.headers[0], token) || !strings.HasPrefix(owner.headers[0], "|") {
		t.Errorf("the owner got %q; want a MAC and no credentials", owner.headers)
	}
	owner.mu.Unlock()
	if other.count(receiver.ResultForwarded) != 1 || owner.count(receiver.ResultAccepted) != 1 {
		t.Errorf("forwarded %v, owner accepted %v; want 1 and 1", other.count(receiver.ResultForwarded), owner.count(receiver.ResultAccepted))
	}

	// Unauthenticated or wrong token: answered here, the owner never sees it.
	for _, auth := range []string{"", "Bearer wrong-token-0123456789"} {
		if resp := post(auth); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("auth %q answered %d, want 401", auth, resp.StatusCode)
		}
	}
	if n := owner.count(receiver.ResultUnauthorized) + owner.count(receiver.ResultAccepted); n != 1 {
		t.Errorf("the owner got %v requests; unauthenticated ones must stop at the first replica", n)
	}

	// The owner already moved to a rotated token (a new path) and this replica not yet.
	owner.h.Registry.Set(receiver.Target{Source: "a/src", Bucket: "logs", Prefix: "conversations/"}, "a", "src", "rotated-token-of-a-0123")
	if resp := post("Bearer " + token); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		// The owner's path moved with its token: it does not know this path, so the
		// sender retries until this replica learns the new token too.
		t.Errorf("owner without the path: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	owner.h.Registry.Set(receiver.Target{Source: "a/src", Bucket: "logs", Prefix: "conversations/"}, "a", "src", token)

	// The shard moved away from the owner meanwhile: it does not hand the request on again.
	ownerRoute = receiver.Route{Owner: other.addr()}
	if resp := post("Bearer " + token); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("owner that lost the shard: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	ownerRoute = receiver.Route{Local: true}

	// A sender forging the forwarded header gets 401 from either replica, its token
	// notwithstanding (a handed-on request is authenticated by its MAC alone).
	for _, r := range []*replicaUnderTest{other, owner} {
		for _, mac := range []string{"1", strings.Repeat("ab", 32)} {
			if resp := postTo(r, "Bearer "+token, mac); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("forged forwarded header %q: %d, want 401", mac, resp.StatusCode)
			}
		}
	}

	// No replica serves the shard (handover): 503 and Retry-After, nothing queued.
	route = receiver.Route{}
	if resp := post("Bearer " + token); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "10" {
		t.Errorf("shard without owner: %d (Retry-After %q), want 503 with Retry-After 10", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// The owner is gone (killed pod, stale address): 503, and the log names no token.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	route = receiver.Route{Owner: dead}
	if resp := post("Bearer " + token); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("unreachable owner: %d, want 503", resp.StatusCode)
	}
	if q := owner.takeQueued() + other.takeQueued(); q != "" {
		t.Errorf("queued %q by requests that were refused", q)
	}
	for _, r := range []*replicaUnderTest{owner, other} {
		r.mu.Lock()
		logs := r.logs.String()
		r.mu.Unlock()
		if strings.Contains(logs, "token-of-tenant") || strings.Contains(logs, "Bearer") || strings.Contains(logs, "/hook/") {
			t.Errorf("a log shows the token or the request: %s", logs)
		}
	}
	other.mu.Lock()
	if !strings.Contains(other.logs.String(), "did not answer") {
		t.Errorf("the unreachable owner was not logged: %s", other.logs.String())
	}
	other.mu.Unlock()
}

// BenchmarkHandOn is what handing an event on costs against queueing it where it
// arrived: both over real loopback HTTP, the forwarded one through a second receiver.
//
//	go test -run '^$' -bench HandOn -benchmem -count 6 ./internal/receiver/ | benchstat -col /path -
func BenchmarkHandOn(b *testing.B) {
	const token = "token-of-tenant-a-0123"
	owner := newReplicaUnderTest(b, func(string) receiver.Route { return receiver.Route{Local: true} })
	other := newReplicaUnderTest(b, func(string) receiver.Route { return receiver.Route{Owner: owner.addr()} })
	path := receiver.WebhookPath(token, "src", "a")
	for _, bc := range []struct {
		name string
		to   *replicaUnderTest
	}{{"path=local", owner}, {"path=forwarded", other}} {
		b.Run(bc.name, func(b *testing.B) {
			client := &http.Client{}
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, bc.to.srv.URL+path, strings.NewReader(minioEvent))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Fatalf("HTTP %d", resp.StatusCode)
				}
				owner.takeQueued()
			}
		})
	}
}
