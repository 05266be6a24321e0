package bucket_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

func TestParseEndpointPattern(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"https://minio.example", "https://minio.example:443"},
		{"http://minio.example", "http://minio.example:80"},
		{"https://MinIO.Example.:9000/", "https://minio.example:9000"},
		{"https://*.minio.example:9000", "https://*.minio.example:9000"},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"http://[::1]:9000", "http://[::1]:9000"},
		{"http://[::ffff:10.0.0.5]:9000", "http://10.0.0.5:9000"},
		{"minio.example:9000", ""},
		{"ftp://minio.example", ""},
		{"https://minio.example/bucket", ""},
		{"https://minio.example?x=1", ""},
		{"https://user@minio.example", ""},
		{"https://*", ""},
		{"https://a.*.example", ""},
		{"https://*.10.0.0.5", ""},
		{"https://minio.example:0", ""},
		{"https://minio.example:99999", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := bucket.ParseEndpointPattern(tc.in)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("parsed as %s, want an error", p)
			case tc.want != "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && p.String() != tc.want:
				t.Errorf("= %s, want %s", p, tc.want)
			}
		})
	}
}

func TestParseLists(t *testing.T) {
	pats, err := bucket.ParseEndpointPatterns(" https://a.example , ,http://10.0.0.5:9000")
	if err != nil || len(pats) != 2 {
		t.Fatalf("patterns %v, %v", pats, err)
	}
	if _, err := bucket.ParseEndpointPatterns("https://a.example,nope"); err == nil {
		t.Error("a bad item must fail the whole list")
	}
	cidrs, err := bucket.ParseCIDRs("10.0.0.0/8, 192.168.1.7 ,fd00::/8,::ffff:10.1.0.0/112")
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "10.1.0.0/16"}
	if err != nil || len(cidrs) != len(want) {
		t.Fatalf("CIDRs %v, %v", cidrs, err)
	}
	for i, w := range want {
		if cidrs[i].String() != w {
			t.Errorf("CIDR %d = %s, want %s", i, cidrs[i], w)
		}
	}
	if _, err := bucket.ParseCIDRs("10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR must fail")
	}
}

func mustPatterns(t *testing.T, list string) []bucket.EndpointPattern {
	t.Helper()
	p, err := bucket.ParseEndpointPatterns(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustCIDRs(t *testing.T, list string) []netip.Prefix {
	t.Helper()
	p, err := bucket.ParseCIDRs(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The check when a client is built: the allow-list and the operator's identity.
func TestPolicyRefusesEndpointsAtNew(t *testing.T) {
	policy := &bucket.EndpointPolicy{
		AllowedEndpoints:          mustPatterns(t, "https://minio.example:9000,https://*.s3.example,http://10.0.0.5:9000"),
		OperatorIdentityEndpoints: mustPatterns(t, "https://*.s3.example"),
	}
	static := &bucket.StaticCredentials{AccessKeyID: "AKIAFAKE", SecretAccessKey: "fake-secret-key-value"}
	tests := []struct {
		name       string
		endpoint   string
		operatorID bool // no credentials: the operator's own identity
		sts        string
		wantReason string // "" means allowed
	}{
		{"AWS itself", "", false, "", ""},
		{"AWS with the operator's identity", "", true, "", ""},
		{"listed exactly", "https://minio.example:9000", false, "", ""},
		{"listed, other case, with a path", "https://MINIO.example:9000/s3", false, "", ""},
		{"wildcard", "https://a.b.s3.example", false, "", ""},
		{"wildcard does not match its own suffix", "https://s3.example", false, "", bucket.ReasonEndpointNotAllowed},
		{"wildcard is not a substring match", "https://evil-s3.example", false, "", bucket.ReasonEndpointNotAllowed},
		{"other port", "https://minio.example:9001", false, "", bucket.ReasonEndpointNotAllowed},
		{"default port is not the listed one", "https://minio.example", false, "", bucket.ReasonEndpointNotAllowed},
		{"other scheme", "http://minio.example:9000", false, "", bucket.ReasonEndpointNotAllowed},
		{"address listed", "http://10.0.0.5:9000", false, "", ""},
		{"address as a mapped IPv6", "http://[::ffff:10.0.0.5]:9000", false, "", ""},
		{"cloud metadata", "http://169.254.169.254", false, "", bucket.ReasonEndpointNotAllowed},
		{"loopback by name", "http://localhost:9000", false, "", bucket.ReasonEndpointNotAllowed},
		{"operator identity to an endpoint not allowed for it", "https://minio.example:9000", true, "", bucket.ReasonOperatorIdentityEndpointNotAllowed},
		{"operator identity allowed", "https://x.s3.example", true, "", ""},
		{"operator identity, endpoint not listed at all", "https://evil.example", true, "", bucket.ReasonEndpointNotAllowed},
		{"custom STS endpoint not listed", "", false, "https://sts.evil.example", bucket.ReasonEndpointNotAllowed},
		{"custom STS endpoint listed", "", false, "https://minio.example:9000", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := bucket.Config{Bucket: "b", Region: "us-east-1", Endpoint: tc.endpoint, ForcePathStyle: true, Credentials: static, Policy: policy}
			if tc.operatorID {
				cfg.Credentials = nil
			}
			if tc.sts != "" {
				cfg.AssumeRole = &bucket.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/r", STSEndpoint: tc.sts}
			}
			_, err := bucket.New(context.Background(), cfg)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if got := bucket.ReasonOf(err); got != tc.wantReason {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.wantReason)
			}
			if bucket.IsTransient(err) {
				t.Error("a refusal by policy is not transient")
			}
			var be *bucket.Error
			_ = errors.As(err, &be)
			if tc.wantReason == bucket.ReasonEndpointNotAllowed && be.Message != bucket.EndpointNotAllowedMessage {
				t.Errorf("message %q, want the fixed one", be.Message)
			}
		})
	}
	t.Run("no policy checks nothing", func(t *testing.T) {
		cfg := bucket.Config{Bucket: "b", Endpoint: "http://169.254.169.254"}
		if _, err := bucket.New(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	})
}

// The dial guard's decision on the address actually dialed.
func TestPolicyRefusesAddressesAtDial(t *testing.T) {
	policy := &bucket.EndpointPolicy{
		DeniedCIDRs:  mustCIDRs(t, "10.0.0.0/8,fd00:10::/32"),
		AllowedCIDRs: mustCIDRs(t, "10.1.0.0/16,127.0.0.2"),
		APIServer:    []netip.Addr{netip.MustParseAddr("192.168.49.2")},
	}
	exempt := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9000"), netip.MustParseAddrPort("10.2.0.5:9000")}
	tests := []struct {
		addr    string
		refused bool
	}{
		{"52.216.1.1:443", false},          // a public address (AWS S3)
		{"[2600:1f18::1]:443", false},      // a public IPv6 address
		{"127.0.0.1:443", true},            // loopback
		{"127.1.2.3:9000", true},           // all of 127/8
		{"[::1]:443", true},                // IPv6 loopback
		{"[::ffff:127.0.0.1]:443", true},   // IPv4-mapped loopback
		{"169.254.169.254:80", true},       // cloud metadata (link-local)
		{"[fe80::1]:80", true},             // IPv6 link-local
		{"[fd00:ec2::254]:80", true},       // AWS IMDS over IPv6
		{"100.100.100.200:80", true},       // Alibaba Cloud metadata
		{"[64:ff9b::a9fe:a9fe]:80", true},  // NAT64 of 169.254.169.254
		{"[fd00:ec2::23]:80", true},        // EKS Pod Identity agent over IPv6
		{"168.63.129.16:80", true},         // Azure wire server
		{"[64:ff9b:1::7f00:1]:80", true},   // local-use NAT64 of 127.0.0.1
		{"[64:ff9b::3418:101]:443", false}, // NAT64 of a public address
		{"0.0.0.0:80", true},               // unspecified
		{"0.1.2.3:80", true},               // "this network"
		{"[::]:80", true},                  // IPv6 unspecified
		{"224.0.0.1:80", true},             // multicast
		{"[ff02::1]:80", true},             // IPv6 multicast
		{"255.255.255.255:80", true},       // broadcast
		{"192.168.49.2:8443", true},        // the API server, any port
		{"192.168.49.2:9000", true},        //
		{"10.96.0.1:443", true},            // --denied-cidrs
		{"[fd00:10::1]:443", true},         // --denied-cidrs, IPv6
		{"10.1.2.3:9000", false},           // --allowed-cidrs beats --denied-cidrs
		{"127.0.0.2:80", false},            // --allowed-cidrs beats loopback
		{"127.0.0.1:9000", false},          // the client's endpoint, allowed by address
		{"127.0.0.1:9001", true},           // same address, other port: not exempt
		{"10.2.0.5:9000", false},           // exempt despite --denied-cidrs
		{"[::ffff:10.2.0.5]:9000", false},  // the same, mapped
		{"192.168.1.1:443", false},         // private but not denied by this policy
		{"[fe80::1%25eth0]:80", true},      // zoned link-local (Go spells the zone %eth0)
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			addr := strings.Replace(tc.addr, "%25", "%", 1)
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := policy.Refused(ap, exempt); got != tc.refused {
				t.Errorf("Refused = %v, want %v", got, tc.refused)
			}
		})
	}
	t.Run("the zero policy refuses the always-refused and nothing else", func(t *testing.T) {
		var zero bucket.EndpointPolicy
		if !zero.Refused(netip.MustParseAddrPort("169.254.169.254:80"), nil) || zero.Refused(netip.MustParseAddrPort("10.0.0.1:80"), nil) {
			t.Error("zero policy")
		}
	})
}

// recorder is a server that must never be reached: it counts connections and answers
// something a tenant must never read.
type recorder struct {
	*httptest.Server
	conns atomic.Int64
}

const echoBait = "internal-service-says-TOP-SECRET"

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{}
	r.Server = httptest.NewUnstartedServer(h)
	r.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

func portOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// Through a real client: a name that resolves to loopback is refused at dial time though
// it is on the allow-list, with no connection, no retry and the fixed message; the same
// server listed by address is reached.
func TestDialGuardThroughTheClient(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, listOK) })
	port := portOf(t, srv.URL)
	policy := &bucket.EndpointPolicy{AllowedEndpoints: mustPatterns(t, "http://localhost:"+port+",http://127.0.0.1:"+port)}
	tests := []struct {
		name     string
		endpoint string
		refused  bool
	}{
		{"name resolving to loopback", "http://localhost:" + port, true},
		{"listed by address", "http://127.0.0.1:" + port, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.conns.Load()
			cfg := fakeConfig(tc.endpoint)
			cfg.Policy = policy
			c, ct := newClient(t, cfg)
			objs, _, err := listAll(context.Background(), c, "p/")
			if !tc.refused {
				if err != nil || len(objs) != 1 {
					t.Fatalf("got %d objects, %v", len(objs), err)
				}
				return
			}
			assertReason(t, err, bucket.ReasonEndpointNotAllowed, bucket.EndpointNotAllowedMessage)
			if n := srv.conns.Load() - before; n != 0 {
				t.Errorf("%d connection(s) reached the server", n)
			}
			if n := ct.Count(bucket.OpListObjectsV2); n != 1 {
				t.Errorf("%d attempts: a refused dial must not be retried", n)
			}
			if bucket.IsTransient(err) {
				t.Error("a refused dial is not transient")
			}
		})
	}
}

// Under a policy, what a custom endpoint answers reaches the message only as an S3 error
// code and fixed text; a 200 that is not a listing is an error, never "no objects".
func TestCustomEndpointAnswersAreNotEchoed(t *testing.T) {
	xmlError := func(status int, code string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>`+echoBait+`</Message></Error>`)
		}
	}
	body := func(status int, contentType, s string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, s)
		}
	}
	html := "<html><head><title>" + echoBait + "</title></head><body><p>" + echoBait + "</p></body></html>"
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		policy     bool
		wantReason string
		wantIn     string
	}{
		{"403 with the service's words", xmlError(http.StatusForbidden, "AccessDenied"), true, bucket.ReasonAccessDenied, "was denied: check"},
		{"400 with an unknown code", xmlError(http.StatusBadRequest, "WeirdCode"), true, bucket.ReasonS3Error, "error code WeirdCode"},
		{"400 with a code that is prose", xmlError(http.StatusBadRequest, "not a code "+echoBait), true, bucket.ReasonS3Error, "no S3 error code"},
		// The SDK names an error without an S3 body after its HTTP status.
		{"500 HTML page", body(http.StatusInternalServerError, "text/html", html), true, bucket.ReasonS3Error, "error code InternalServerError"},
		{"401 HTML page", body(http.StatusUnauthorized, "text/html", html), true, bucket.ReasonS3Error, "error code Unauthorized"},
		{"200 HTML page", body(http.StatusOK, "text/html", html), true, bucket.ReasonInvalidResponse, "not an S3 response"},
		{"200 malformed HTML", body(http.StatusOK, "text/html", "<html><meta charset=utf-8><p>"+echoBait), true, bucket.ReasonInvalidResponse, "not an S3 response"},
		{"200 JSON", body(http.StatusOK, "application/json", `{"msg":"`+echoBait+`"}`), true, bucket.ReasonInvalidResponse, "not an S3 response"},
		{"200 empty", body(http.StatusOK, "text/plain", ""), true, bucket.ReasonInvalidResponse, "not an S3 response"},
		{"200 empty, no policy", body(http.StatusOK, "text/plain", ""), false, bucket.ReasonInvalidResponse, "not an S3 response"},
		{"200 other XML, no policy", body(http.StatusOK, "application/xml", "<Status>ok</Status>"), false, bucket.ReasonInvalidResponse, "not an S3 response"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRecorder(t, tc.handler)
			cfg := fakeConfig(srv.URL)
			cfg.MaxAttempts = 1
			if tc.policy {
				cfg.Policy = &bucket.EndpointPolicy{AllowedEndpoints: mustPatterns(t, srv.URL)}
			}
			c, _ := newClient(t, cfg)
			_, _, err := listAll(context.Background(), c, "p/")
			assertReason(t, err, tc.wantReason, tc.wantIn)
			if strings.Contains(err.Error(), echoBait) || strings.Contains(err.Error(), "html") {
				t.Errorf("the message echoes the endpoint's answer: %v", err)
			}
		})
	}
}

// Under a policy, refused, closed and TLS-failed targets read alike: the same reason,
// message and transience, so status does not tell them apart.
func TestCustomEndpointNetworkFailuresReadAlike(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	plainAsTLS := "https://" + strings.TrimPrefix(plain.URL, "http://")
	// A filtered port: it accepts and never answers, so the request times out.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
		}
	}()
	silentURL := "http://" + silent.Addr().String()
	var first string
	for _, endpoint := range []string{tlsSrv.URL, closedURL, plainAsTLS, silentURL} {
		cfg := fakeConfig(endpoint)
		cfg.MaxAttempts = 1
		cfg.Timeout = 300 * time.Millisecond
		cfg.Policy = &bucket.EndpointPolicy{AllowedEndpoints: mustPatterns(t, endpoint)}
		c, _ := newClient(t, cfg)
		_, _, err := listAll(context.Background(), c, "p/")
		assertReason(t, err, bucket.ReasonEndpointUnreachable, "could not reach the endpoint")
		if !bucket.IsTransient(err) {
			t.Errorf("%s: not transient, unlike the others", endpoint)
		}
		var be *bucket.Error
		_ = errors.As(err, &be)
		if first == "" {
			first = be.Message
		} else if be.Message != first {
			t.Errorf("%s reads %q, unlike %q", endpoint, be.Message, first)
		}
	}
}

// The operator's own identity keeps working under a policy: the default credential chain
// has its own HTTP client, so instance metadata on a refused address (here a fake IMDS on
// loopback) still answers, while the S3 client's dial guard applies. The endpoint must be
// allowed for the operator's identity.
func TestOperatorIdentityUnderAPolicy(t *testing.T) {
	isolateAWSEnv(t)
	var imdsCalls atomic.Int64
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imdsCalls.Add(1)
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			_, _ = io.WriteString(w, "imds-token")
		case strings.HasSuffix(r.URL.Path, "/security-credentials/") || strings.HasSuffix(r.URL.Path, "/security-credentials-extended/"):
			_, _ = io.WriteString(w, "operator-role")
		case strings.HasSuffix(r.URL.Path, "/operator-role"):
			_, _ = io.WriteString(w, `{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"`+srv.RootUser+`","SecretAccessKey":"`+
				srv.RootPassword+`","Token":"","Expiration":"2099-01-01T00:00:00Z"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(imds.Close)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	tests := []struct {
		name       string
		identityOK string // --operator-identity-endpoints
		wantReason string
	}{
		{"endpoint allowed for the operator's identity", srv.Endpoint, ""},
		{"endpoint allowed, but not for the operator's identity", "", bucket.ReasonOperatorIdentityEndpointNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rootConfig()
			cfg.Credentials = nil
			cfg.Policy = &bucket.EndpointPolicy{
				AllowedEndpoints:          mustPatterns(t, srv.Endpoint),
				OperatorIdentityEndpoints: mustPatterns(t, tc.identityOK),
			}
			if tc.wantReason != "" {
				_, err := bucket.New(context.Background(), cfg)
				assertReason(t, err, tc.wantReason, "--operator-identity-endpoints")
				return
			}
			c, _ := newClient(t, cfg)
			if objs, _, err := listAll(context.Background(), c, "conversations/"); err != nil || len(objs) != 2 {
				t.Fatalf("got %d objects, err %v", len(objs), err)
			}
			if imdsCalls.Load() == 0 {
				t.Error("the credentials did not come from instance metadata")
			}
		})
	}
}

// Under a policy a custom endpoint cannot redirect the signed request elsewhere, even to an
// address the dial guard would let through.
func TestCustomEndpointRedirectsAreNotFollowed(t *testing.T) {
	target := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, listOK) })
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			origin := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+r.URL.RequestURI(), status)
			})
			cfg := fakeConfig(origin.URL)
			cfg.MaxAttempts = 1
			// Both on the allow-list, and loopback in --allowed-cidrs: the dial guard lets the
			// target through, only the redirect rule can stop it.
			cfg.Policy = &bucket.EndpointPolicy{AllowedEndpoints: mustPatterns(t, origin.URL+","+target.URL), AllowedCIDRs: mustCIDRs(t, "127.0.0.1")}
			c, _ := newClient(t, cfg)
			before := target.conns.Load()
			if _, _, err := listAll(context.Background(), c, "p/"); err == nil {
				t.Fatal("a redirect was followed to a listing")
			} else if strings.Contains(err.Error(), target.URL) || strings.Contains(err.Error(), portOf(t, target.URL)) {
				t.Errorf("the message names the redirect target: %v", err)
			}
			if n := target.conns.Load() - before; n != 0 {
				t.Errorf("%d connection(s) reached the redirect target", n)
			}
		})
	}
}

// Under a policy a custom endpoint is addressed path-style even when the source asked for
// virtual-hosted style: <bucket>.<host> is a host the tenant picks and the admin never
// listed. Without a policy the source's choice stands. The transport records where each
// request would go and answers it itself, so nothing is dialed.
func TestPolicyAddressesCustomEndpointsPathStyle(t *testing.T) {
	const endpoint = "http://minio.example:9000"
	tests := []struct {
		name   string
		policy *bucket.EndpointPolicy
		want   string
	}{
		{"under a policy", &bucket.EndpointPolicy{AllowedEndpoints: mustPatterns(t, endpoint)}, "minio.example:9000/fake"},
		{"without a policy", nil, "fake.minio.example:9000/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			cfg := fakeConfig(endpoint)
			cfg.ForcePathStyle = false
			cfg.Policy = tt.policy
			cfg.WrapTransport = func(http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					got = r.URL.Host + r.URL.Path
					return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/xml"}},
						Body: io.NopCloser(strings.NewReader(listOK)), Request: r}, nil
				})
			}
			c, err := bucket.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := listAll(context.Background(), c, "p/"); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("request went to %q, want %q", got, tt.want)
			}
		})
	}
}
