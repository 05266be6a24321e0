// Command manager runs the data import operator: the S3Source and IngestionQuota
// controllers, with the conversation store they write to.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	_ "time/tzdata" // IngestionQuota.spec.timeZone works in the image, which has no zoneinfo

	_ "golang.org/x/crypto/x509roots/fallback" // CA roots for S3 and STS over HTTPS: the image has no certificate files

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/shard"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/backend"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dataDir, dsn, metricsAddr, probeAddr, pprofAddr string
		metricsCertDir                                  string
		leaderElect, secureMetrics                      bool
		opts                                            controllers.SourceOptions
		maxDailyLimit                                   = newBytesFlag(controllers.DefaultMaxDailyLimit)
		maxFileSize                                     = newBytesFlag(controllers.DefaultMaxFileSize)
		identity                                        controllers.IdentityOptions
		identitySelector                                string
		endpoints                                       netFlags
		shards                                          int
		shardLease                                      time.Duration
		apiQPS                                          float64
		apiBurst                                        int
		snsConfirmHosts                                 string
		receiverAdvertiseAddr                           string
	)
	flag.StringVar(&dataDir, "data-dir", "/var/lib/data-import", "Directory of the embedded SQLite store (used when --store is empty).")
	flag.StringVar(&dsn, "store", "", "Store DSN: sqlite:///path/store.db or postgres://user@host/db (a password is best given by PGPASSWORD). Empty: SQLite in --data-dir.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with authentication and authorization.")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "", "Directory with tls.crt and tls.key (e.g. a cert-manager Secret) to serve secure metrics with, "+
		"so scrapers can verify the server with its CA. Empty: a self-signed certificate generated at start.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address of Go's /debug/pprof endpoints (heap, CPU, goroutines) for profiling; 0 disables it. Bind it to 127.0.0.1 and reach it with kubectl port-forward.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so only one replica runs discoveries (needed with more than one replica; PostgreSQL store only).")
	flag.IntVar(&shards, "shards", 0, "Divide the S3Sources between the replicas in this many shards, a coordination.k8s.io Lease each in the manager's namespace: "+
		"every replica runs the discoveries of the shards it holds, and adding or removing a replica rebalances them. Every replica must use the same number. "+
		"PostgreSQL store only; it turns on --leader-elect for the IngestionQuota controller. 0: the leader runs every discovery.")
	flag.DurationVar(&shardLease, "shard-lease-duration", shard.DefaultLeaseDuration, "With --shards: how long a replica that stopped renewing keeps its shards "+
		"(it stops serving them at two thirds of it and renews every third).")
	flag.Float64Var(&apiQPS, "kube-api-qps", 50, "Requests per second to the API server, sustained (client-side rate limit).")
	flag.IntVar(&apiBurst, "kube-api-burst", 300, "Requests to the API server in a burst above --kube-api-qps.")
	flag.IntVar(&opts.ConcurrentSources, "concurrent-sources", 4, "Discovery runs executing at once.")
	flag.IntVar(&opts.ConcurrentFiles, "concurrent-files", 4, "Downloads in flight across all sources (each holds at most one file's records in memory).")
	flag.IntVar(&opts.FilesPerSource, "files-per-source", 2, "Downloads in flight for one source.")
	flag.IntVar(&opts.MaxFileAttempts, "max-file-attempts", discovery.DefaultMaxFileAttempts, "Attempts to process one version of a file that may fail for a reason retrying does not fix "+
		"(the store refused it, or the manager died while processing it) before the file is parked; a refresh or a new version retries it.")
	flag.StringVar(&opts.SpoolDir, "spool-dir", os.TempDir(), "Directory downloads are spooled to while they are parsed. "+
		"It must have --concurrent-files × 2 × --max-file-size free (a ZIP archive is copied once more), or the manager refuses to start.")
	flag.Var(maxDailyLimit, "max-daily-limit", "Ceiling of every IngestionQuota's dailyLimit, a decimal `quantity` (10G = 10,000,000,000 bytes). "+
		"A quota asking for more gets this; tenants cannot raise it.")
	flag.Var(maxFileSize, "max-file-size", "Ceiling of every IngestionQuota's maxFileSize, a decimal `quantity` (100M = 100,000,000 bytes). "+
		"A quota asking for more gets this; the spool directory must hold --concurrent-files × 2 of it.")
	flag.StringVar(&identitySelector, "operator-identity-namespace-selector", controllers.DefaultOperatorIdentityNamespaceSelector,
		"Label selector of the namespaces whose S3Sources may use the operator's own identity (credentials.provider Default, with or without assumeRole). Other namespaces must use a ServiceAccount or Secret. Only admins can label namespaces. Empty: no namespace.")
	flag.StringVar(&identity.STSEndpoint, "sts-endpoint", "", "STS endpoint for AssumeRole and AssumeRoleWithWebIdentity, e.g. an S3-compatible service's STS. Empty: the regional AWS STS.")
	flag.StringVar(&identity.STSAudience, "sts-audience", controllers.DefaultSTSAudience, "Audience of the ServiceAccount tokens the operator requests for credentials.provider ServiceAccount.")
	flag.StringVar(&opts.Receiver.Address, "receiver-bind-address", ":9292", "Address of the S3 event webhook receiver (S3Source spec.events); 0 disables it.")
	flag.StringVar(&receiverAdvertiseAddr, "receiver-advertise-address", "", "With --shards: host:port at which other replicas reach this pod's own webhook receiver (not a Service's), "+
		"to hand it the events of the sources it serves (published on its member Lease). Empty: $POD_IP with the port of --receiver-bind-address.")
	flag.StringVar(&snsConfirmHosts, "receiver-sns-confirm-hosts", "", "Comma-separated hosts (exact, or *.suffix) whose SNS SubscribeURL the receiver fetches to confirm a subscription, "+
		"e.g. sns.eu-west-1.amazonaws.com. Empty: confirmations are only reported in an event.")
	endpoints.bind(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	ceilings := controllers.Ceilings{DailyLimit: int64(*maxDailyLimit), MaxFileSize: int64(*maxFileSize)}
	// Before the store or the API server: a manager whose downloads would fill its spool
	// volume gets evicted mid-run, stopping every tenant, so it does not start at all.
	if err := checkLimits(ceilings, opts); err != nil {
		return err
	}
	sel, err := parseIdentitySelector(identitySelector)
	if err != nil {
		return err
	}
	identity.OperatorIdentityNamespaces = sel
	for _, h := range strings.Split(snsConfirmHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			opts.Receiver.SNSConfirmHosts = append(opts.Receiver.SNSConfirmHosts, h)
		}
	}

	if dsn == "" {
		dsn = "sqlite://" + filepath.Join(dataDir, "store.db")
	}
	// Before anything is created: sharding on SQLite is refused at startup.
	if err := checkSharding(shards, dsn); err != nil {
		return err
	}
	advertise, err := receiverAdvertise(receiverAdvertiseAddr, opts.Receiver.Address, shards, os.Getenv("POD_IP"))
	if err != nil {
		return err
	}
	if strings.HasPrefix(dsn, "sqlite://"+filepath.Join(dataDir, "store.db")) {
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
	}
	ctx := ctrl.SetupSignalHandler()
	st, err := backend.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer st.Close()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1.AddToScheme(scheme))
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics}
	if metricsCertDir != "" {
		if !secureMetrics {
			return fmt.Errorf("--metrics-cert-dir %s needs --metrics-secure", metricsCertDir)
		}
		// Reloaded when the files change (cert-manager renewals).
		metricsOpts.CertDir, metricsOpts.CertName, metricsOpts.KeyName = metricsCertDir, "tls.crt", "tls.key"
	}
	if secureMetrics {
		// HTTPS alone is not enough: only callers allowed to get /metrics (TokenReview +
		// SubjectAccessReview, see config/rbac/metrics_*) may read it.
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	restCfg := ctrl.GetConfigOrDie()
	// client-go's default (20/s, burst 30) is a floor of 25 min for the ~3 status writes
	// each of 10,000 sources makes to converge.
	restCfg.QPS, restCfg.Burst = float32(apiQPS), apiBurst
	if opts.EndpointPolicy, err = endpoints.policy(ctx, restCfg.Host, os.Getenv("KUBERNETES_SERVICE_HOST")); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		// Nothing reads managedFields; at 10,000 sources they are megabytes of cache.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		// Sharded, only the IngestionQuota controller (one writer of quota status) needs a
		// leader; discoveries are divided by the shard Leases.
		LeaderElection:   leaderElect || shards > 0,
		LeaderElectionID: "data-import-operator.dataimport.avon.ai",
		// The pod's namespace (downward API); empty: the in-cluster default, the same.
		LeaderElectionNamespace: os.Getenv("POD_NAMESPACE"),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	var elector *shard.Elector
	if shards > 0 {
		if elector, err = newElector(restCfg, scheme, shards, shardLease, advertise); err != nil {
			return err
		}
	}
	if err := setup(mgr, st, opts, ceilings, identity, elector); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	// Not ready while the store cannot answer a query (a PostgreSQL outage, a lost volume).
	if err := mgr.AddReadyzCheck("store", func(req *http.Request) error {
		_, _, err := st.Usage(req.Context(), "readyz", "0000-01-01")
		return err
	}); err != nil {
		return err
	}
	log.Info("starting manager", "concurrentSources", opts.ConcurrentSources, "concurrentFiles", opts.ConcurrentFiles,
		"spoolDir", opts.SpoolDir, "maxDailyLimit", maxDailyLimit.String(), "maxFileSize", maxFileSize.String(),
		"allowedEndpoints", endpoints.allowedEndpoints, "operatorIdentityEndpoints", endpoints.operatorIdentityEndpoints,
		"receiverBindAddress", opts.Receiver.Address, "receiverAdvertiseAddress", advertise, "shards", shards,
		"allowedCIDRs", endpoints.allowedCIDRs, "deniedCIDRs", endpoints.deniedCIDRs, "apiServerAddresses", opts.EndpointPolicy.APIServer)
	return mgr.Start(ctx)
}

func setup(mgr ctrl.Manager, st store.Store, opts controllers.SourceOptions, ceilings controllers.Ceilings, identity controllers.IdentityOptions, elector *shard.Elector) error {
	metrics := controllers.NewMetrics(nil)
	src := &controllers.S3SourceReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("data-import-operator"), Store: st, Metrics: metrics,
		Ceilings: ceilings, Identity: identity,
	}
	if elector != nil {
		elector.Wire(src.ShardAcquired, src.ShardReleasing)
		src.Shards = elector
	}
	if err := src.SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("setting up controller s3source: %w", err)
	}
	if err := (&controllers.IngestionQuotaReconciler{Client: mgr.GetClient(), Store: st, Metrics: metrics, Ceilings: ceilings}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up controller ingestionquota: %w", err)
	}
	return nil
}

// newElector builds the shard elector of this replica; its Lease client is not cached
// (a cache would watch every Lease of the cluster).
func newElector(cfg *rest.Config, scheme *runtime.Scheme, shards int, lease time.Duration, advertise string) (*shard.Elector, error) {
	id, ns, err := podIdentity()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("sharding: %w", err)
	}
	return shard.New(shard.Options{Client: c, Namespace: ns, Identity: id, Address: advertise, Shards: shards, Log: ctrl.Log.WithName("shards"),
		LeaseDuration: lease})
}

// parseIdentitySelector parses --operator-identity-namespace-selector. An empty selector
// selects no namespace: labels.Parse("") would select every one, and an admin who clears
// the flag to allow none must not allow all.
func parseIdentitySelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return labels.Nothing(), nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--operator-identity-namespace-selector %q: %w", s, err)
	}
	return sel, nil
}
