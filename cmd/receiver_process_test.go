package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/receiver"
	"github.com/avon-ai/data-import-operator/internal/shard"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// Two real manager processes with --shards on one PostgreSQL, each with its own webhook
// receiver. MinIO-style events, with each source's token, go only to the replica that
// does NOT serve the source: it hands them to the one that does, and every file is
// ingested exactly once without a single listing after the sources' first discovery
// (ListObjectsV2 requests are counted by a proxy in front of MinIO; the interval is
// 24 h). Then the owner of half the sources is killed with SIGKILL and events for its
// sources go to the survivor: it answers 503 with Retry-After while the dead replica
// still holds their shards (nothing is accepted and then lost), and accepts them once it
// took the shards over; those files too are ingested once, still without a listing.
func TestShardedReceiverHandsEventsToTheOwner(t *testing.T) {
	const (
		ns, leaseNS, bkt = "team", "ops", "imports"
		sources, shards  = 6, 4
		perFile          = 50
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

	// The managers reach MinIO through this proxy, which counts listings. The Host header
	// is kept: it is part of what SigV4 signed.
	var listings atomic.Int64
	target, err := url.Parse(s3.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		if pr.In.Method == http.MethodGet && pr.In.URL.Query().Get("list-type") == "2" {
			listings.Add(1)
		}
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}})
	t.Cleanup(proxy.Close)

	for _, n := range []string{ns, leaseNS} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	limit := resource.MustParse("100M")
	if err := k8s.Create(ctx, &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"},
		Spec: v1.IngestionQuotaSpec{DailyLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	names, tokens := make([]string, sources), map[string]string{}
	for i := range names {
		name := fmt.Sprintf("src-%d", i)
		names[i], tokens[name] = name, fmt.Sprintf("events-token-of-%s-0123456789", name)
		ak, sk, err := s3.CreateReadOnlyUser(bkt, name+"/")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-events"}, StringData: map[string]string{v1.EventsTokenKey: tokens[name]}},
		} {
			if err := k8s.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}

	receivers := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	start := func(id string) *exec.Cmd {
		t.Helper()
		spool := filepath.Join(dir, "spool-"+id)
		if err := os.MkdirAll(spool, 0o750); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--shards="+fmt.Sprint(shards), "--shard-lease-duration=3s", "--store="+dsn,
			"--metrics-bind-address=0", "--health-probe-bind-address="+freeAddr(t), "--receiver-bind-address="+receivers[id],
			"--allowed-endpoints="+proxy.URL, "--spool-dir="+spool, "--max-file-size=50M", "--concurrent-files=2", "--zap-log-level=debug")
		// POD_IP as the downward API sets it: the address is published from it.
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAME="+id, "POD_NAMESPACE="+leaseNS, "POD_IP=127.0.0.1")
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
			b, _ := os.ReadFile(logFile.Name())
			if t.Failed() {
				// What moved shards and what the receiver logged, then the tail.
				var moves []string
				for _, line := range strings.Split(string(b), "\n") {
					if strings.Contains(line, `"logger":"shards"`) || strings.Contains(line, `"logger":"receiver"`) {
						moves = append(moves, tail(line, 400))
					}
				}
				t.Logf("%s shards and receiver:\n%s\n%s log tail:\n%s", id, strings.Join(moves, "\n"), id, tail(string(b), 3000))
			}
			for _, tok := range tokens {
				if strings.Contains(string(b), tok) {
					t.Errorf("the log of %s shows a source's token", id)
				}
			}
		})
		return cmd
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
	// holderOf names the replica holding the source's shard Lease.
	holderOf := func(name string) string {
		var l coordinationv1.Lease
		key := client.ObjectKey{Namespace: leaseNS, Name: fmt.Sprintf("data-import-shard-%d", shard.Of(ns+"/"+name, shards))}
		if err := k8s.Get(ctx, key, &l); err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
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
	post := func(replica, name string, body []byte) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+receivers[replica]+receiver.WebhookPath(tokens[name], name, ns), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tokens[name])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err.Error()
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(msg))
	}
	// deliver posts one event as MinIO does with a queue_dir: again after each 503 until
	// it is accepted. It returns how many 503s it got.
	deliver := func(replica, name string, body []byte) int {
		t.Helper()
		unavailable := 0
		deadline := time.Now().Add(90 * time.Second)
		for {
			code, retryAfter, msg := post(replica, name, body)
			switch {
			case code == http.StatusAccepted:
				return unavailable
			case code == http.StatusServiceUnavailable && retryAfter != "":
				unavailable++
				t.Logf("event for %s to %s: 503: %s", name, replica, msg)
			default:
				t.Fatalf("event for %s to %s: HTTP %d (%s): %s", name, replica, code, retryAfter, msg)
			}
			if time.Now().After(deadline) {
				t.Fatalf("event for %s to %s: still 503 after %d tries", name, replica, unavailable)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	other := map[string]string{"a": "b", "b": "a"}
	upload := func(round int) {
		t.Helper()
		for _, name := range names {
			var lines bytes.Buffer
			for c := range perFile {
				id, ts := fmt.Sprintf("%s-r%d-c%d", name, round, c), "2025-01-15T14:30:00Z"
				rec, _ := json.Marshal(map[string]any{
					"conversation_id": id, "timestamp": ts, "agent_id": name, "is_resolved": true,
					"user_data": map[string]any{"account_type": "premium", "last_activity": ts},
					"messages": []any{map[string]any{"message_id": "msg-001", "conversation_id": id, "role": "customer", "sender_id": "user-001",
						"content": fmt.Sprintf("round %d of %s", round, name), "timestamp": ts, "logs": []any{}}},
				})
				lines.Write(rec)
				lines.WriteByte('\n')
			}
			if _, err := s3.Put(bkt, fmt.Sprintf("%s/r%d.jsonl", name, round), lines.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
	}
	event := func(keys ...string) []byte {
		var recs []string
		for _, k := range keys {
			recs = append(recs, fmt.Sprintf(`{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":1,"eTag":"x"}}}`,
				bkt, url.QueryEscape(k)))
		}
		return []byte(`{"EventName":"s3:ObjectCreated:Put","Key":"` + bkt + `/` + keys[0] + `","Records":[` + strings.Join(recs, ",") + `]}`)
	}
	pg, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	// ingestedOnce: every source has rounds ledger rows, all ingested, and their
	// conversations once each.
	ingestedOnce := func(rounds int) func() error {
		return func() error {
			for _, name := range names {
				rows, err := pg.ListFiles(ctx, ns+"/"+name, "", 100)
				if err != nil {
					return err
				}
				ingested := 0
				for _, r := range rows {
					if r.State == store.FileIngested {
						ingested++
					}
				}
				if len(rows) != rounds || ingested != rounds {
					return fmt.Errorf("%s: %d ledger rows, %d ingested; want %d", name, len(rows), ingested, rounds)
				}
				convs, err := pg.ListConversations(ctx, ns, name, 100000)
				if err != nil {
					return err
				}
				if len(convs) != perFile*rounds {
					return fmt.Errorf("%s: %d conversations, want %d", name, len(convs), perFile*rounds)
				}
			}
			return nil
		}
	}

	procs := map[string]*exec.Cmd{"a": start("a"), "b": start("b")}
	wait("two replicas splitting the shards", func() error {
		if h := holders(); h["a"] != shards/2 || h["b"] != shards/2 {
			return fmt.Errorf("holders %v", h)
		}
		return nil
	})
	day := metav1.Duration{Duration: 24 * time.Hour}
	for _, name := range names {
		src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1.S3SourceSpec{
			Bucket: bkt, Prefix: name + "/", Endpoint: proxy.URL, ForcePathStyle: true, Region: minio.Region, Interval: &day,
			Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: name}},
			Events:      &v1.Events{SecretRef: v1.LocalObjectReference{Name: name + "-events"}},
		}}
		if err := k8s.Create(ctx, src); err != nil {
			t.Fatal(err)
		}
	}
	// The first discovery of each source (of an empty prefix) is the only listing; both
	// replicas know every source's path (a HEAD is answered 405, not 404).
	wait("the first discoveries and both receivers knowing every source", func() error {
		for _, name := range names {
			src := &v1.S3Source{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, src); err != nil {
				return err
			}
			if src.Status.LastDiscoveryTime == nil || src.Status.WebhookPath != receiver.WebhookPath(tokens[name], name, ns) {
				return fmt.Errorf("%s: lastDiscoveryTime %v, webhookPath %q", name, src.Status.LastDiscoveryTime, src.Status.WebhookPath)
			}
			for id, addr := range receivers {
				resp, err := http.Head("http://" + addr + src.Status.WebhookPath)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed {
					return fmt.Errorf("%s's receiver answers %d for %s", id, resp.StatusCode, name)
				}
			}
		}
		return nil
	})
	listed := listings.Load()
	if listed < sources {
		t.Fatalf("%d listings before any event; want at least one first discovery per source (%d): is the proxy counting?", listed, sources)
	}

	// Round 0: every event goes to the replica that does not serve its source, twice (a
	// replay must change nothing). Each replica's view of who holds which shard is what
	// it saw at its last renewal, up to a renew period (1 s here) old: two periods after
	// the split, both views are current and no event may be refused.
	time.Sleep(2 * time.Second)
	if h := holders(); h["a"] != shards/2 || h["b"] != shards/2 {
		t.Fatalf("the shards moved again: %v", h)
	}
	upload(0)
	owners := map[string]string{}
	for _, name := range names {
		owners[name] = holderOf(name)
		if owners[name] != "a" && owners[name] != "b" {
			t.Fatalf("%s: shard holder %q", name, owners[name])
		}
		for range 2 {
			if n := deliver(other[owners[name]], name, event(name+"/r0.jsonl")); n != 0 {
				t.Errorf("%s: %d answers 503 with both replicas up and the shards settled", name, n)
			}
		}
	}
	wait("every file of round 0 ingested once", ingestedOnce(1))
	if got := listings.Load(); got != listed {
		t.Errorf("%d listings after the events; want none beyond the %d of the first discoveries", got-listed, listed)
	}
	// The files are in the store before the event runs' results reach status. A run still
	// in flight in status when its replica dies is resumed by the survivor as a full
	// discovery (the event's keys died with the process): a listing this test does not
	// count against the hand-over, so the kill waits for every run to be folded.
	wait("every event run of round 0 folded into status", func() error {
		for _, name := range names {
			src := &v1.S3Source{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, src); err != nil {
				return err
			}
			if meta.IsStatusConditionTrue(src.Status.Conditions, v1.ConditionReconciling) {
				return fmt.Errorf("%s: a run is still in flight in status", name)
			}
		}
		return nil
	})

	// Kill b: events for its sources, sent to a, are refused (503) until a holds their
	// shards, then accepted.
	victim := "b"
	var victims []string
	for _, name := range names {
		if owners[name] == victim {
			victims = append(victims, name)
		}
	}
	if len(victims) == 0 {
		t.Fatalf("b serves none of the sources: %v", owners)
	}
	upload(1)
	if err := procs[victim].Process.Kill(); err != nil { // SIGKILL: no hand-back
		t.Fatal(err)
	}
	_, _ = procs[victim].Process.Wait()
	refused := 0
	for _, name := range names {
		n := deliver("a", name, event(name+"/r1.jsonl"))
		if owners[name] == victim {
			refused += n
		} else if n != 0 {
			t.Errorf("%s (served by the survivor): %d answers 503", name, n)
		}
	}
	if refused == 0 {
		t.Errorf("no event for the killed replica's sources %v was refused while it still held their shards", victims)
	}
	wait("every file of round 1 ingested once", ingestedOnce(2))
	if got := listings.Load(); got != listed {
		t.Errorf("%d listings after the handover; want none beyond the %d of the first discoveries", got-listed, listed)
	}
	t.Logf("%d files ingested from events sent to the replica not serving their source; %d events for a killed replica's sources refused with 503 until the survivor took them over; %d listings in all (the first discoveries)",
		sources*2, refused, listed)
}
