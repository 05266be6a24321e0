package receiver_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/avon-ai/data-import-operator/internal/receiver"
)

const minioEvent = `{"EventName":"s3:ObjectCreated:Put","Key":"logs/conversations/a+b%2Cc.json",
 "Records":[{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put",
  "s3":{"bucket":{"name":"logs"},"object":{"key":"conversations%2Fa+b%2Cc.json","size":12,"eTag":"abc"}}}]}`

func TestParse(t *testing.T) {
	s3Inner := `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"logs"},"object":{"key":"c/1.json"}}},` +
		`{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"logs"},"object":{"key":"c/2.json"}}}]}`
	for _, tc := range []struct {
		name    string
		body    string
		want    []receiver.Object
		confirm string
		err     string
	}{
		{name: "MinIO webhook", body: minioEvent, want: []receiver.Object{{Bucket: "logs", Key: "conversations/a b,c.json"}}},
		{name: "Ceph or AWS record, deletions dropped", body: s3Inner, want: []receiver.Object{{Bucket: "logs", Key: "c/1.json"}}},
		{name: "AWS test event", body: `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"logs"}`},
		{name: "EventBridge", body: `{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"logs"},"object":{"key":"c/x.json","size":5,"etag":"e"}}}`,
			want: []receiver.Object{{Bucket: "logs", Key: "c/x.json"}}},
		{name: "EventBridge encoded key: both readings", body: `{"detail-type":"Object Created","detail":{"bucket":{"name":"logs"},"object":{"key":"c/a+b.json"}}}`,
			want: []receiver.Object{{Bucket: "logs", Key: "c/a+b.json"}, {Bucket: "logs", Key: "c/a b.json"}}},
		{name: "EventBridge deletion", body: `{"detail-type":"Object Deleted","detail":{"bucket":{"name":"logs"},"object":{"key":"c/x.json"}}}`},
		{name: "SNS notification", body: `{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":` + quote(s3Inner) + `}`,
			want: []receiver.Object{{Bucket: "logs", Key: "c/1.json"}}},
		{name: "SNS confirmation", body: `{"Type":"SubscriptionConfirmation","TopicArn":"arn:aws:sns:us-east-1:1:t","SubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x"}`,
			confirm: "arn:aws:sns:us-east-1:1:t"},
		{name: "not JSON", body: `Records=1`, err: "not a JSON object"},
		{name: "truncated", body: `{"Records":[`, err: "malformed event"},
		{name: "unknown shape", body: `{"hello":"world"}`, err: "neither an S3 event notification"},
		{name: "record without key", body: `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"logs"},"object":{}}}]}`, err: "Records[0]: s3.bucket.name and s3.object.key are required"},
		{name: "bad escape", body: `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"logs"},"object":{"key":"a%zz"}}}]}`, err: "Records[0].s3.object.key is not URL-encoded"},
		{name: "SNS message not an event", body: `{"Type":"Notification","TopicArn":"t","Message":"hello"}`, err: "SNS Message: malformed event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := receiver.Parse([]byte(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, receiver.ErrMalformed) {
					t.Fatalf("err = %v, want one containing %q wrapping ErrMalformed", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(n.Objects, tc.want) {
				t.Errorf("objects = %v, want %v", n.Objects, tc.want)
			}
			if got := ""; n.Confirmation != nil || tc.confirm != "" {
				if n.Confirmation != nil {
					got = n.Confirmation.TopicARN
				}
				if got != tc.confirm {
					t.Errorf("confirmation topic = %q, want %q", got, tc.confirm)
				}
			}
		})
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

func TestWebhookPath(t *testing.T) {
	// sha256("tokennamens"), as Flux derives a Receiver's path.
	if got, want := receiver.WebhookPath("token", "name", "ns"), "/hook/"; !strings.HasPrefix(got, want) || len(got) != len(want)+64 {
		t.Fatalf("path %q", got)
	}
	if receiver.WebhookPath("t", "a", "b") == receiver.WebhookPath("t", "a", "c") {
		t.Fatal("the namespace must change the path")
	}
}

func TestHandler(t *testing.T) {
	reg := receiver.NewRegistry()
	pathA := reg.Set(receiver.Target{Source: "a/src", Bucket: "logs", Prefix: "conversations/"}, "a", "src", "token-of-tenant-a-0123")
	pathB := reg.Set(receiver.Target{Source: "b/src", Bucket: "logs", Prefix: "conversations/"}, "b", "src", "token-of-tenant-b-0123")
	pathP := reg.Set(receiver.Target{Source: "c/paused", Bucket: "logs", Paused: true}, "c", "paused", "token-of-tenant-c-0123")
	var queued []string
	var mismatches []string
	h := &receiver.Handler{
		Registry: reg, MaxBody: 4096, Requests: receiver.NewRequestsCounter(),
		Enqueue: func(source string, keys []string) error {
			queued = append(queued, source+":"+strings.Join(keys, ","))
			return nil
		},
		Mismatch: func(source string) { mismatches = append(mismatches, source) },
		Confirm:  func(context.Context, string, receiver.Confirmation) {},
	}
	other := `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"other"},"object":{"key":"conversations/x.json"}}},` +
		`{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"logs"},"object":{"key":"elsewhere/x.json"}}}]}`
	for _, tc := range []struct {
		name, method, path, auth, body string
		code                           int
		result, queued, mismatch       string
	}{
		{name: "accepted", path: pathA, auth: "Bearer token-of-tenant-a-0123", body: minioEvent, code: 202, result: "accepted", queued: "a/src:conversations/a b,c.json"},
		{name: "unknown path", path: "/hook/0000", auth: "Bearer token-of-tenant-a-0123", body: minioEvent, code: 404, result: "not_found"},
		{name: "no token", path: pathA, body: minioEvent, code: 401, result: "unauthorized"},
		{name: "basic auth, wrong password", path: pathA, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("sns:token")), body: minioEvent, code: 401, result: "unauthorized", mismatch: "a/src"},
		{name: "basic auth with the token as password (SNS)", path: pathA, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("sns:token-of-tenant-a-0123")), body: minioEvent, code: 202, result: "accepted", queued: "a/src:conversations/a b,c.json"},
		{name: "wrong token", path: pathA, auth: "Bearer nope", body: minioEvent, code: 401, result: "unauthorized", mismatch: "a/src"},
		{name: "another tenant's token", path: pathA, auth: "Bearer token-of-tenant-b-0123", body: minioEvent, code: 401, result: "unauthorized", mismatch: "a/src"},
		{name: "other tenant's own path", path: pathB, auth: "Bearer token-of-tenant-b-0123", body: minioEvent, code: 202, result: "accepted", queued: "b/src:conversations/a b,c.json"},
		{name: "HEAD probe", method: http.MethodHead, path: pathA, code: 405, result: "method_not_allowed"},
		{name: "paused", path: pathP, auth: "Bearer token-of-tenant-c-0123", body: minioEvent, code: 403, result: "forbidden"},
		{name: "malformed", path: pathA, auth: "bearer token-of-tenant-a-0123", body: `{"Records":`, code: 400, result: "malformed"},
		{name: "too large", path: pathA, auth: "Bearer token-of-tenant-a-0123", body: `{"Records":[],"pad":"` + strings.Repeat("x", 5000) + `"}`, code: 413, result: "too_large"},
		{name: "other bucket and prefix", path: pathA, auth: "Bearer token-of-tenant-a-0123", body: other, code: 200, result: "ignored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queued, mismatches = nil, nil
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			before := testutil.ToFloat64(h.Requests.WithLabelValues(tc.result))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("code %d (%s), want %d", rec.Code, rec.Body, tc.code)
			}
			if got := testutil.ToFloat64(h.Requests.WithLabelValues(tc.result)); got != before+1 {
				t.Errorf("result %s counted %v times, want 1", tc.result, got-before)
			}
			if got := strings.Join(queued, ";"); got != tc.queued {
				t.Errorf("queued %q, want %q", got, tc.queued)
			}
			if got := strings.Join(mismatches, ";"); got != tc.mismatch {
				t.Errorf("mismatches %q, want %q", got, tc.mismatch)
			}
			if strings.Contains(rec.Body.String(), "token-of-tenant") {
				t.Errorf("the answer shows a token: %s", rec.Body)
			}
		})
	}
	// A new token moves the source to a new path; the old one stops answering.
	newPath := reg.Set(receiver.Target{Source: "a/src", Bucket: "logs", Prefix: "conversations/"}, "a", "src", "rotated-token-of-a-0123")
	if newPath == pathA || reg.Path("a/src") != newPath {
		t.Fatal("rotation did not move the path")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, pathA, strings.NewReader(minioEvent)))
	if rec.Code != 404 {
		t.Fatalf("old path answered %d", rec.Code)
	}
}
