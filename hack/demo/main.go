// Command demo walks through the product guide (Steps 1 to 7) on this machine, with real
// parts only: a local kube-apiserver and etcd, a local MinIO as the customer's bucket, and
// the operator's own binary as a separate process with an embedded SQLite store.
//
//	go run ./hack/demo          # the journey, then stays up until Ctrl-C
//	go run ./hack/demo --once   # the journey; exit 0 only if every expected outcome was seen
//
// State lives in .demo/ (kubeconfig, manifests, store, operator log); it is recreated on
// every run. Everything started is stopped on exit.
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
)

// The customer of the demo: namespace, bucket and prefix, and the source's name.
const (
	namespace  = "acme"
	sourceName = "acme-conversations"
	quotaName  = "default"
	bucketName = "acme-conversations"
	prefix     = "conversations/"
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
	d.say("\nStopping the operator, MinIO and the control plane ...")
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
	kubeconfig string
	cli        string // bin/data-import
	storeDSN   string
	cl         client.Client
	dayPrefix  string           // conversations/YYYY/MM/DD/
	sizes      map[string]int64 // uploaded object sizes by key
	checks     []check
	step       int
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
	if err := os.MkdirAll(filepath.Join(dir, "manifests"), 0o750); err != nil {
		return nil, err
	}
	return &demo{
		once: once, out: out, root: root, dir: dir,
		storeDSN:  "sqlite://.demo/store.db",
		dayPrefix: prefix + time.Now().UTC().Format("2006/01/02") + "/",
		sizes:     map[string]int64{},
	}, nil
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

// section prints a heading naming the guide's step it shows.
func (d *demo) section(title string) {
	d.step++
	d.say("\n\033[1m== %d. %s\033[0m", d.step, title)
}

// journey is the guide, in order. Each step returns an error only when the demo cannot
// go on; outcomes that differ from the expected are recorded as failed checks.
func (d *demo) journey(ctx context.Context) error {
	for _, step := range []func(context.Context) error{
		d.startStack,
		d.uploadInitial,
		d.grantReadOnly,
		d.addSource,
		d.firstDiscovery,
		d.lookup,
		d.refresh,
		d.howTo,
	} {
		if err := step(ctx); err != nil {
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
		if manager, err = goBuild(gctx, d.root, "manager", "./cmd"); err != nil {
			return err
		}
		d.cli, err = goBuild(gctx, d.root, "data-import", "./cmd/data-import")
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
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	d.kubectl = filepath.Join(d.stack.kube.Assets, "kubectl")
	if d.cl, err = client.New(d.stack.kube.Config, client.Options{Scheme: d.stack.kube.Scheme}); err != nil {
		return err
	}
	d.say("kube-apiserver: %s (CRDs S3Source and IngestionQuota installed)", d.stack.kube.Config.Host)
	d.say("MinIO:          %s", d.stack.s3.Endpoint)
	return d.startManager(ctx, manager)
}

// startManager runs the real operator binary against the local control plane.
func (d *demo) startManager(ctx context.Context, bin string) error {
	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	probes, err := freeAddr()
	if err != nil {
		return err
	}
	// The platform admin allows the local MinIO by its address: exactly that port on
	// 127.0.0.1 may be dialed (the API server, also on 127.0.0.1, stays refused).
	args := []string{"--store", d.storeDSN, "--metrics-bind-address", metrics, "--health-probe-bind-address", probes,
		"--allowed-endpoints", d.stack.s3.Endpoint}
	p, err := startProcess("the operator", filepath.Join(d.dir, "manager.log"), []string{"KUBECONFIG=" + d.kubeconfig}, bin, args...)
	if err != nil {
		return err
	}
	d.stack.manager = p
	d.say("$ KUBECONFIG=.demo/kubeconfig bin/manager %s", strings.Join(args, " "))
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.waitHTTP(wctx, "http://"+probes+"/readyz"); err != nil {
		return err
	}
	d.say("operator ready (log: .demo/manager.log, metrics: http://%s/metrics)", metrics)
	return nil
}
