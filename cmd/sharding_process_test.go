package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/shard"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// Two real manager processes with --shards on one PostgreSQL divide the sources; one is
// killed with SIGKILL while files are being imported, the other takes its shards when
// their Leases expire and finishes the work; the killed one comes back and gets half the
// shards again. Every file ends ingested once, usage equals what the ledger charged (a
// download the dead process reserved but never committed charges nothing and holds no
// quota), and the quota is free up to its limit.
func TestShardedProcessesSurviveKill(t *testing.T) {
	const (
		ns, leaseNS, bkt = "team", "ops", "imports"
		sources, files   = 6, 3
	)
	ctx := context.Background()
	env, err := kube.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	k8s, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	s3 := minio.Start(t)
	dsn := pgtest.Start(t)
	dir := t.TempDir()
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}

	for _, n := range []string{ns, leaseNS} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	limit, zero := resource.MustParse("100M"), metav1.Duration{}
	if err := k8s.Create(ctx, &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"},
		Spec: v1.IngestionQuotaSpec{DailyLimit: &limit, RefreshCooldown: &zero}}); err != nil {
		t.Fatal(err)
	}
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	names := make([]string, sources)
	for i := range names {
		names[i] = fmt.Sprintf("src-%d", i)
		ak, sk, err := s3.CreateReadOnlyUser(bkt, names[i]+"/")
		if err != nil {
			t.Fatal(err)
		}
		if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: names[i]},
			StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}); err != nil {
			t.Fatal(err)
		}
	}

	start := func(id string) *exec.Cmd {
		t.Helper()
		// A spool directory per replica, as each pod has its own emptyDir: a manager
		// starting removes what it finds there as a killed process's.
		spool := filepath.Join(dir, "spool-"+id)
		if err := os.MkdirAll(spool, 0o750); err != nil {
			t.Fatal(err)
		}
		probes := freeAddr(t)
		cmd := exec.Command(bin, "--shards=4", "--shard-lease-duration=3s", "--store="+dsn,
			"--metrics-bind-address=0", "--health-probe-bind-address="+probes, "--receiver-bind-address=0", "--allowed-endpoints="+s3.Endpoint,
			"--spool-dir="+spool, "--max-file-size=50M", "--concurrent-files=2")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAME="+id, "POD_NAMESPACE="+leaseNS)
		logFile, err := os.Create(filepath.Join(dir, id+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			_ = logFile.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logFile.Name())
				t.Logf("%s log tail:\n%s", id, tail(string(b), 3000))
			}
		})
		return cmd
	}
	holders := func() map[string]int {
		var leases coordinationv1.LeaseList
		if err := k8s.List(ctx, &leases, client.InNamespace(leaseNS), client.MatchingLabels{shard.LabelRole: "shard"}); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, l := range leases.Items {
			if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
				out[*l.Spec.HolderIdentity]++
			}
		}
		return out
	}
	wait := func(what string, f func() error) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			err := f()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %v", what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	a := start("a")
	start("b")
	wait("two replicas splitting 4 shards", func() error {
		if h := holders(); h["a"] != 2 || h["b"] != 2 {
			return fmt.Errorf("holders %v", h)
		}
		return nil
	})

	// Files of ~1 MB, so runs are in flight when a is killed.
	var total int64
	upload := func(round int) {
		for i, name := range names {
			var lines bytes.Buffer
			for c := range 2000 {
				id, ts := fmt.Sprintf("r%d-c%d", round, c), "2025-01-15T14:30:00Z"
				rec, _ := json.Marshal(map[string]any{
					"conversation_id": id, "timestamp": ts, "agent_id": name, "is_resolved": true,
					"user_data": map[string]any{"account_type": "premium", "last_activity": ts},
					"messages": []any{map[string]any{"message_id": "msg-001", "conversation_id": id, "role": "customer", "sender_id": "user-001",
						"content": strings.Repeat(fmt.Sprintf("round %d source %d ", round, i), 20), "timestamp": ts, "logs": []any{}}},
				})
				lines.Write(rec)
				lines.WriteByte('\n')
			}
			if _, err := s3.Put(bkt, fmt.Sprintf("%s/r%d.jsonl", name, round), lines.Bytes()); err != nil {
				t.Fatal(err)
			}
			total += int64(lines.Len())
		}
	}
	upload(0)
	for _, name := range names {
		src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1.S3SourceSpec{
			Bucket: bkt, Prefix: name + "/", Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region,
			Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: name}},
		}}
		if err := k8s.Create(ctx, src); err != nil {
			t.Fatal(err)
		}
	}
	upload(1)
	time.Sleep(300 * time.Millisecond)
	if err := a.Process.Kill(); err != nil { // SIGKILL: no hand-back, no cleanup
		t.Fatal(err)
	}
	_, _ = a.Process.Wait()
	upload(2)
	refresh := func(value string) {
		for _, name := range names {
			src := &v1.S3Source{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, src); err != nil {
				t.Fatal(err)
			}
			patch := client.MergeFrom(src.DeepCopy())
			if src.Annotations == nil {
				src.Annotations = map[string]string{}
			}
			src.Annotations[v1.RefreshAnnotation] = value
			if err := k8s.Patch(ctx, src, patch); err != nil {
				t.Fatal(err)
			}
		}
	}
	refresh("after-kill")
	ingested := func(want int64) func() error {
		return func() error {
			for _, name := range names {
				src := &v1.S3Source{}
				if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, src); err != nil {
					return err
				}
				if f := src.Status.Files; f == nil || f.Ingested != want {
					return fmt.Errorf("%s: files %+v, want %d ingested", name, src.Status.Files, want)
				}
			}
			return nil
		}
	}
	wait("b taking every shard of the killed replica", func() error {
		if h := holders(); h["b"] != 4 {
			return fmt.Errorf("holders %v", h)
		}
		return nil
	})
	wait("b ingesting every file", ingested(files))

	// a comes back: it gets half the shards again, and a new round goes through both.
	start("a")
	wait("the shards split again", func() error {
		if h := holders(); h["a"] != 2 || h["b"] != 2 {
			return fmt.Errorf("holders %v", h)
		}
		return nil
	})
	upload(3)
	refresh("after-restart")
	wait("every file of the new round", ingested(files+1))

	pg, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	var ledger int64
	for _, name := range names {
		rows, err := pg.ListFiles(ctx, ns+"/"+name, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != files+1 {
			t.Errorf("%s: %d ledger rows, want %d", name, len(rows), files+1)
		}
		for _, r := range rows {
			if r.State != store.FileIngested {
				t.Errorf("%s %s: %s %s", name, r.Key, r.State, r.Message)
			}
			ledger += r.Bytes
		}
		convs, err := pg.ListConversations(ctx, ns, name, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if len(convs) != 2000*(files+1) {
			t.Errorf("%s: %d conversations, want %d", name, len(convs), 2000*(files+1))
		}
	}
	day := time.Now().UTC().Format("2006-01-02")
	used, _, err := pg.Usage(ctx, ns+"/default", day)
	if err != nil {
		t.Fatal(err)
	}
	if used != ledger || ledger != total {
		t.Errorf("usage %d, ledger %d, uploaded %d: want all equal", used, ledger, total)
	}
	// No reservation of the killed process still holds quota: the rest of the limit can
	// be reserved.
	if _, err := pg.Reserve(ctx, store.Reservation{Quota: ns + "/default", Day: day, Source: "check", Bytes: limit.Value() - used, Limit: limit.Value()}); err != nil {
		t.Errorf("reserving the rest of the quota: %v", err)
	}
	t.Logf("%d bytes in %d files ingested across a SIGKILL and a restart", ledger, sources*(files+1))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
