package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/receiver"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// The suite's MinIO starts with a webhook notification target pointed at the receiver
// path of source events/burst (the path follows from the token, name and namespace), so
// MinIO itself sends the events of TestEventsFromMinIOWebhook.
const (
	eventsNS, eventsOtherNS = "events", "events-other"
	burstSource             = "burst"
	burstToken              = "burst-token-0123456789abcdef"
	otherToken              = "other-token-0123456789abcdef"
	webhookTarget           = "DIO"
	// The benchmark's source has a target of its own (events_bench_test.go).
	benchSource, benchToken, benchTarget = "bench", "bench-token-0123456789abcdef", "DIOB"
)

var (
	receiverListener     net.Listener
	receiverListenerOnce sync.Once
	receiverURL          string
	webhookQueueDir      string
)

// listenReceiver takes the receiver's port and returns MinIO's webhook target settings.
func listenReceiver() ([]string, error) {
	var err error
	if receiverListener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	receiverURL = "http://" + receiverListener.Addr().String()
	if webhookQueueDir, err = os.MkdirTemp("", "minio-webhook-queue-"); err != nil {
		return nil, err
	}
	return append(minio.WebhookEnv(webhookTarget, receiverURL+receiver.WebhookPath(burstToken, burstSource, eventsNS), burstToken, filepath.Join(webhookQueueDir, "q")),
		// No queue directory: MinIO posts at once instead of on its store's 3 s replay tick.
		minio.WebhookEnv(benchTarget, receiverURL+receiver.WebhookPath(benchToken, benchSource, eventsNS), benchToken, "")...), nil
}

// takeReceiverListener gives the listener to the suite's main manager only.
func takeReceiverListener() net.Listener {
	var ln net.Listener
	receiverListenerOnce.Do(func() { ln = receiverListener })
	return ln
}

func createEventsSecret(t *testing.T, ns, name, token string) {
	t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{v1.EventsTokenKey: token}}
	if err := k8s.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
}

func withEvents(secret string) func(*v1.S3SourceSpec) {
	return func(spec *v1.S3SourceSpec) {
		spec.Events = &v1.Events{SecretRef: v1.LocalObjectReference{Name: secret}}
	}
}

// waitEventsReady waits for the receiver to listen for the source and returns its path.
func waitEventsReady(t *testing.T, ns, name string) string {
	t.Helper()
	var path string
	eventually(t, "EventsReady on "+ns+"/"+name, func() error {
		src := getSource(t, ns, name)
		if c := meta.FindStatusCondition(src.Status.Conditions, v1.ConditionEventsReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("EventsReady %+v", c)
		}
		path = src.Status.WebhookPath
		return nil
	})
	return path
}

func postEvent(t *testing.T, path, token string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, receiverURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// minioEvent is a MinIO webhook body naming keys of bkt.
func minioEvent(bkt string, keys ...string) []byte {
	var recs []string
	for _, k := range keys {
		recs = append(recs, fmt.Sprintf(`{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":1,"eTag":"x"}}}`, bkt, k))
	}
	return []byte(`{"EventName":"s3:ObjectCreated:Put","Records":[` + strings.Join(recs, ",") + `]}`)
}

// waitHeads waits until the source has no run in flight and heads HeadObject requests
// were made for its bucket in total.
func waitHeads(t *testing.T, ns, name, bkt string, heads int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d HeadObject requests on %s", heads, bkt), func() error {
		if got := counts.of(bkt).Count(bucket.OpHeadObject); got != heads {
			return fmt.Errorf("%d HeadObject requests", got)
		}
		if c := meta.FindStatusCondition(getSource(t, ns, name).Status.Conditions, v1.ConditionReconciling); c != nil {
			return fmt.Errorf("still reconciling: %s", c.Message)
		}
		return nil
	})
}

// Real MinIO sends real events for a burst of 1,000 uploads: every file is ingested
// exactly once (one GetObject each), without a refresh annotation and without listing
// the prefix again. Then the refusals: each leaves the source untouched, which a barrier
// event for one key proves (it costs exactly one more HeadObject).
func TestEventsFromMinIOWebhook(t *testing.T) {
	const bkt, prefix, n = "events-burst", "conversations/", 1000
	createBucket(t, bkt)
	createEventsSecret(t, eventsNS, "burst-events", burstToken)
	newSource(t, eventsNS, burstSource, bkt, prefix, withEvents("burst-events"))
	waitRun(t, eventsNS, burstSource, time.Time{})
	path := waitEventsReady(t, eventsNS, burstSource)
	if want := receiver.WebhookPath(burstToken, burstSource, eventsNS); path != want {
		t.Fatalf("status.webhookPath %q, want %q", path, want)
	}
	if err := s3.NotifyOnCreate(bkt, prefix, minio.WebhookARN(webhookTarget)); err != nil {
		t.Fatal(err)
	}
	ct := counts.of(bkt)
	lists := ct.Count(bucket.OpListObjectsV2)

	start := time.Now()
	keys, err := s3.PutN(bkt, prefix, n, func(i int) []byte {
		return jsonArray(t, conversation("agent-1", convID("burst", i), "2026-03-10T08:00:00Z", "hello"))
	})
	if err != nil {
		t.Fatal(err)
	}
	uploaded := time.Since(start)
	eventually(t, "1,000 files ingested from events", func() error {
		src := getSource(t, eventsNS, burstSource)
		if f := src.Status.Files; f == nil || f.Ingested != n || f.Discovered != n {
			return fmt.Errorf("files %+v", f)
		}
		if c := meta.FindStatusCondition(src.Status.Conditions, v1.ConditionReconciling); c != nil {
			return fmt.Errorf("still reconciling: %s", c.Message)
		}
		return nil
	})
	t.Logf("1,000 uploads took %s; all ingested %s after the first upload (%d HeadObject, %d GetObject)",
		uploaded.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), ct.Count(bucket.OpHeadObject), ct.Count(bucket.OpGetObject))
	src := getSource(t, eventsNS, burstSource)
	if src.Status.ConversationsIngested != n || src.Status.LastHandledRefresh != "" || src.Status.LastEventTime == nil {
		t.Fatalf("status after the burst: conversations %d, lastHandledRefresh %q, lastEventTime %v",
			src.Status.ConversationsIngested, src.Status.LastHandledRefresh, src.Status.LastEventTime)
	}
	if got := ct.Count(bucket.OpListObjectsV2); got != lists {
		t.Fatalf("%d ListObjectsV2 requests after the initial discovery, want 0", got-lists)
	}
	if got := ct.Count(bucket.OpGetObject); got != n {
		t.Fatalf("%d GetObject requests for %d files: not exactly once each", got, n)
	}
	if got := testutil.ToFloat64(metrics.Files.WithLabelValues(eventsNS, burstSource, "ingested")); got != n {
		t.Fatalf("dataimport_files_processed_total{result=ingested} = %v, want %d", got, n)
	}

	createEventsSecret(t, eventsOtherNS, "other-events", otherToken)
	createBucket(t, "events-other")
	newSource(t, eventsOtherNS, "src", "events-other", prefix, withEvents("other-events"))
	otherPath := waitEventsReady(t, eventsOtherNS, "src")

	heads := ct.Count(bucket.OpHeadObject)
	requests := func(result string) float64 {
		return testutil.ToFloat64(metrics.WebhookRequests.WithLabelValues(result))
	}
	for _, tc := range []struct {
		name, path, token string
		body              []byte
		code              int
		result            string
	}{
		{name: "wrong token", path: path, token: "not-the-token-0123456789", body: minioEvent(bkt, keys[0]), code: 401, result: receiver.ResultUnauthorized},
		{name: "no token", path: path, body: minioEvent(bkt, keys[0]), code: 401, result: receiver.ResultUnauthorized},
		{name: "another namespace's token", path: path, token: otherToken, body: minioEvent(bkt, keys[0]), code: 401, result: receiver.ResultUnauthorized},
		{name: "a path derived with another namespace", path: receiver.WebhookPath(burstToken, burstSource, eventsOtherNS), token: burstToken, body: minioEvent(bkt, keys[0]), code: 404, result: receiver.ResultNotFound},
		{name: "another bucket", path: path, token: burstToken, body: minioEvent("events-other", keys[0]), code: 200, result: receiver.ResultIgnored},
		{name: "another prefix", path: path, token: burstToken, body: minioEvent(bkt, "elsewhere/a.json"), code: 200, result: receiver.ResultIgnored},
		{name: "malformed JSON", path: path, token: burstToken, body: []byte(`{"Records":[{`), code: 400, result: receiver.ResultMalformed},
		{name: "oversize body", path: path, token: burstToken, body: bytes.Repeat([]byte(" "), receiver.DefaultMaxBody+1), code: 413, result: receiver.ResultTooLarge},
		{name: "the other tenant's own path with this bucket's keys", path: otherPath, token: otherToken, body: minioEvent(bkt, keys[0]), code: 200, result: receiver.ResultIgnored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := requests(tc.result)
			if code := postEvent(t, tc.path, tc.token, tc.body); code != tc.code {
				t.Fatalf("answered %d, want %d", code, tc.code)
			}
			if got := requests(tc.result); got != before+1 {
				t.Fatalf("dataimport_webhook_requests_total{result=%q} rose by %v, want 1", tc.result, got-before)
			}
		})
	}
	// Replayed and duplicate events (ten keys, each named twice) change nothing: ten
	// lookups, no download.
	if code := postEvent(t, path, burstToken, minioEvent(bkt, append(keys[:10:10], keys[:10]...)...)); code != http.StatusAccepted {
		t.Fatalf("replay answered %d", code)
	}
	waitHeads(t, eventsNS, burstSource, bkt, heads+10)
	after := getSource(t, eventsNS, burstSource)
	if ct.Count(bucket.OpGetObject) != n || *after.Status.Files != *src.Status.Files || after.Status.ConversationsIngested != n {
		t.Fatalf("the replay changed something: %d GetObject, files %+v, conversations %d", ct.Count(bucket.OpGetObject), after.Status.Files, after.Status.ConversationsIngested)
	}
	if got := counts.of("events-other").Count(bucket.OpHeadObject); got != 0 {
		t.Fatalf("the other tenant's source made %d HeadObject requests", got)
	}
	if got := ct.Count(bucket.OpListObjectsV2); got != lists {
		t.Fatalf("%d ListObjectsV2 requests after the initial discovery, want 0", got-lists)
	}
}

// A source whose events Secret is missing says so in EventsReady and still discovers; once
// the Secret exists it listens. After the tenant rotates the token, a request with the new
// token on the old path is refused but makes the source re-read its Secret (no watch on
// Secrets), after which the new path takes events and the old one is gone.
func TestEventsSecretAndTokenRotation(t *testing.T) {
	const ns, name, bkt, prefix = eventsOtherNS, "rotating", "events-rotating", "c/"
	createBucket(t, bkt)
	put(t, bkt, prefix+"a.json", jsonArray(t, conversation("agent-1", "rot-a", "2026-03-10T08:00:00Z", "hi")))
	newSource(t, ns, name, bkt, prefix, withEvents("rotating-events"))
	src := waitRun(t, ns, name, time.Time{})
	if c := condition(src, v1.ConditionEventsReady); c.Status != metav1.ConditionFalse || c.Reason != v1.ReasonInvalidEventsSecret || src.Status.WebhookPath != "" {
		t.Fatalf("without the Secret: EventsReady %+v, webhookPath %q", c, src.Status.WebhookPath)
	}
	if src.Status.Files == nil || src.Status.Files.Ingested != 1 {
		t.Fatalf("the discovery did not run without the events Secret: %+v", src.Status.Files)
	}

	const oldToken, newToken = "rotating-token-one-0123456789", "rotating-token-two-0123456789"
	createEventsSecret(t, ns, "rotating-events", oldToken)
	poke(t, ns, name)
	oldPath := waitEventsReady(t, ns, name)
	put(t, bkt, prefix+"b.json", jsonArray(t, conversation("agent-1", "rot-b", "2026-03-10T08:00:00Z", "hi")))
	if code := postEvent(t, oldPath, oldToken, minioEvent(bkt, prefix+"b.json")); code != http.StatusAccepted {
		t.Fatalf("old token answered %d", code)
	}
	waitHeads(t, ns, name, bkt, 1)

	secret := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "rotating-events"}, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data = map[string][]byte{v1.EventsTokenKey: []byte(newToken)}
	if err := k8s.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	if code := postEvent(t, oldPath, newToken, minioEvent(bkt, prefix+"b.json")); code != http.StatusUnauthorized {
		t.Fatalf("new token on the old path answered %d, want 401", code)
	}
	newPath := receiver.WebhookPath(newToken, name, ns)
	eventually(t, "the new path in status", func() error {
		if got := getSource(t, ns, name).Status.WebhookPath; got != newPath {
			return fmt.Errorf("webhookPath %q", got)
		}
		return nil
	})
	if code := postEvent(t, oldPath, oldToken, minioEvent(bkt, prefix+"b.json")); code != http.StatusNotFound {
		t.Fatalf("the old path answered %d after the rotation, want 404", code)
	}
	if code := postEvent(t, newPath, newToken, minioEvent(bkt, prefix+"b.json")); code != http.StatusAccepted {
		t.Fatalf("the new path answered %d", code)
	}
	waitHeads(t, ns, name, bkt, 2)
	if got := getSource(t, ns, name).Status.Files; got == nil || got.Ingested != 2 {
		t.Fatalf("files %+v, want 2 ingested", got)
	}
}

// AWS's shapes reach the same path: an EventBridge "Object Created" event and an SNS
// notification wrapping an S3 event (with the token as SNS's Basic password) each get their
// object ingested. An SNS subscription confirmation is answered but its SubscribeURL, a URL
// the request chose, is not fetched (no host allowed): a Warning event names the topic, not
// the URL.
func TestEventsFromAWSShapes(t *testing.T) {
	const ns, name, bkt, prefix, token = eventsOtherNS, "aws-shapes", "events-aws", "c/", "aws-shapes-token-0123456789"
	createBucket(t, bkt)
	createEventsSecret(t, ns, "aws-shapes-events", token)
	newSource(t, ns, name, bkt, prefix, withEvents("aws-shapes-events"))
	waitRun(t, ns, name, time.Time{})
	path := waitEventsReady(t, ns, name)

	put(t, bkt, prefix+"eb.json", jsonArray(t, conversation("agent-1", "aws-eb", "2026-03-10T08:00:00Z", "hi")))
	eb := fmt.Sprintf(`{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":%q},"object":{"key":%q,"size":1,"etag":"x"}}}`, bkt, prefix+"eb.json")
	if code := postEvent(t, path, token, []byte(eb)); code != http.StatusAccepted {
		t.Fatalf("EventBridge event answered %d", code)
	}
	waitHeads(t, ns, name, bkt, 1)

	put(t, bkt, prefix+"sns.json", jsonArray(t, conversation("agent-1", "aws-sns", "2026-03-10T08:00:00Z", "hi")))
	inner := fmt.Sprintf(`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q}}}]}`, bkt, prefix+"sns.json")
	sns, err := json.Marshal(map[string]string{"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-1:123456789012:uploads", "Message": inner})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, receiverURL+path, bytes.NewReader(sns))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("sns", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("SNS notification answered %d", resp.StatusCode)
	}
	waitHeads(t, ns, name, bkt, 2)
	// The lookup is done; the run that downloads and folds the file may still be going.
	eventually(t, "both event-named files ingested", func() error {
		if f := getSource(t, ns, name).Status.Files; f == nil || f.Ingested != 2 {
			return fmt.Errorf("files %+v, want both ingested", f)
		}
		return nil
	})

	var fetched atomic.Int32
	target := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { fetched.Add(1) }))
	defer target.Close()
	subscribeURL := target.URL + "/?Action=ConfirmSubscription&Token=confirmation-secret-token"
	confirm, err := json.Marshal(map[string]string{"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:eu-west-1:123456789012:uploads", "SubscribeURL": subscribeURL})
	if err != nil {
		t.Fatal(err)
	}
	if code := postEvent(t, path, token, confirm); code != http.StatusOK {
		t.Fatalf("confirmation answered %d", code)
	}
	ev := waitEvent(t, ns, name, v1.ReasonSubscriptionConfirmation, "arn:aws:sns:eu-west-1:123456789012:uploads")
	if strings.Contains(ev.Note, "confirmation-secret-token") || strings.Contains(ev.Note, target.URL) || ev.Type != corev1.EventTypeWarning {
		t.Fatalf("event %s: %s", ev.Type, ev.Note)
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("the SubscribeURL was fetched %d times", n)
	}
}
