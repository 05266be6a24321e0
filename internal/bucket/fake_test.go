package bucket_test

// Error paths S3 will not produce on demand (throttling, TLS, stalls) against in-process
// fakes; everything else runs against MinIO.

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

const listOK = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>fake</Name><Prefix>p/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>p/a.json</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>&quot;abc123&quot;</ETag><Size>3</Size></Contents></ListBucketResult>`

const slowDown = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>r1</RequestId></Error>`

// fakeS3 answers ListObjectsV2 with listOK, after throttling the first `throttle` requests.
func fakeS3(throttle int) http.HandlerFunc {
	var seen atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= int64(throttle) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, slowDown)
			return
		}
		_, _ = io.WriteString(w, listOK)
	}
}

func fakeConfig(endpoint string) bucket.Config {
	return bucket.Config{
		Bucket:         "fake",
		Endpoint:       endpoint,
		ForcePathStyle: true,
		Credentials:    &bucket.StaticCredentials{AccessKeyID: "AKIAFAKE", SecretAccessKey: "fake-secret-key-value"},
		MaxAttempts:    3,
		MaxBackoff:     time.Millisecond, // keep retries instant in tests
	}
}

func TestThrottlingIsRetriedWithBackoff(t *testing.T) {
	tests := []struct {
		name       string
		throttle   int
		wantReason string
		wantLists  int
	}{
		{"recovers after two SlowDowns", 2, "", 3},
		{"gives up after max attempts", 100, bucket.ReasonThrottled, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(fakeS3(tc.throttle))
			defer ts.Close()
			c, ct := newClient(t, fakeConfig(ts.URL))
			objs, _, err := listAll(context.Background(), c, "p/")
			if got := ct.Count(bucket.OpListObjectsV2); got != tc.wantLists {
				t.Errorf("ListObjectsV2 requests = %d, want %d", got, tc.wantLists)
			}
			if tc.wantReason == "" {
				if err != nil || len(objs) != 1 || objs[0].ETag != "abc123" {
					t.Fatalf("got %+v, %v; want the listed object after retries", objs, err)
				}
				return
			}
			assertReason(t, err, tc.wantReason, "SlowDown) and 3 attempts")
			if !bucket.IsTransient(err) {
				t.Error("Throttled must be transient")
			}
		})
	}
}

func TestCABundle(t *testing.T) {
	ts := httptest.NewUnstartedServer(fakeS3(0))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshake is expected
	ts.StartTLS()
	defer ts.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})

	t.Run("trusted with its CA", func(t *testing.T) {
		cfg := fakeConfig(ts.URL)
		cfg.CABundle = ca
		c, _ := newClient(t, cfg)
		if objs, _, err := listAll(context.Background(), c, "p/"); err != nil || len(objs) != 1 {
			t.Fatalf("got %d objects, err %v", len(objs), err)
		}
	})
	t.Run("rejected without it", func(t *testing.T) {
		c, ct := newClient(t, fakeConfig(ts.URL))
		_, _, err := listAll(context.Background(), c, "p/")
		assertReason(t, err, bucket.ReasonEndpointUnreachable, "TLS verification")
		if !strings.Contains(err.Error(), "CA bundle") {
			t.Errorf("message does not name the fix: %v", err)
		}
		if bucket.IsTransient(err) {
			t.Error("an untrusted certificate is not transient")
		}
		if n := ct.Count(bucket.OpListObjectsV2); n != 1 {
			t.Errorf("%d requests: a TLS verification failure must not be retried", n)
		}
	})
	t.Run("bundle without certificates", func(t *testing.T) {
		cfg := fakeConfig(ts.URL)
		cfg.CABundle = []byte("not pem")
		_, err := bucket.New(context.Background(), cfg)
		assertReason(t, err, bucket.ReasonInvalidConfig, "no PEM certificate")
	})
}

// blockingServer calls respond, then holds the request open until the client gives up or
// the test ends.
func blockingServer(t *testing.T, respond func(w http.ResponseWriter)) *httptest.Server {
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond(w)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); ts.Close() })
	return ts
}

func TestTimeouts(t *testing.T) {
	t.Run("request with no answer", func(t *testing.T) {
		ts := blockingServer(t, func(http.ResponseWriter) {})
		cfg := fakeConfig(ts.URL)
		cfg.Timeout = 100 * time.Millisecond
		c, _ := newClient(t, cfg)
		_, _, err := listAll(context.Background(), c, "p/")
		assertReason(t, err, bucket.ReasonTimeout, "within 100ms")
	})
	t.Run("download that stalls", func(t *testing.T) {
		ts := blockingServer(t, func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "10")
			w.Header().Set("ETag", `"e1"`)
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "abc")
			w.(http.Flusher).Flush()
		})
		cfg := fakeConfig(ts.URL)
		cfg.Timeout = 200 * time.Millisecond
		c, _ := newClient(t, cfg)
		body, obj, err := readObject(context.Background(), c, "p/a.json")
		if obj.ETag != "e1" || obj.Size != 10 {
			t.Errorf("object %+v, want ETag e1 size 10", obj)
		}
		if string(body) != "abc" {
			t.Errorf("read %q before the stall, want %q", body, "abc")
		}
		assertReason(t, err, bucket.ReasonTimeout, "reading s3://fake/p/a.json made no progress for 200ms")
	})
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(*bucket.Config)
		wantReason string
		wantIn     string
	}{
		{"no bucket", func(c *bucket.Config) { c.Bucket = "" }, bucket.ReasonInvalidConfig, "no bucket name"},
		{"endpoint without scheme", func(c *bucket.Config) { c.Endpoint = "minio:9000" }, bucket.ReasonInvalidConfig, "not an http(s) URL"},
		{"endpoint with query", func(c *bucket.Config) { c.Endpoint = "https://h/?X-Amz-Signature=abc" }, bucket.ReasonInvalidConfig, "must not carry a query"},
		{"no secret key", func(c *bucket.Config) { c.Credentials.SecretAccessKey = "" }, bucket.ReasonInvalidCredentials, "secret access key"},
		{"assume role without ARN", func(c *bucket.Config) { c.AssumeRole = &bucket.AssumeRole{} }, bucket.ReasonInvalidConfig, "role ARN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeConfig("http://127.0.0.1:1")
			tc.mutate(&cfg)
			_, err := bucket.New(context.Background(), cfg)
			assertReason(t, err, tc.wantReason, tc.wantIn)
			if strings.Contains(err.Error(), "abc") {
				t.Errorf("error echoes the endpoint's query: %v", err)
			}
		})
	}
}

func TestCredentialsNeverFormat(t *testing.T) {
	cfg := fakeConfig("http://127.0.0.1:1")
	cfg.Credentials.SessionToken = "session-token-value"
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(*cfg.Credentials)} {
		if strings.Contains(s, "fake-secret-key-value") || strings.Contains(s, "session-token-value") {
			t.Fatalf("formatted config leaks a secret: %s", s)
		}
	}
}

func TestOperationFromRequest(t *testing.T) {
	tests := []struct {
		method, url, want string
	}{
		{http.MethodGet, "http://h/b?list-type=2&prefix=p%2F", bucket.OpListObjectsV2},
		{http.MethodGet, "http://h/b/p/a.json", bucket.OpGetObject},
		{http.MethodHead, "http://h/b/p/a.json", bucket.OpHeadObject},
		{http.MethodPut, "http://h/b/p/a.json", bucket.OpPutObject},
		{http.MethodDelete, "http://h/b/p/a.json", bucket.OpDeleteObject},
		{http.MethodPut, "http://h/b", bucket.OpOther},
		{http.MethodGet, "http://h/b?location", bucket.OpOther},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(tc.method, tc.url, nil)
		if got := bucket.Operation(req); got != tc.want {
			t.Errorf("%s %s = %s, want %s", tc.method, tc.url, got, tc.want)
		}
	}
}

func TestMessagesForTheController(t *testing.T) {
	if got, want := bucket.NoObjectsMessage("b", "conversations/"), "no objects found under s3://b/conversations/ — check the prefix and trailing slash"; got != want {
		t.Errorf("NoObjectsMessage = %q, want %q", got, want)
	}
	err := bucket.MissingSecretKeys("ns/creds", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
	assertReason(t, err, bucket.ReasonInvalidCredentials, "ns/creds is missing key(s) AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY")
	if bucket.IsTransient(err) || bucket.ReasonOf(fmt.Errorf("wrapped: %w", err)) != bucket.ReasonInvalidCredentials {
		t.Error("a Secret missing keys is a wrapped, non-transient InvalidCredentials")
	}
	if bucket.ReasonOf(io.EOF) != "" || bucket.IsTransient(io.EOF) {
		t.Error("a foreign error has no reason")
	}
}
