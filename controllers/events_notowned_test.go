package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/receiver"
)

// notHere is a shard elector under which this replica serves no source.
type notHere struct{}

func (notHere) Start(context.Context) error { return nil }
func (notHere) Owns(string) bool            { return false }
func (notHere) Shards() int                 { return 4 }

// A replica reconciling a source another replica serves keeps the source's receiver
// registration (so it can authenticate the source's events and hand them on), writes
// nothing to the source, looks again once per interval (sooner while the Secret is
// broken), and reports keys left queued from when it served the source. The API server
// is an in-process fake: only these decisions are under test; the two-process test in
// cmd/ proves the whole path.
func TestNotOwnedSourceKeepsItsReceiver(t *testing.T) {
	const token = "events-token-0123456789"
	key := types.NamespacedName{Namespace: "ns", Name: "s"}
	for _, tc := range []struct {
		name     string
		events   bool
		secret   bool
		pending  []string
		wantPath bool
		want     time.Duration
		warning  string
	}{
		{name: "events with a valid Secret: registered, looked at again each interval", events: true, secret: true, wantPath: true, want: time.Hour},
		{name: "events with no Secret: not registered, looked at again at the recheck", events: true, want: DefaultReferenceRecheck},
		{name: "no events: nothing registered", secret: true},
		{name: "keys left from when this replica served the source are reported", events: true, secret: true, pending: []string{"c/1.json", "c/2.json"},
			wantPath: true, want: time.Hour, warning: "2 event-named object(s) were queued on a replica that handed the source to another"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := v1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			if err := corev1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			src := &v1.S3Source{
				ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Generation: 1},
				Spec:       v1.S3SourceSpec{Bucket: "b", Prefix: "c/", Interval: &metav1.Duration{Duration: time.Hour}},
			}
			if tc.events {
				src.Spec.Events = &v1.Events{SecretRef: v1.LocalObjectReference{Name: "events"}}
			}
			objs := []client.Object{src}
			if tc.secret {
				objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: "events"}, Data: map[string][]byte{v1.EventsTokenKey: []byte(token)}})
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(src).Build()
			rec := events.NewFakeRecorder(10)
			clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
			r := &S3SourceReconciler{Client: c, APIReader: c, Recorder: rec, Clock: clk, Metrics: NewMetrics(nil), Shards: notHere{}}
			if err := r.Identity.defaults(); err != nil {
				t.Fatal(err)
			}
			r.runs = newRunTracker(nil, nil, 1)
			r.events = &eventQueue{registry: receiver.NewRegistry(), runs: r.runs, now: clk.Now, max: 10, enabled: true,
				pending: map[types.NamespacedName]*pendingKeys{}, lastMismatch: map[types.NamespacedName]time.Time{}, read: map[types.NamespacedName]secretRead{}}
			if len(tc.pending) > 0 {
				_ = r.events.enqueue(key.String(), tc.pending)
			}
			var before v1.S3Source
			if err := c.Get(context.Background(), key, &before); err != nil {
				t.Fatal(err)
			}

			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
			if err != nil {
				t.Fatal(err)
			}
			if res.RequeueAfter != tc.want {
				t.Errorf("RequeueAfter = %v, want %v", res.RequeueAfter, tc.want)
			}
			path := r.events.registry.Path(key.String())
			if want := receiver.WebhookPath(token, key.Name, key.Namespace); tc.wantPath && path != want || !tc.wantPath && path != "" {
				t.Errorf("registered path %q (want one: %v)", path, tc.wantPath)
			}
			if keys, overflow := r.events.take(key); len(keys) > 0 || overflow {
				t.Errorf("keys %v (overflow %v) still queued on a replica that does not serve the source", keys, overflow)
			}
			var after v1.S3Source
			if err := c.Get(context.Background(), key, &after); err != nil {
				t.Fatal(err)
			}
			if after.ResourceVersion != before.ResourceVersion {
				t.Errorf("a replica not serving the source wrote to it: %+v", after.Status)
			}
			select {
			case ev := <-rec.Events:
				if tc.warning == "" || !strings.Contains(ev, "Warning") || !strings.Contains(ev, tc.warning) {
					t.Errorf("event %q; want %q", ev, tc.warning)
				}
				if strings.Contains(ev, token) {
					t.Errorf("the event shows the token: %s", ev)
				}
			default:
				if tc.warning != "" {
					t.Errorf("no Warning event; want %q", tc.warning)
				}
			}
		})
	}

	// Deleted since: its registration goes.
	t.Run("deleted source: registration forgotten", func(t *testing.T) {
		scheme := runtime.NewScheme()
		if err := v1.AddToScheme(scheme); err != nil {
			t.Fatal(err)
		}
		c := fake.NewClientBuilder().WithScheme(scheme).Build()
		clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
		r := &S3SourceReconciler{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(10), Clock: clk, Metrics: NewMetrics(nil), Shards: notHere{}}
		r.runs = newRunTracker(nil, nil, 1)
		r.events = &eventQueue{registry: receiver.NewRegistry(), runs: r.runs, now: clk.Now, max: 10, enabled: true,
			pending: map[types.NamespacedName]*pendingKeys{}, lastMismatch: map[types.NamespacedName]time.Time{}, read: map[types.NamespacedName]secretRead{}}
		r.events.registry.Set(receiver.Target{Source: key.String(), Bucket: "b"}, key.Namespace, key.Name, token)
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
		if p := r.events.registry.Path(key.String()); p != "" {
			t.Errorf("a deleted source's path %q still answers", p)
		}
	})
}
