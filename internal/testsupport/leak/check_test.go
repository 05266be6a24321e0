package leak

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// Check over a fake cluster: what each kind of object contributes, and what it finds.
// controllers' TestLeakScanFindsPlanted does the same against a real API server.
func TestCheck(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	keys := func(ns string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keys"}, Data: map[string][]byte{
			"AWS_ACCESS_KEY_ID": []byte(keyID), "AWS_SECRET_ACCESS_KEY": []byte(secretKey + "\n"), "short": []byte("1234567"),
		}}
	}
	source := func(ns, msg string) *v1.S3Source {
		s := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "src"}}
		s.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "InvalidCredentials", Message: msg}}
		return s
	}
	newEvent := func(ns, note string) *eventsv1.Event {
		return &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "src.1"}, Note: note, Reason: "DiscoveryFailed"}
	}
	coreEvent := func(ns, msg string) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "src.2"}, Message: msg}
	}
	quota := func(ns, msg string) *v1.IngestionQuota {
		q := &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "q"}}
		q.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Ready", Message: msg}}
		return q
	}
	const rootPassword = "minio-root-password-1234"
	reg := prometheus.NewRegistry()
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g", Help: "h"}, []string{"l"})
	reg.MustRegister(gauge)
	gauge.WithLabelValues("fine").Set(1)

	for _, tc := range []struct {
		name    string
		objects []client.Object
		opts    Options
		want    []string // findings as Text + " / " + Kind
		report  Report   // counts only
	}{
		{
			name: "clean: the access key ID in a message is on purpose",
			objects: []client.Object{keys("a"), source("a", "the access key "+keyID+" is not valid"),
				newEvent("a", "credentials for "+keyID+" rejected"), coreEvent("a", "fine"), quota("a", "fine")},
			opts:   Options{Known: []Secret{{Name: "MinIO root password", Value: rootPassword}}, Metrics: reg, Logs: LogTexts("log", "one\ntwo\n")},
			report: Report{Statuses: 2, Events: 2, LogLines: 2, MetricSeries: 1, Secrets: 2},
		},
		{
			name:    "a Secret's value in a status",
			objects: []client.Object{keys("a"), source("b", "signing with "+secretKey)},
			want:    []string{"status of S3Source b/src / Secret a/keys key AWS_SECRET_ACCESS_KEY"},
			report:  Report{Statuses: 1, Secrets: 1},
		},
		{
			name:    "a known secret in an event, a JWT in a core event, a presigned URL in a quota",
			objects: []client.Object{newEvent("a", "root "+rootPassword), coreEvent("a", "token "+jwt), quota("a", "see https://x/y?X-Amz-Signature="+sig)},
			opts:    Options{Known: []Secret{{Name: "MinIO root password", Value: rootPassword}}},
			want: []string{
				"status of IngestionQuota a/q / presigned URL parameter X-Amz-Signature",
				"event a/src.1 (events.k8s.io/v1) / MinIO root password",
				"event a/src.2 (core/v1) / JWT",
			},
			report: Report{Statuses: 1, Events: 2, Secrets: 1},
		},
		{
			name:    "logs, metrics and other texts",
			objects: []client.Object{keys("a")},
			opts: Options{Logs: LogTexts("log", "ok\nkey="+secretKey+"\n"), Texts: []Text{{"data-import output", "X-Amz-Security-Token=abcdefgh"}},
				Metrics: prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, nil })},
			want:   []string{"log line 2 / Secret a/keys key AWS_SECRET_ACCESS_KEY", "data-import output / session token (X-Amz-Security-Token)"},
			report: Report{LogLines: 2, Texts: 1, Secrets: 1},
		},
		{
			name:    "a skipped namespace's objects are not scanned, its Secrets count",
			objects: []client.Object{keys("plant"), source("plant", secretKey), newEvent("plant", secretKey), source("b", secretKey)},
			opts:    Options{SkipNamespaces: []string{"plant"}},
			want:    []string{"status of S3Source b/src / Secret plant/keys key AWS_SECRET_ACCESS_KEY"},
			report:  Report{Statuses: 1, Secrets: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objects...).Build()
			r, err := Check(context.Background(), c, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.Text+" / "+f.Kind)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("findings:\n%q\nwant\n%q", got, tc.want)
			}
			findings := r.Findings
			r.Findings = nil
			if !reflect.DeepEqual(r, tc.report) {
				t.Errorf("report %+v, want %+v", r, tc.report)
			}
			r.Findings = findings
			err = r.Err()
			if (err != nil) != (len(tc.want) > 0) || (err != nil && !errors.Is(err, ErrLeak)) {
				t.Errorf("Err() = %v", err)
			}
			if err != nil && (strings.Contains(err.Error(), secretKey) || strings.Contains(err.Error(), rootPassword) || strings.Contains(err.Error(), jwt)) {
				t.Errorf("Err() quotes a secret: %v", err)
			}
			if !strings.Contains(r.Summary(), fmt.Sprintf("findings: %d", len(tc.want))) {
				t.Errorf("summary %q", r.Summary())
			}
		})
	}
}

func TestRESTConfigSecrets(t *testing.T) {
	cfg := &rest.Config{BearerToken: jwt, TLSClientConfig: rest.TLSClientConfig{KeyData: []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----\n")}}
	s := NewScanner(RESTConfigSecrets("admin", cfg)...)
	if s.Secrets() != 2 {
		t.Errorf("Secrets() = %d, want 2 (token and key; no password)", s.Secrets())
	}
	got := s.Scan(Text{Name: "t", Body: "Authorization: Bearer " + jwt})
	var kinds []string
	for _, f := range got {
		kinds = append(kinds, f.Kind)
	}
	if want := []string{"bearer token", "admin bearer token", "JWT"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds %q, want %q", kinds, want)
	}
}
