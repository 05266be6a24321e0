package bucket_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

func TestListPagesThroughMinIO(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		prefix    string
		wantN     int
		wantPages []int
		wantLists int
	}{
		{"three pages", manyPrefix, manyObjects, []int{1000, 1000, 500}, 3},
		{"one short page", "conversations/", 2, []int{2}, 1},
		{"nothing matches", "conversations-typo/", 0, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ct := newClient(t, rootConfig())
			objs, pages, err := listAll(ctx, c, tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != tc.wantN || !slices.Equal(pages, tc.wantPages) {
				t.Fatalf("got %d objects in pages %v, want %d in %v", len(objs), pages, tc.wantN, tc.wantPages)
			}
			if got := ct.Count(bucket.OpListObjectsV2); got != tc.wantLists {
				t.Errorf("ListObjectsV2 requests = %d, want ceil(N/1000) = %d", got, tc.wantLists)
			}
			if got := ct.Total(); got != tc.wantLists {
				t.Errorf("requests = %v, want only %d ListObjectsV2", ct.Counts(), tc.wantLists)
			}
			if !slices.IsSortedFunc(objs, func(a, b bucket.Object) int { return strings.Compare(a.Key, b.Key) }) {
				t.Error("listing is not in key order")
			}
			for _, o := range objs {
				if !strings.HasPrefix(o.Key, tc.prefix) || o.ETag == "" || strings.Contains(o.ETag, `"`) || o.Size <= 0 || o.LastModified.IsZero() {
					t.Fatalf("bad object %+v", o)
				}
			}
		})
	}
}

// StartAfter lists only the keys after the given one, in as many requests as they need.
func TestListStartAfter(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		after     string
		wantFirst string
		wantN     int
		wantLists int
	}{
		{"last 700", fmt.Sprintf("%s%07d.json", manyPrefix, 1799), fmt.Sprintf("%s%07d.json", manyPrefix, 1800), 700, 1},
		{"between keys", manyPrefix + "0001799", fmt.Sprintf("%s%07d.json", manyPrefix, 1799), 701, 1},
		{"before the prefix", "a", fmt.Sprintf("%s%07d.json", manyPrefix, 0), manyObjects, 3},
		{"after everything", manyPrefix + "z", "", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ct := newClient(t, rootConfig())
			var objs []bucket.Object
			err := c.List(ctx, manyPrefix, func(page []bucket.Object) error {
				objs = append(objs, page...)
				return nil
			}, bucket.StartAfter(tc.after))
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != tc.wantN || (tc.wantN > 0 && objs[0].Key != tc.wantFirst) {
				t.Fatalf("listed %d objects, want %d from %s", len(objs), tc.wantN, tc.wantFirst)
			}
			if got := ct.Count(bucket.OpListObjectsV2); got != tc.wantLists {
				t.Errorf("ListObjectsV2 requests = %d, want %d", got, tc.wantLists)
			}
		})
	}
}

func TestListStopsOnCallbackError(t *testing.T) {
	c, ct := newClient(t, rootConfig())
	stop := errors.New("stop")
	calls := 0
	err := c.List(context.Background(), manyPrefix, func([]bucket.Object) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 || ct.Count(bucket.OpListObjectsV2) != 1 {
		t.Fatalf("err %v after %d calls and %d requests; want the callback's error after the first page", err, calls, ct.Count(bucket.OpListObjectsV2))
	}
}

func TestOpenStreamsContentAndMetadata(t *testing.T) {
	ctx := context.Background()
	const key = "open/object.json"
	content := []byte(`[{"conversation_id":"c1","agent_id":"a1"}]`)
	etag, err := srv.Put(testBucket, key, content)
	if err != nil {
		t.Fatal(err)
	}
	c, ct := newClient(t, rootConfig())
	before := time.Now().Add(-time.Minute)

	got, obj, err := readObject(ctx, c, key, bucket.IfMatch(etag))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(content) {
		t.Fatalf("content %q, want %q", got, content)
	}
	if obj.Key != key || obj.ETag != etag || obj.Size != int64(len(content)) || obj.LastModified.Before(before) {
		t.Fatalf("object %+v, want key %s etag %s size %d", obj, key, etag, len(content))
	}
	if n := ct.Count(bucket.OpGetObject); n != 1 {
		t.Fatalf("GetObject requests = %d, want 1", n)
	}
	// The ETag from List identifies the same version Open reads.
	listed, _, err := listAll(ctx, c, key)
	if err != nil || len(listed) != 1 || listed[0].ETag != obj.ETag || listed[0].Size != obj.Size {
		t.Fatalf("listed %+v (err %v), opened %+v", listed, err, obj)
	}
}

func TestOpenDetectsReplacedObject(t *testing.T) {
	ctx := context.Background()
	const key = "open/replaced.json"
	oldETag, err := srv.Put(testBucket, key, []byte(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Put(testBucket, key, []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, rootConfig())
	_, _, err = readObject(ctx, c, key, bucket.IfMatch(`"`+oldETag+`"`))
	assertReason(t, err, bucket.ReasonObjectChanged, oldETag)
	if !bucket.IsTransient(err) {
		t.Error("ObjectChanged should be transient: the next run reads the new version")
	}
}

func TestReadOnlyPrincipal(t *testing.T) {
	ctx := context.Background()
	ak, sk, err := srv.CreateReadOnlyUser(testBucket, "conversations/")
	if err != nil {
		t.Fatal(err)
	}
	cfg := rootConfig()
	cfg.Credentials = &bucket.StaticCredentials{AccessKeyID: ak, SecretAccessKey: sk}
	c, _ := newClient(t, cfg)

	objs, _, err := listAll(ctx, c, "conversations/")
	if err != nil || len(objs) != 2 {
		t.Fatalf("listing the granted prefix: %d objects, err %v", len(objs), err)
	}
	if _, _, err := readObject(ctx, c, "conversations/b.jsonl"); err != nil {
		t.Fatalf("reading under the granted prefix: %v", err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"list other prefix", func() error { _, _, err := listAll(ctx, c, "private/"); return err }},
		{"list whole bucket", func() error { _, _, err := listAll(ctx, c, ""); return err }},
		{"list prefix without trailing slash", func() error { _, _, err := listAll(ctx, c, "conversations"); return err }},
		{"read outside prefix", func() error { _, _, err := readObject(ctx, c, "private/secret.json"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			assertReason(t, err, bucket.ReasonAccessDenied, "trailing slash")
			if bucket.IsTransient(err) {
				t.Error("AccessDenied must not be transient: only a policy change helps")
			}
		})
	}
}

func TestAssumeRoleThroughSTS(t *testing.T) {
	ak, sk, err := srv.CreateReadOnlyUser(testBucket, "conversations/")
	if err != nil {
		t.Fatal(err)
	}
	cfg := rootConfig()
	cfg.Credentials = &bucket.StaticCredentials{AccessKeyID: ak, SecretAccessKey: sk}
	// MinIO's STS issues temporary credentials carrying the user's policy.
	cfg.AssumeRole = &bucket.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/ingest", ExternalID: "ext-1", STSEndpoint: srv.Endpoint}
	ct := &bucket.CountingTransport{}
	var stsForm url.Values
	cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPost && req.Body != nil {
				body, err := io.ReadAll(req.Body)
				if err != nil {
					return nil, err
				}
				stsForm, _ = url.ParseQuery(string(body))
				req.Body = io.NopCloser(bytes.NewReader(body))
			}
			return ct.Wrap(next).RoundTrip(req)
		})
	}
	c, err := bucket.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	objs, _, err := listAll(context.Background(), c, "conversations/")
	if err != nil || len(objs) != 2 {
		t.Fatalf("listing with assumed-role credentials: %d objects, err %v", len(objs), err)
	}
	if ct.Count(bucket.OpOther) != 1 {
		t.Errorf("requests %v, want one STS AssumeRole besides the listing", ct.Counts())
	}
	for k, want := range map[string]string{"Action": "AssumeRole", "RoleArn": cfg.AssumeRole.RoleARN, "ExternalId": "ext-1", "RoleSessionName": "data-import-operator"} {
		if got := stsForm.Get(k); got != want {
			t.Errorf("STS request %s = %q, want %q", k, got, want)
		}
	}

	// MinIO's STS answers a bad signature with AccessDenied (AWS STS says
	// SignatureDoesNotMatch); either way the message points at the AssumeRole step.
	cfg.Credentials = &bucket.StaticCredentials{AccessKeyID: ak, SecretAccessKey: "wrong-secret-value"}
	c, _ = newClient(t, cfg)
	_, _, err = listAll(context.Background(), c, "conversations/")
	assertReason(t, err, bucket.ReasonAccessDenied, "AssumeRole of arn:aws:iam::123456789012:role/ingest was denied")
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("error leaks the secret: %v", err)
	}
}

// A web identity never touches the default chain (the operator's own identity): STS gets an
// unsigned AssumeRoleWithWebIdentity with a token from the caller's function, fetched
// when STS needs one. This MinIO trusts no OpenID provider, so STS refuses it; the
// controllers suite exchanges real ServiceAccount tokens with an OpenID-trusting MinIO.
func TestWebIdentityNeverUsesTheDefaultChain(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATORIDENTITY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "operator-secret-key-value")
	cfg := rootConfig()
	cfg.Credentials = nil
	calls := 0
	cfg.WebIdentity = &bucket.WebIdentity{RoleARN: "arn:aws:iam::123456789012:role/reader", STSEndpoint: srv.Endpoint, Describe: "ServiceAccount ns/sa",
		Token: func(context.Context) (string, error) {
			calls++
			return "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQ", nil
		}}
	var stsForm url.Values
	var signed []string
	cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if a := req.Header.Get("Authorization"); a != "" {
				signed = append(signed, a)
			}
			if req.Method == http.MethodPost && req.Body != nil {
				body, err := io.ReadAll(req.Body)
				if err != nil {
					return nil, err
				}
				stsForm, _ = url.ParseQuery(string(body))
				req.Body = io.NopCloser(bytes.NewReader(body))
			}
			return next.RoundTrip(req)
		})
	}
	c, err := bucket.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = listAll(context.Background(), c, "conversations/")
	if err == nil {
		t.Fatal("listing succeeded with a token MinIO cannot verify")
	}
	if calls == 0 || stsForm.Get("Action") != "AssumeRoleWithWebIdentity" || stsForm.Get("RoleArn") != cfg.WebIdentity.RoleARN ||
		stsForm.Get("RoleSessionName") != "data-import-operator" {
		t.Errorf("token fetched %d time(s), STS form %v: want AssumeRoleWithWebIdentity of the role", calls, stsForm)
	}
	for _, a := range signed {
		if strings.Contains(a, "AKIAOPERATORIDENTITY") {
			t.Errorf("a request was signed with the operator's own identity: %s", a)
		}
	}
	if strings.Contains(err.Error(), "c2lnbmF0dXJlLXBhcnQ") || !strings.Contains(err.Error(), "AssumeRoleWithWebIdentity") {
		t.Errorf("error %q: want the STS step named and no token", err)
	}
}

func TestWebIdentityConfig(t *testing.T) {
	token := func(context.Context) (string, error) { return "t", nil }
	tests := []struct {
		name   string
		mutate func(*bucket.Config)
		wantIn string
	}{
		{"with static keys", func(c *bucket.Config) {
			c.WebIdentity = &bucket.WebIdentity{RoleARN: "arn:aws:iam::123456789012:role/r", Token: token}
		}, "cannot be combined"},
		{"without role", func(c *bucket.Config) {
			c.Credentials = nil
			c.WebIdentity = &bucket.WebIdentity{Token: token}
		}, "needs a role ARN"},
		{"without token source", func(c *bucket.Config) {
			c.Credentials = nil
			c.WebIdentity = &bucket.WebIdentity{RoleARN: "arn:aws:iam::123456789012:role/r"}
		}, "needs a token source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := rootConfig()
			tt.mutate(&cfg)
			_, err := bucket.New(context.Background(), cfg)
			assertReason(t, err, bucket.ReasonInvalidConfig, tt.wantIn)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Without static credentials the default chain is used: here its environment provider;
// in a pod, IRSA web identity or EKS Pod Identity through the same chain.
func TestDefaultCredentialChain(t *testing.T) {
	isolateAWSEnv(t)
	cfg := rootConfig()
	cfg.Credentials = nil

	t.Run("environment credentials", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", srv.RootUser)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.RootPassword)
		c, _ := newClient(t, cfg)
		if objs, _, err := listAll(context.Background(), c, "conversations/"); err != nil || len(objs) != 2 {
			t.Fatalf("got %d objects, err %v", len(objs), err)
		}
	})
	t.Run("nothing in the chain", func(t *testing.T) {
		c, ct := newClient(t, cfg)
		_, _, err := listAll(context.Background(), c, "conversations/")
		assertReason(t, err, bucket.ReasonInvalidCredentials, "workload identity")
		if ct.Total() != 0 {
			t.Errorf("requests %v sent without credentials", ct.Counts())
		}
	})
}

// isolateAWSEnv keeps the host's AWS settings out of a default-chain test.
func isolateAWSEnv(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestFailuresAgainstMinIO(t *testing.T) {
	ctx := context.Background()
	denyAK, denySK, err := srv.CreateUserWithPolicy([]byte(fmt.Sprintf(`{
		"Version": "2012-10-17",
		"Statement": [
			{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::%[1]s"]},
			{"Effect": "Deny", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::%[1]s"],
			 "Condition": {"StringLike": {"s3:prefix": ["conversations/*"]}}}
		]}`, testBucket)))
	if err != nil {
		t.Fatal(err)
	}
	closed := closedPort(t)

	tests := []struct {
		name       string
		mutate     func(*bucket.Config)
		wantReason string
		wantIn     string
		transient  bool
	}{
		{
			name: "wrong secret",
			mutate: func(c *bucket.Config) {
				c.Credentials = &bucket.StaticCredentials{AccessKeyID: srv.RootUser, SecretAccessKey: "not-the-secret-at-all"}
			},
			wantReason: bucket.ReasonInvalidCredentials, wantIn: "secret access key",
		},
		{
			name: "unknown access key",
			mutate: func(c *bucket.Config) {
				c.Credentials = &bucket.StaticCredentials{AccessKeyID: "nobody", SecretAccessKey: "whatever-secret"}
			},
			wantReason: bucket.ReasonInvalidCredentials, wantIn: "access key ID",
		},
		{
			name:       "missing bucket",
			mutate:     func(c *bucket.Config) { c.Bucket = "no-such-bucket" },
			wantReason: bucket.ReasonNoSuchBucket, wantIn: `"no-such-bucket" does not exist`,
		},
		{
			name: "policy denies the prefix",
			mutate: func(c *bucket.Config) {
				c.Credentials = &bucket.StaticCredentials{AccessKeyID: denyAK, SecretAccessKey: denySK}
			},
			wantReason: bucket.ReasonAccessDenied, wantIn: "bucket policy principal",
		},
		{
			name: "closed port",
			mutate: func(c *bucket.Config) {
				c.Endpoint = closed
				c.MaxBackoff = time.Millisecond
			},
			wantReason: bucket.ReasonEndpointUnreachable, wantIn: "refused", transient: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rootConfig()
			tc.mutate(&cfg)
			c, _ := newClient(t, cfg)
			_, _, err := listAll(ctx, c, "conversations/")
			assertReason(t, err, tc.wantReason, tc.wantIn)
			if bucket.IsTransient(err) != tc.transient {
				t.Errorf("IsTransient = %v, want %v", !tc.transient, tc.transient)
			}
			// Whatever failed, the secret never shows.
			if cfg.Credentials != nil && strings.Contains(err.Error(), cfg.Credentials.SecretAccessKey) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestOpenMissingObject(t *testing.T) {
	c, _ := newClient(t, rootConfig())
	_, _, err := readObject(context.Background(), c, "conversations/gone.json")
	assertReason(t, err, bucket.ReasonObjectNotFound, "deleted after it was listed")
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ := newClient(t, rootConfig())
	_, _, err := listAll(ctx, c, manyPrefix)
	assertReason(t, err, bucket.ReasonCanceled, "canceled")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not wrap context.Canceled", err)
	}
}

// closedPort returns an http endpoint on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// assertReason checks err is a *bucket.Error with reason whose message contains wantIn.
func assertReason(t *testing.T, err error, reason, wantIn string) {
	t.Helper()
	var be *bucket.Error
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T) is not a *bucket.Error", err, err)
	}
	if be.Reason != reason || bucket.ReasonOf(err) != reason {
		t.Fatalf("reason %q, want %q (message: %s)", be.Reason, reason, be.Message)
	}
	if !strings.Contains(be.Message, wantIn) {
		t.Fatalf("message %q does not contain %q", be.Message, wantIn)
	}
	t.Logf("%s: %s", be.Reason, be.Message)
}
