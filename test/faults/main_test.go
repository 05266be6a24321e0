package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
	"github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// world is what every scenario shares: one control plane, one MinIO holding the corpus,
// one PostgreSQL server (a fresh database per scenario) and the two manager binaries.
type world struct {
	dir        string
	kubeconfig string
	kube       client.Client
	s3         *minio.Server
	pg         *postgres.Server
	// manager is the production build; faulty is built with -tags failpoints.
	manager, faulty string
	objects         []object
}

const (
	namespace  = "faults"
	sourceName = "conversations"
	bucketName = "faults"
	quotaName  = "default"
)

var w *world

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctrllog.SetLogger(logr.Discard()) // the suite's clients log nothing worth reading
	dir, err := os.MkdirTemp("", "faults-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	root, err := testsupport.RepoRoot()
	if err != nil {
		return 0, err
	}
	w = &world{dir: dir, objects: corpus()}
	var (
		env    *kube.Env
		stopPG func() error
	)
	defer func() {
		if w.s3 != nil {
			w.s3.Stop()
		}
		if stopPG != nil {
			_ = stopPG()
		}
		if env != nil {
			_ = env.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Everything at once: the builds dominate on a cold cache.
	var g errgroup.Group
	g.Go(func() (err error) {
		w.manager, err = goBuild(ctx, root, filepath.Join(dir, "bin", "manager"))
		return err
	})
	g.Go(func() (err error) {
		w.faulty, err = goBuild(ctx, root, filepath.Join(dir, "bin", "manager-failpoints"), "-tags", "failpoints")
		return err
	})
	g.Go(func() (err error) { env, err = kube.Start(); return err })
	g.Go(func() (err error) { w.s3, err = minio.StartServer(minio.Options{}); return err })
	g.Go(func() (err error) { w.pg, stopPG, err = postgres.StartServer(ctx); return err })
	if err := g.Wait(); err != nil {
		return 0, err
	}
	if w.kubeconfig, err = env.Kubeconfig(dir); err != nil {
		return 0, err
	}
	if w.kube, err = env.Client(); err != nil {
		return 0, err
	}
	if err := w.seed(ctx); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// goBuild builds the manager (./cmd) into out.
func goBuild(ctx context.Context, root, out string, flags ...string) (string, error) {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %v: %w\n%s", append(args, "./cmd"), err, b)
	}
	return out, nil
}

// seed uploads the corpus and creates the tenant: namespace, read-only key, quota.
func (w *world) seed(ctx context.Context) error {
	if err := w.s3.CreateBucket(bucketName); err != nil {
		return err
	}
	bodies := map[string][]byte{}
	for _, o := range w.objects {
		bodies[o.key] = o.body
	}
	// The two copies of one record are uploaded in order, so which is newer is fixed.
	for _, k := range []string{prefix + "dup-a.jsonl", prefix + "dup-b.jsonl"} {
		if _, err := w.s3.Put(bucketName, k, bodies[k]); err != nil {
			return err
		}
		delete(bodies, k)
		time.Sleep(10 * time.Millisecond) // distinct last-modified times
	}
	if _, err := w.s3.PutMany(bucketName, bodies); err != nil {
		return err
	}
	key, secret, err := w.s3.CreateReadOnlyUser(bucketName, prefix)
	if err != nil {
		return err
	}
	daily, perFile := resource.MustParse("1G"), resource.MustParse("50M")
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "s3-credentials"},
			StringData: map[string]string{"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}},
		// No cooldown: after an outage the suite asks for the retry at once.
		&v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: quotaName}, Spec: v1.IngestionQuotaSpec{
			DailyLimit: &daily, MaxFileSize: &perFile, RefreshCooldown: &metav1.Duration{}}},
	} {
		if err := w.kube.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}
