package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/quota"
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// BenchmarkUploadToIngested measures, for one file at a time, the time from the start of
// its upload to its ledger row reading ingested, over benchUploads uploads per path:
//
//   - events: real MinIO posts the event to the receiver, which runs the key alone;
//   - refresh: the refresh annotation is set right after the upload (the cooldown passed on
//     the fake clock), and a discovery lists the prefix.
//
// Both prefixes hold benchHistory files already ingested, so the listing has the work a
// real prefix gives it. Run it alone (it needs the whole suite: API server, MinIO):
//
//	KUBEBUILDER_ASSETS="$(bash hack/envtest-assets.sh)" go test -run '^$' -bench BenchmarkUploadToIngested -benchtime 1x ./controllers/
func BenchmarkUploadToIngested(b *testing.B) {
	const benchUploads, benchHistory, prefix = 200, 1000, "conversations/"
	ctx := context.Background()
	setup := func(name, bkt string, events bool) {
		must(b, s3.CreateBucket(bkt))
		if _, err := s3.PutN(bkt, prefix+"history/", benchHistory, func(i int) []byte {
			return benchJSON([]map[string]any{conversation("agent-1", fmt.Sprintf("%s-history-%d", name, i), "2026-03-10T08:00:00Z", "hi")})
		}); err != nil {
			b.Fatal(err)
		}
		ak, sk, err := s3.CreateReadOnlyUser(bkt, prefix)
		must(b, err)
		must(b, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: eventsNS, Name: name + "-keys"},
			StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}))
		src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: eventsNS, Name: name}, Spec: v1.S3SourceSpec{
			Bucket: bkt, Prefix: prefix, Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region,
			Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: name + "-keys"}},
		}}
		if events {
			must(b, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: eventsNS, Name: name + "-events"},
				StringData: map[string]string{v1.EventsTokenKey: benchToken}}))
			src.Spec.Events = &v1.Events{SecretRef: v1.LocalObjectReference{Name: name + "-events"}}
		}
		must(b, k8s.Create(ctx, src))
		waitFor(b, name+": the history ingested", func() error {
			cur := &v1.S3Source{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: eventsNS, Name: name}, cur); err != nil {
				return err
			}
			if f := cur.Status.Files; f == nil || f.Ingested != benchHistory || meta.FindStatusCondition(cur.Status.Conditions, v1.ConditionReconciling) != nil {
				return fmt.Errorf("files %+v", f)
			}
			if events && !meta.IsStatusConditionTrue(cur.Status.Conditions, v1.ConditionEventsReady) {
				return fmt.Errorf("receiver not ready")
			}
			return nil
		})
	}
	setup(benchSource, "events-bench", true)
	must(b, s3.NotifyOnCreate("events-bench", prefix, minio.WebhookARN(benchTarget)))
	setup("bench-refresh", "events-bench-refresh", false)

	// settle waits, untimed, until the source's run is folded: a refresh asked while a run
	// is in flight would wait for the cooldown after it, on a fake clock that stands still.
	settle := func(name string) {
		waitFor(b, name+" folded", func() error {
			cur := &v1.S3Source{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: eventsNS, Name: name}, cur); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(cur.Status.Conditions, v1.ConditionReconciling); c != nil {
				return fmt.Errorf("reconciling: %s", c.Message)
			}
			return nil
		})
	}
	measure := func(name, bkt string, trigger func(i int)) []time.Duration {
		source := eventsNS + "/" + name
		var lat []time.Duration
		for i := range benchUploads {
			key := fmt.Sprintf("%snew/%s-%04d.json", prefix, name, i)
			body := benchJSON([]map[string]any{conversation("agent-1", fmt.Sprintf("%s-new-%d", name, i), "2026-03-10T08:00:00Z", "hi")})
			start := time.Now()
			if _, err := s3.Put(bkt, key, body); err != nil {
				b.Fatal(err)
			}
			trigger(i)
			for {
				rows, err := store.LookupFiles(ctx, source, []string{key})
				must(b, err)
				if rows[key].State == storeapi.FileIngested {
					break
				}
				if time.Since(start) > time.Minute {
					b.Fatalf("%s not ingested after a minute", key)
				}
				time.Sleep(2 * time.Millisecond)
			}
			lat = append(lat, time.Since(start))
			b.StopTimer()
			settle(name)
			b.StartTimer()
		}
		return lat
	}
	b.ResetTimer()
	for range b.N {
		events := measure(benchSource, "events-bench", func(int) {})
		refresh := measure("bench-refresh", "events-bench-refresh", func(i int) {
			clk.Step(quota.DefaultRefreshCooldown + time.Second)
			cur := &v1.S3Source{}
			must(b, k8s.Get(ctx, client.ObjectKey{Namespace: eventsNS, Name: "bench-refresh"}, cur))
			patch := client.MergeFrom(cur.DeepCopy())
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			cur.Annotations[v1.RefreshAnnotation] = fmt.Sprintf("bench-%d", i)
			must(b, k8s.Patch(ctx, cur, patch))
		})
		em, ep := percentile(events, 50), percentile(events, 99)
		rm, rp := percentile(refresh, 50), percentile(refresh, 99)
		b.ReportMetric(ms(em), "events-p50-ms")
		b.ReportMetric(ms(ep), "events-p99-ms")
		b.ReportMetric(ms(rm), "refresh-p50-ms")
		b.ReportMetric(ms(rp), "refresh-p99-ms")
		b.ReportMetric(float64(rm)/float64(em), "refresh/events-p50")
	}
}

func benchJSON(v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return out
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func waitFor(b *testing.B, what string, f func() error) {
	b.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("timed out waiting for %s: %v", what, err)
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
