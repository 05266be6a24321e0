package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/bucket"

	// The suite's store is the variable store (suite_test.go).
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// The suite runs the real operator against a real kube-apiserver + etcd (envtest), a real
// MinIO on 127.0.0.1 and the embedded SQLite store. Time is a fake clock: tests step it
// and poke the source (as the requeue timer would) instead of sleeping.
var (
	env     *kube.Env
	k8s     client.Client
	s3      *minio.Server
	store   storeapi.Store
	clk     = clocktesting.NewFakeClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	counts  = &transportCounts{byBucket: map[string]*bucket.CountingTransport{}}
	metrics *controllers.Metrics
)

// Each test works in its own namespace; the main manager watches these.
var suiteNamespaces = []string{"formats", "fanout", "invalid", "disabled", "refresh", "quota", "toolarge", "errors", "deletion", "noop", "policy", "tenant-quota", "tenant-endpoint-a", "tenant-endpoint-b",
	identityDenied, identityAllowed, identityOther, identitySA, eventsNS, eventsOtherNS}

// suiteCeilings are the main manager's ceilings: the manager's defaults, as deployed.
var suiteCeilings = controllers.Ceilings{
	DailyLimit:  quantity(controllers.DefaultMaxDailyLimit).Value(),
	MaxFileSize: quantity(controllers.DefaultMaxFileSize).Value(),
}

// transportCounts keeps one CountingTransport per bucket, so a test counts only the
// requests made for its own source.
type transportCounts struct {
	mu       sync.Mutex
	byBucket map[string]*bucket.CountingTransport
}

func (c *transportCounts) of(b string) *bucket.CountingTransport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byBucket[b] == nil {
		c.byBucket[b] = &bucket.CountingTransport{}
	}
	return c.byBucket[b]
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel())), logCapture.Opts()))
	var err error
	if env, err = kube.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	// MinIO's STS trusts the API server's ServiceAccount tokens (audience sts.amazonaws.com)
	// as AWS IAM trusts a cluster's OIDC provider; a token's sub claim,
	// system:serviceaccount:<namespace>:<name>, names the MinIO policy it gets.
	if err := env.ServeIssuerDiscoveryAnonymously(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The receiver's port is taken before MinIO starts: MinIO's webhook target points at
	// the events test's source (events_integration_test.go) from the start.
	webhookEnv, err := listenReceiver()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(webhookQueueDir)
	if s3, err = minio.StartServer(minio.Options{TrustedCAs: [][]byte{env.Config.CAData}, Env: append([]string{
		"MINIO_IDENTITY_OPENID_CONFIG_URL=" + env.Issuer() + ".well-known/openid-configuration",
		"MINIO_IDENTITY_OPENID_CLIENT_ID=" + controllers.DefaultSTSAudience,
		"MINIO_IDENTITY_OPENID_CLAIM_NAME=sub",
	}, webhookEnv...)}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s3.Stop()
	if err := setupOperatorIdentity(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "controllers-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sq, err := sqlite.Open(ctx, filepath.Join(dir, "store.db"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	store = sq
	defer store.Close()
	if k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, ns := range append(suiteNamespaces, "postgres") {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	suiteRegistry = prometheus.NewRegistry()
	metrics = controllers.NewMetrics(suiteRegistry)
	stop, err := startManager(ctx, store, suiteNamespaces, suiteCeilings)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	stop()
	stopTenancy()
	if err := scanForLeaks(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	return code
}

func zapLevel() int8 {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return -1
	}
	return 2 // errors only: keep `go test` output readable
}

// startManager runs both controllers for the given namespaces against st, with the
// options the manager's flags would set passed directly.
func startManager(ctx context.Context, st storeapi.Store, namespaces []string, ceilings controllers.Ceilings) (stop func(), err error) {
	return startManagerWith(ctx, env.Config, st, namespaces, ceilings)
}

// startManagerWith is startManager with the API server credentials of cfg, e.g. a user
// bound only to the operator's own ClusterRole.
func startManagerWith(ctx context.Context, cfg *rest.Config, st storeapi.Store, namespaces []string, ceilings controllers.Ceilings) (stop func(), err error) {
	nsConfig := map[string]cache.Config{}
	for _, ns := range namespaces {
		nsConfig[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     env.Scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: nsConfig},
		Controller: ctrlConfigSkipNameValidation(),
	})
	if err != nil {
		return nil, err
	}
	watched := interceptor.NewClient(noWatch{mgr.GetClient()}, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*v1.S3Source); ok {
				sourceReads.add(key.Namespace, key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if _, ok := obj.(*v1.S3Source); ok && sub == "status" {
				statusWrites.add(obj.GetNamespace(), obj.GetName())
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	src := &controllers.S3SourceReconciler{
		Client: watched, Recorder: mgr.GetEventRecorder("data-import-operator"), Store: st, Clock: clk, Metrics: metrics,
		Ceilings: ceilings,
		// STS of the operator's assumed roles and of ServiceAccount tokens is MinIO's. Stalls
		// on Secrets and ServiceAccounts re-check quickly: tests do not wait a minute.
		Identity: controllers.IdentityOptions{STSEndpoint: s3.Endpoint, ReferenceRecheck: time.Second},
		NewBucket: func(ctx context.Context, cfg bucket.Config) (bucket.Client, error) {
			counting := counts.of(cfg.Bucket).Wrap
			cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
				return downloadGates.wrap(cfg.Bucket, stsCalls.wrap(cfg.Bucket, counting(rt)))
			}
			// Tests make failures fast: one attempt, short backoff.
			cfg.MaxAttempts, cfg.MaxBackoff = 2, 10*time.Millisecond
			return bucket.New(ctx, cfg)
		},
	}
	policy, err := suitePolicy(ctx)
	if err != nil {
		return nil, err
	}
	if err := src.SetupWithManager(mgr, controllers.SourceOptions{ConcurrentSources: 4, ConcurrentFiles: 4, FilesPerSource: 2, SpoolDir: os.TempDir(), EndpointPolicy: policy,
		Receiver: controllers.ReceiverOptions{Listener: takeReceiverListener()}}); err != nil {
		return nil, err
	}
	if err := (&controllers.IngestionQuotaReconciler{Client: mgr.GetClient(), Store: st, Clock: clk, Metrics: metrics, Ceilings: ceilings}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}, nil
}

// suitePolicy is the endpoint policy of the suite's manager, as cmd/main.go builds it from
// flags: the suite's MinIO is allowed by its address, so exactly its port on 127.0.0.1 may
// be dialed (not the API server's, also on 127.0.0.1). The two "localhost" entries are on
// the allow-list only so that tenant tests reach the dial guard with a name that resolves
// to loopback (TestTenantEndpoint...). No endpoint may receive the operator's own identity.
func suitePolicy(ctx context.Context) (*bucket.EndpointPolicy, error) {
	allowed, err := bucket.ParseEndpointPatterns(strings.Join([]string{
		s3.Endpoint,
		"http://localhost:" + portOf(s3.Endpoint),
		"https://localhost:" + portOf(env.Config.Host),
	}, ","))
	if err != nil {
		return nil, err
	}
	apiServer, err := bucket.APIServerAddrs(ctx, env.Config.Host)
	if err != nil {
		return nil, err
	}
	// The operator's own identity (operatorKeys) may go to the suite's MinIO by address only.
	operatorID, err := bucket.ParseEndpointPatterns(s3.Endpoint)
	if err != nil {
		return nil, err
	}
	return &bucket.EndpointPolicy{AllowedEndpoints: allowed, OperatorIdentityEndpoints: operatorID, APIServer: apiServer}, nil
}

// portOf is the port of a URL the suite started (MinIO's, the API server's); a rest.Config
// host may come without a scheme.
func portOf(rawURL string) string {
	if !strings.Contains(rawURL, "://") {
		rawURL = "https://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return u.Port()
}

// objectCounter counts calls per object, for the no-op reconcile test.
type objectCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *objectCounter) add(ns, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[ns+"/"+name]++
}

func (c *objectCounter) of(ns, name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[ns+"/"+name]
}

var statusWrites, sourceReads objectCounter

// noWatch lets the interceptor wrap the manager's client, which does not Watch.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not used by the controllers")
}

// --- helpers -----------------------------------------------------------------------

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}

func getSource(t *testing.T, ns, name string) *v1.S3Source {
	t.Helper()
	src := &v1.S3Source{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, src); err != nil {
		t.Fatal(err)
	}
	return src
}

// waitRun waits until a discovery finished after `after` and status was folded.
func waitRun(t *testing.T, ns, name string, after time.Time) *v1.S3Source {
	t.Helper()
	var src *v1.S3Source
	eventually(t, "a discovery of "+ns+"/"+name+" after "+after.Format(time.RFC3339), func() error {
		src = getSource(t, ns, name)
		last := src.Status.LastDiscoveryTime
		if last == nil || last.Time.Before(after) {
			return fmt.Errorf("lastDiscoveryTime %v", last)
		}
		if c := meta.FindStatusCondition(src.Status.Conditions, v1.ConditionReconciling); c != nil {
			return fmt.Errorf("still reconciling: %s", c.Message)
		}
		return nil
	})
	return src
}

func condition(src *v1.S3Source, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(src.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: "Absent"}
}

// poke stands in for the requeue timer after the fake clock moved: any annotation change
// triggers a reconcile.
func poke(t *testing.T, ns, name string) {
	t.Helper()
	setAnnotation(t, ns, name, "test.dataimport.avon.ai/poke", fmt.Sprint(time.Now().UnixNano()))
}

func setAnnotation(t *testing.T, ns, name, key, value string) {
	t.Helper()
	src := getSource(t, ns, name)
	patch := client.MergeFrom(src.DeepCopy())
	if src.Annotations == nil {
		src.Annotations = map[string]string{}
	}
	src.Annotations[key] = value
	if err := k8s.Patch(context.Background(), src, patch); err != nil {
		t.Fatal(err)
	}
}

func events(t *testing.T, ns, name, reason string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func waitEvent(t *testing.T, ns, name, reason, contains string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, "event "+reason+" on "+name, func() error {
		for _, e := range events(t, ns, name, reason) {
			if strings.Contains(e.Note, contains) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event containing %q", reason, contains)
	})
	return found
}

// newSource creates the credentials Secret (for a MinIO user with the seed's read-only
// policy on the prefix) and an S3Source.
func newSource(t *testing.T, ns, name, bkt, prefix string, mutate func(*v1.S3SourceSpec)) *v1.S3Source {
	t.Helper()
	ak, sk, err := s3.CreateReadOnlyUser(bkt, prefix)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}
	if err := k8s.Create(context.Background(), secret); apierrors.IsAlreadyExists(err) {
		err = k8s.Update(context.Background(), secret)
	}
	if err != nil {
		t.Fatal(err)
	}
	src := &v1.S3Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.S3SourceSpec{
			Bucket: bkt, Prefix: prefix, Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region,
			Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: secret.Name}},
		},
	}
	if mutate != nil {
		mutate(&src.Spec)
	}
	if err := k8s.Create(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	return src
}

func put(t *testing.T, bkt, key string, body []byte) {
	t.Helper()
	if _, err := s3.Put(bkt, key, body); err != nil {
		t.Fatal(err)
	}
}

func createBucket(t *testing.T, name string) {
	t.Helper()
	if err := s3.CreateBucket(name); err != nil {
		t.Fatal(err)
	}
}
