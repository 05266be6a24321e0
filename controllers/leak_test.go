package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/testsupport/leak"
)

// After every test the suite scans what the operator showed and wrote (every status and
// event in the cluster, its metrics, everything it logged at any verbosity) for every
// Secret's values, the secrets below and the shapes of tokens and presigned URLs; a
// finding fails the suite (issue #8: status, events, logs and metrics never carry a
// token, key, session token or presigned URL).
var (
	// logCapture keeps everything the operator logs during the suite.
	logCapture leak.LogCapture
	// suiteRegistry is the main manager's metrics registry.
	suiteRegistry *prometheus.Registry

	knownMu sync.Mutex
	known   []leak.Secret
)

// rememberSecret adds a secret that lives outside any Secret (a token a test issued,
// credentials from STS) to the suite-end scan.
func rememberSecret(name, value string) {
	knownMu.Lock()
	defer knownMu.Unlock()
	known = append(known, leak.Secret{Name: name, Value: value})
}

// scanForLeaks runs the suite-end scan and prints its summary. Call it once the managers
// stopped, before the API server does.
func scanForLeaks(ctx context.Context) error {
	knownMu.Lock()
	secrets := append(leak.RESTConfigSecrets("API server admin", env.Config),
		leak.Secret{Name: "MinIO root password", Value: s3.RootPassword})
	secrets = append(secrets, known...)
	knownMu.Unlock()
	r, err := leak.Check(ctx, k8s, leak.Options{
		Known:   secrets,
		Metrics: prometheus.Gatherers{suiteRegistry, ctrlmetrics.Registry},
		Logs:    logCapture.Texts(),
	})
	if err != nil {
		return fmt.Errorf("scanning for leaked secrets: %w", err)
	}
	fmt.Fprintln(os.Stderr, r.Summary())
	return r.Err()
}

// The scan finds what is planted where the operator would leak it: a Secret's value, a
// session token, a real service-account token (JWT) and a presigned URL, in events of
// both APIs and in the status of both kinds. The planted objects live in a namespace no
// manager watches and are deleted before the suite-end scan, which this test checks.
func TestLeakScanFindsPlanted(t *testing.T) {
	const ns = "leak-plant"
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// plant creates objects carrying a secret (creating any Secret it needs itself)
		// and returns them, and the findings expected as "text / kind".
		plant func(t *testing.T) ([]client.Object, []string)
	}{
		{"a Secret's value in an event's note", func(t *testing.T) ([]client.Object, []string) {
			sec := plantSecret(t, ns, "keys", controllers.SecretSecretAccessKey)
			// The access key ID beside it is shown on purpose and is not reported.
			ev := plantEvent(t, ns, "src.a", "signing with "+string(sec.Data[controllers.SecretSecretAccessKey])+
				" failed for access key "+string(sec.Data[controllers.SecretAccessKeyID]))
			kind := "Secret leak-plant/keys key AWS_SECRET_ACCESS_KEY"
			// One event, read through both APIs.
			return []client.Object{sec, ev}, []string{"event leak-plant/src.a (core/v1) / " + kind, "event leak-plant/src.a (events.k8s.io/v1) / " + kind}
		}},
		{"a session token in a core/v1 event's message", func(t *testing.T) ([]client.Object, []string) {
			sec := plantSecret(t, ns, "session", controllers.SecretSessionToken)
			ev := &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: "src.b"},
				InvolvedObject: corev1.ObjectReference{Kind: "S3Source", Namespace: ns, Name: "src", APIVersion: v1.GroupVersion.String()},
				Reason:         "DiscoveryFailed", Type: corev1.EventTypeWarning,
				Message: "token=" + string(sec.Data[controllers.SecretSessionToken]),
				Source:  corev1.EventSource{Component: "leak-test"},
			}
			createPlanted(t, ev)
			kind := "Secret leak-plant/session key AWS_SESSION_TOKEN"
			return []client.Object{sec, ev}, []string{"event leak-plant/src.b (core/v1) / " + kind, "event leak-plant/src.b (events.k8s.io/v1) / " + kind}
		}},
		{"a service-account token in an event", func(t *testing.T) ([]client.Object, []string) {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "importer"}}
			createPlanted(t, sa)
			tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.amazonaws.com"}}}
			if err := k8s.SubResource("token").Create(ctx, sa, tr); err != nil {
				t.Fatal(err)
			}
			// The token outlives this test: the suite-end scan looks for it everywhere too.
			rememberSecret("token of ServiceAccount leak-plant/importer", tr.Status.Token)
			ev := plantEvent(t, ns, "src.c", "web identity "+tr.Status.Token)
			return []client.Object{sa, ev}, []string{"event leak-plant/src.c (core/v1) / JWT", "event leak-plant/src.c (events.k8s.io/v1) / JWT"}
		}},
		{"a Secret's value, base64-encoded, in an S3Source's status", func(t *testing.T) ([]client.Object, []string) {
			sec := plantSecret(t, ns, "b64", controllers.SecretSecretAccessKey)
			src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "src"}, Spec: v1.S3SourceSpec{
				Bucket: "bkt", Disabled: true,
				Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: sec.Name}},
			}}
			createPlanted(t, src)
			meta.SetStatusCondition(&src.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1.ReasonInvalidCredentials,
				Message: "credentials " + base64.StdEncoding.EncodeToString(sec.Data[controllers.SecretSecretAccessKey])})
			if err := k8s.Status().Update(ctx, src); err != nil {
				t.Fatal(err)
			}
			return []client.Object{sec, src}, []string{"status of S3Source leak-plant/src / base64 of Secret leak-plant/b64 key AWS_SECRET_ACCESS_KEY"}
		}},
		{"a presigned URL in an IngestionQuota's status", func(t *testing.T) ([]client.Object, []string) {
			q := &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
			createPlanted(t, q)
			meta.SetStatusCondition(&q.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1.ReasonStoreError,
				Message: "see https://bkt.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"})
			if err := k8s.Status().Update(ctx, q); err != nil {
				t.Fatal(err)
			}
			return []client.Object{q}, []string{"status of IngestionQuota leak-plant/default / presigned URL parameter X-Amz-Signature"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, want := tc.plant(t)
			defer func() {
				for _, o := range objs {
					if err := k8s.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
						t.Errorf("deleting planted %T %s: %v", o, o.GetName(), err)
					}
				}
				// Deleted: nothing in the namespace is left for the suite-end scan.
				if got, _ := plantedFindings(t, ns); len(got) != 0 {
					t.Errorf("after deleting the planted objects, the scan still finds %q", got)
				}
			}()
			got, r := plantedFindings(t, ns)
			if r.Statuses+r.Events == 0 {
				t.Errorf("the scan saw nothing planted: %s", r.Summary())
			}
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("findings in %s:\n%q\nwant\n%q", ns, got, want)
			}
		})
	}
}

// plantedFindings runs the cluster scan and returns its findings about objects in ns,
// as "text / kind", sorted, and the report.
func plantedFindings(t *testing.T, ns string) ([]string, leak.Report) {
	t.Helper()
	r, err := leak.Check(context.Background(), k8s, leak.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range r.Findings {
		if strings.Contains(f.Text, " "+ns+"/") {
			out = append(out, f.Text+" / "+f.Kind)
		}
	}
	sort.Strings(out)
	return out, r
}

// plantSecret creates Secret ns/name holding a random value under key, and an access key
// ID (not secret: it must not be reported).
func plantSecret(t *testing.T, ns, name, key string) *corev1.Secret {
	t.Helper()
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{
		key: []byte(hex.EncodeToString(b)), controllers.SecretAccessKeyID: []byte("AKIAPLANTED" + name),
	}}
	createPlanted(t, sec)
	return sec
}

func plantEvent(t *testing.T, ns, name, note string) *eventsv1.Event {
	t.Helper()
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ns, Name: name},
		EventTime:           metav1.NewMicroTime(time.Now()),
		Regarding:           corev1.ObjectReference{Kind: "S3Source", Namespace: ns, Name: "src", APIVersion: v1.GroupVersion.String()},
		Reason:              "DiscoveryFailed",
		Action:              "Discover",
		Type:                corev1.EventTypeWarning,
		Note:                note,
		ReportingController: "dataimport.avon.ai/leak-test",
		ReportingInstance:   "leak-test",
	}
	createPlanted(t, ev)
	return ev
}

func createPlanted(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}
