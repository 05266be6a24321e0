// Command demo walks through the product guide (Steps 1 to 7) on this machine, with real
// parts only: a local kube-apiserver and etcd, a local MinIO as the customer's bucket, and
// the operator's own binary as a separate process with an embedded SQLite store.
//
// It plays the two roles of docs/multi-tenancy.md, each with its own kubeconfig: the
// platform admin (cluster-admin) installs the operator, creates the customer's namespace,
// binds the tenant and sets its quota; the tenant (a user bound to the built-in edit role in
// that namespace only, with this project's roles aggregated into it by the real
// kube-controller-manager) adds its keys and its S3Source, refreshes and reads status, and
// is refused what only the admin may do.
//
//	go run ./hack/demo          # the journey, then stays up until Ctrl-C
//	go run ./hack/demo --once   # the journey; exit 0 only if every expected outcome was seen
//
// State lives in .demo/ (the two kubeconfigs, manifests, store, spool, operator log); it is
// recreated on every run. Everything started is stopped on exit.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
	"github.com/avon-ai/data-import-operator/internal/testsupport/proc"
)

// The customer of the demo: namespace, bucket and prefix, and the source's name.
const (
	namespace  = "acme"
	sourceName = "acme-conversations"
	quotaName  = "default"
	bucketName = "acme-conversations"
	prefix     = "conversations/"
)

// The tenancy of the demo: the customer's user, bound to the built-in edit ClusterRole in
// namespace only, and another customer's namespace that user must not see.
const (
	tenantUser     = "acme-dev"
	otherNamespace = "globex"
)

func main() {
	once := flag.Bool("once", false, "run the journey without pausing, check every expected outcome, and exit (0 only if all were seen)")
	timeout := flag.Duration("timeout", 30*time.Minute, "with --once, the most the whole journey may take, first-run tool builds included (each wait has its own bound of a few minutes)")
	flag.Parse()
	os.Exit(run(*once, *timeout))
}

func run(once bool, timeout time.Duration) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if once {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	d, err := newDemo(once, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	start := time.Now()
	err = d.journey(ctx)
	if err == nil && !once {
		d.say("\nThe demo stays up: try the commands above. Press Ctrl-C to stop everything it started.")
		<-ctx.Done()
	}
	d.say("\nStopping the operator, MinIO, kube-controller-manager and the control plane ...")
	if serr := d.stack.stop(); serr != nil {
		fmt.Fprintln(os.Stderr, "demo: stopping:", serr)
	}
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		d.printChecks()
		return 1
	case once:
		ok := d.printChecks()
		d.say("Journey took %s.", time.Since(start).Round(time.Second))
		if !ok {
			return 1
		}
	}
	return 0
}

// demo holds what the journey started and learned.
type demo struct {
	once       bool
	out        io.Writer
	root, dir  string // the repository and its .demo directory
	stack      stack
	kubectl    string // the real kubectl binary
	kubeconfig string // the platform admin's (cluster-admin): .demo/kubeconfig
	cli        string // bin/data-import
	storeDSN   string
	cl         client.Client
	dayPrefix  string           // conversations/YYYY/MM/DD/
	sizes      map[string]int64 // uploaded object sizes by key
	checks     []check
	step       int

	// tenantKubeconfig acts as tenantUser, bound to edit in namespace only:
	// .demo/kubeconfig-tenant.
	tenantKubeconfig string
	who              string // the role playing the current step, for its heading
	metricsURL       string // the operator's /metrics

	// uploadKey and uploadSecret are the customer's upload-only MinIO key (dropOwnFile),
	// a throwaway key printed on purpose for dropping one's own file into the bucket.
	uploadKey, uploadSecret string
}

func newDemo(once bool, out io.Writer) (*demo, error) {
	root, err := testsupport.RepoRoot()
	if err != nil {
		return nil, err
	}
	// Relative paths from the repository root keep the printed commands short and runnable.
	if err := os.Chdir(root); err != nil {
		return nil, err
	}
	dir := ".demo"
	// A fresh store and fresh manifests every run: the journey's counts start from zero.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	for _, sub := range []string{"manifests/admin", "manifests/tenant", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, err
		}
	}
	return &demo{
		once: once, out: &transcript{w: out}, root: root, dir: dir,
		storeDSN:  "sqlite://.demo/store.db",
		dayPrefix: prefix + time.Now().UTC().Format("2006/01/02") + "/",
		sizes:     map[string]int64{},
	}, nil
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

// section prints a heading naming who plays the step and the guide's step it shows.
func (d *demo) section(title string) {
	d.step++
	if d.who != "" {
		title = d.who + " — " + title
	}
	d.say("\n\033[1m== %d. %s\033[0m", d.step, title)
}

// journey is the guide, in order. Each step returns an error only when the demo cannot
// go on; outcomes that differ from the expected are recorded as failed checks.
func (d *demo) journey(ctx context.Context) error {
	const admin, tenant, bucket = "Platform admin", "Tenant " + tenantUser, "Tenant, in its own S3 account"
	for _, step := range []struct {
		who string // the role of docs/multi-tenancy.md that plays the step
		run func(context.Context) error
	}{
		{admin, d.startStack},
		{admin, d.setUpTenant},
		{bucket, d.uploadInitial},
		{bucket, d.grantReadOnly},
		{tenant, d.addSource},
		{tenant, d.tenantBoundaries},
		{tenant, d.firstDiscovery},
		{admin, d.lookup}, // the data-import CLI holds the store's credentials
		{bucket, d.dropOwnFile},
		{tenant, d.refresh},
		{admin, d.leakScan},
		{"", d.howTo},
	} {
		d.who = step.who
		if err := step.run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// startStack builds the operator and CLI and starts the control plane and MinIO, in
// parallel (the tool builds are cached by hack/*.sh after the first run).
func (d *demo) startStack(ctx context.Context) error {
	d.section("Setting up: a local Kubernetes API server, MinIO as the customer's S3, and the operator")
	d.say("Building bin/manager and bin/data-import; starting kube-apiserver + etcd (envtest) and MinIO.")
	d.say("The first run builds kube-apiserver, kubectl, etcd and MinIO from the Go module proxy (about 15 minutes on 2 cores).")
	g, gctx := errgroup.WithContext(ctx)
	var manager string
	g.Go(func() (err error) {
		if manager, err = proc.GoBuild(gctx, d.root, "manager", "./cmd"); err != nil {
			return err
		}
		d.cli, err = proc.GoBuild(gctx, d.root, "data-import", "./cmd/data-import")
		return err
	})
	g.Go(func() (err error) {
		d.stack.kube, err = kube.Start()
		return err
	})
	g.Go(func() (err error) {
		d.stack.s3, err = minio.StartServer(minio.Options{})
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	var err error
	if d.kubeconfig, err = d.stack.kube.Kubeconfig(d.dir); err != nil {
		return fmt.Errorf("writing the admin's kubeconfig: %w", err)
	}
	d.kubectl = filepath.Join(d.stack.kube.Assets, "kubectl")
	if d.cl, err = client.New(d.stack.kube.Config, client.Options{Scheme: d.stack.kube.Scheme}); err != nil {
		return fmt.Errorf("a client for the API server: %w", err)
	}
	d.say("kube-apiserver: %s (CRDs S3Source and IngestionQuota installed)", d.stack.kube.Config.Host)
	d.say("MinIO:          %s", d.stack.s3.Endpoint)
	d.say("Admin's kubeconfig (cluster-admin): %s", d.kubeconfig)
	// The operator and the aggregation controller start at the same time: neither waits
	// for the other, and kube-controller-manager takes a few seconds to aggregate.
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() error { return d.startTenancy(gctx) })
	g.Go(func() error { return d.startManager(gctx, manager) })
	return g.Wait()
}

// startTenancy installs the operator's ClusterRoles from config/rbac, as the admin does
// when installing it, and runs kube-controller-manager's clusterrole-aggregation
// controller (envtest runs none), so the built-in admin, edit and view roles gain them.
func (d *demo) startTenancy(ctx context.Context) error {
	t, err := d.stack.kube.StartTenancy(ctx)
	if err != nil {
		return fmt.Errorf("starting the tenancy (config/rbac roles, kube-controller-manager): %w", err)
	}
	d.stack.tenancy = t
	d.say("config/rbac ClusterRoles applied; kube-controller-manager aggregated them into the built-in admin, edit and view roles.")
	return nil
}

// startManager runs the real operator binary against the local control plane.
func (d *demo) startManager(ctx context.Context, bin string) error {
	metrics, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	probes, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	// The platform admin allows the local MinIO by its address: exactly that port on
	// 127.0.0.1 may be dialed (the API server, also on 127.0.0.1, stays refused).
	// The demo's sources take no S3 events: no receiver, so a busy :9292 cannot stop it.
	args := []string{"--store", d.storeDSN, "--metrics-bind-address", metrics, "--health-probe-bind-address", probes,
		"--receiver-bind-address", "0", "--allowed-endpoints", d.stack.s3.Endpoint}
	// Every download is spooled before it is parsed, and the manager refuses to start unless
	// --concurrent-files × 2 × --max-file-size fit in --spool-dir (cmd/limits.go). The
	// defaults (4 × 2 × 100M = 800M in the OS temp dir) would make the demo fail on a machine
	// with a small /tmp; the demo's files are a few KB, so it spools in .demo/spool and asks
	// for what its quota allows (50M a file, 2 at once: 200M).
	args = append(args, "--spool-dir", filepath.Join(d.dir, "spool"), "--max-file-size", "50M", "--concurrent-files", "2")
	p, err := proc.Start("the operator", filepath.Join(d.dir, "manager.log"), []string{"KUBECONFIG=" + d.kubeconfig}, bin, args...)
	if err != nil {
		return err
	}
	d.stack.manager = p
	d.say("admin$ KUBECONFIG=.demo/kubeconfig bin/manager %s", strings.Join(args, " "))
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.WaitHTTP(wctx, "http://"+probes+"/readyz"); err != nil {
		return err
	}
	d.say("operator ready (log: .demo/manager.log, metrics: http://%s/metrics)", metrics)
	d.metricsURL = "http://" + metrics + "/metrics"
	return nil
}
