// Command manager runs the data import operator: the S3Source and IngestionQuota
// controllers, with the conversation store they write to.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	_ "time/tzdata" // quota time zones work in a distroless image without zoneinfo

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
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
		dataDir, dsn, metricsAddr, probeAddr string
		leaderElect, secureMetrics           bool
		opts                                 controllers.SourceOptions
	)
	flag.StringVar(&dataDir, "data-dir", "/var/lib/data-import", "Directory of the embedded SQLite store (used when --store is empty).")
	flag.StringVar(&dsn, "store", "", "Store DSN: sqlite:///path/store.db or postgres://user@host/db (a password is best given by PGPASSWORD). Empty: SQLite in --data-dir.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with authentication and authorization.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so only one replica runs discoveries (needed with more than one replica; PostgreSQL store only).")
	flag.IntVar(&opts.ConcurrentSources, "concurrent-sources", 4, "Discovery runs executing at once.")
	flag.IntVar(&opts.ConcurrentFiles, "concurrent-files", 4, "Downloads in flight across all sources (each holds at most one file's records in memory).")
	flag.IntVar(&opts.FilesPerSource, "files-per-source", 2, "Downloads in flight for one source.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if dsn == "" {
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
		dsn = "sqlite://" + filepath.Join(dataDir, "store.db")
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
	if secureMetrics {
		// HTTPS alone is not enough: only callers allowed to get /metrics (TokenReview +
		// SubjectAccessReview, see config/rbac/metrics_*) may read it.
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "data-import-operator.dataimport.avon.ai",
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := setup(mgr, st, opts); err != nil {
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
	log.Info("starting manager", "concurrentSources", opts.ConcurrentSources, "concurrentFiles", opts.ConcurrentFiles)
	return mgr.Start(ctx)
}

func setup(mgr ctrl.Manager, st store.Store, opts controllers.SourceOptions) error {
	metrics := controllers.NewMetrics(nil)
	if err := (&controllers.S3SourceReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("data-import-operator"), Store: st, Metrics: metrics,
	}).SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("setting up controller s3source: %w", err)
	}
	if err := (&controllers.IngestionQuotaReconciler{Client: mgr.GetClient(), Store: st, Metrics: metrics}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up controller ingestionquota: %w", err)
	}
	return nil
}
