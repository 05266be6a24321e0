package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// setUpTenant is the platform admin's part (docs/multi-tenancy.md, "The admin's steps"):
// a namespace per customer, the customer's user bound to the built-in edit role there
// only, and the customer's quota (Guide Step 1's limits), which tenants cannot write. A
// second customer, globex, is the namespace the tenant must not see.
func (d *demo) setUpTenant(ctx context.Context) error {
	d.section("a namespace per customer, the tenant's user, and its daily quota (Guide Step 1)")
	d.say("admin$ commands use KUBECONFIG=.demo/kubeconfig (cluster-admin); tenant$ commands use KUBECONFIG=.demo/kubeconfig-tenant.")
	quota := func(ns, daily, file string) string {
		return fmt.Sprintf(`apiVersion: dataimport.avon.ai/v1alpha1
kind: IngestionQuota
metadata:
  name: %s
  namespace: %s
spec:
  dailyLimit: %-4s       # decimal: bytes downloaded per day (500M = 500,000,000)
  maxFileSize: %-4s      # larger objects fail without being downloaded
  refreshCooldown: 60s   # least time between two refreshes
  timeZone: UTC          # the daily window resets at midnight here
`, quotaName, ns, daily, file)
	}
	manifests := map[string]string{
		"00-namespaces.yaml": fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n",
			namespace, otherNamespace),
		"20-quotas.yaml": quota(namespace, "500M", "50M") + "---\n" + quota(otherNamespace, "2G", "50M"),
	}
	for _, name := range []string{"00-namespaces.yaml", "20-quotas.yaml"} {
		if err := os.WriteFile(filepath.Join(d.dir, "manifests", "admin", name), []byte(manifests[name]), 0o644); err != nil {
			return fmt.Errorf("writing the admin's manifests: %w", err)
		}
	}
	d.say("Namespaces %s and %s (another customer), and each one's quota; %s's:\n%s", namespace, otherNamespace, namespace,
		strings.TrimSpace(quota(namespace, "500M", "50M")))
	if _, err := d.asAdmin(ctx, "apply", "-f", ".demo/manifests/admin/"); err != nil {
		return err
	}
	d.say("\nThe customer's user %s gets the built-in edit role in %s only (with the operator's roles aggregated into it:\n"+
		"S3Sources read-write, IngestionQuotas read-only):", tenantUser, namespace)
	if _, err := d.asAdmin(ctx, "create", "rolebinding", tenantUser+"-edit", "--clusterrole=edit", "--user="+tenantUser, "-n", namespace); err != nil {
		return err
	}
	written, err := d.stack.tenancy.UserKubeconfig(d.dir, tenantUser)
	if err != nil {
		return fmt.Errorf("writing the tenant's kubeconfig: %w", err)
	}
	d.tenantKubeconfig = filepath.Join(d.dir, "kubeconfig-tenant")
	if err := os.Rename(written, d.tenantKubeconfig); err != nil {
		return fmt.Errorf("writing the tenant's kubeconfig: %w", err)
	}
	d.say("The tenant's kubeconfig %s acts as user %s: every request is authorized as that user's (a local admin\n"+
		"certificate that impersonates the user, standing in for the customer's own login).", d.tenantKubeconfig, tenantUser)
	d.say("\nNot done, on purpose: `kubectl label namespace %s %s=allowed` would let %s's sources use the operator's own\n"+
		"cloud identity (credentials provider Default). This customer brings its own read-only keys instead (provider Secret).",
		namespace, v1.OperatorIdentityLabel, namespace)
	return nil
}

// uploadInitial is Step 2: the customer's files land under conversations/YYYY/MM/DD/.
func (d *demo) uploadInitial(ctx context.Context) error {
	d.section("Guide Step 2: the customer stores conversation files in the bucket")
	if err := d.stack.s3.CreateBucket(bucketName); err != nil {
		return err
	}
	return d.upload(phaseInitial)
}

func (d *demo) upload(phase string) error {
	samples, err := loadPhase(d.root, phase)
	if err != nil {
		return err
	}
	objects := map[string][]byte{}
	for _, s := range samples {
		key := d.dayPrefix + s.name
		objects[key] = s.body
		d.sizes[key] = int64(len(s.body))
		e := expected[s.name]
		d.say("  s3://%s/%-52s %6d bytes  expect %s (%s)", bucketName, key, len(s.body), e.state, e.reason)
	}
	if _, err := d.stack.s3.PutMany(bucketName, objects); err != nil {
		return err
	}
	d.say("Uploaded %d file(s) from config/samples/data/%s/ (.zip and .tar.gz packed from the *.zip.d and *.tar.gz.d folders).", len(samples), phase)
	return nil
}

// grantReadOnly is Step 3 §1: a principal that may only list the prefix and read its objects.
func (d *demo) grantReadOnly(ctx context.Context) error {
	d.section("Guide Step 3: grant the ingestion principal read-only access to the prefix")
	access, secret, err := d.stack.s3.CreateReadOnlyUser(bucketName, prefix)
	if err != nil {
		return err
	}
	var policy any
	if err := json.Unmarshal(minio.ReadOnlyPolicy(bucketName, prefix), &policy); err != nil {
		return err
	}
	pretty, _ := json.MarshalIndent(policy, "  ", "  ")
	d.say("MinIO user with this policy (s3:ListBucket only under the prefix, s3:GetObject, nothing else):\n  %s", pretty)
	d.say("Its keys go into a Secret of the tenant's namespace (written to .demo/manifests/tenant/10-secret.yaml, mode 0600; never printed).")
	body := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: acme-s3-credentials
  namespace: %s
type: Opaque
stringData:
  AWS_ACCESS_KEY_ID: %q
  AWS_SECRET_ACCESS_KEY: %q
`, namespace, access, secret)
	if err := os.WriteFile(filepath.Join(d.dir, "manifests", "tenant", "10-secret.yaml"), []byte(body), 0o600); err != nil {
		return fmt.Errorf("writing the Secret's manifest: %w", err)
	}
	return nil
}

// addSource is Step 2 §4-6 ("Add S3 Source"): the tenant applies its Secret and S3Source
// with the real kubectl, as the tenant's user.
func (d *demo) addSource(ctx context.Context) error {
	d.section("Guide Step 2: add the S3 source (its Secret and S3Source, in its namespace)")
	manifests := map[string]string{
		"30-source.yaml": fmt.Sprintf(`apiVersion: dataimport.avon.ai/v1alpha1
kind: S3Source
metadata:
  name: %s
  namespace: %s
spec:
  bucket: %s
  prefix: %s
  region: %s
  endpoint: %s   # MinIO; leave out for AWS S3
  forcePathStyle: true
  credentials:
    provider: Secret
    secretRef:
      name: acme-s3-credentials
  interval: 1h
  quotaRef: %s
  onInvalidRecord: SkipFile
`, sourceName, namespace, bucketName, prefix, minio.Region, d.stack.s3.Endpoint, quotaName),
	}
	if err := os.WriteFile(filepath.Join(d.dir, "manifests", "tenant", "30-source.yaml"), []byte(manifests["30-source.yaml"]), 0o644); err != nil {
		return fmt.Errorf("writing the S3Source's manifest: %w", err)
	}
	d.say("%s", strings.TrimSpace(manifests["30-source.yaml"]))
	_, err := d.asTenant(ctx, "apply", "-f", ".demo/manifests/tenant/")
	return err
}

// tenantBoundaries shows, while the first discovery runs, what the tenant may not do:
// raise or delete its quota, grant itself the operator's identity, or see another customer.
func (d *demo) tenantBoundaries(ctx context.Context) error {
	d.section("what only the platform admin may do is refused")
	d.say("Raising its own daily limit (IngestionQuota is writable by admins only):")
	out, err := d.asTenant(ctx, "patch", "ingestionquota", quotaName, "-n", namespace, "--type", "merge", "-p", `{"spec":{"dailyLimit":"5G"}}`)
	var q v1.IngestionQuota
	if gerr := d.cl.Get(ctx, client.ObjectKey{Namespace: namespace, Name: quotaName}, &q); gerr != nil {
		return fmt.Errorf("reading the quota back: %w", gerr)
	}
	d.check("tenant: raising its own quota's dailyLimit is Forbidden, and the limit stays 500M",
		forbidden(out, err) && q.Spec.DailyLimit != nil && q.Spec.DailyLimit.String() == "500M", refusal(out, err))
	d.say("\nDeleting its quota (which would fall back to the defaults):")
	out, err = d.asTenant(ctx, "delete", "ingestionquota", quotaName, "-n", namespace)
	d.check("tenant: deleting its own quota is Forbidden", forbidden(out, err), refusal(out, err))
	d.say("\nLabelling its namespace to use the operator's own cloud identity:")
	out, err = d.asTenant(ctx, "label", "namespace", namespace, v1.OperatorIdentityLabel+"=allowed")
	d.check("tenant: labelling its namespace for the operator's identity is Forbidden", forbidden(out, err), refusal(out, err))
	d.say("\nLooking at another customer's namespace:")
	out, err = d.asTenant(ctx, "get", "s3sources,ingestionquotas", "-n", otherNamespace)
	d.check("tenant: reading namespace "+otherNamespace+"'s sources and quotas is Forbidden", forbidden(out, err), refusal(out, err))
	return nil
}

// forbidden says whether kubectl failed with the API server's Forbidden.
func forbidden(out string, err error) bool {
	return err != nil && strings.Contains(out, "(Forbidden)")
}

func refusal(out string, err error) string {
	if err == nil {
		return "kubectl succeeded: " + out
	}
	return out
}

// firstDiscovery is Step 3 §4 and Step 4: the first scan runs at once; the dashboard shows it.
func (d *demo) firstDiscovery(ctx context.Context) error {
	d.section("Guide Steps 3-4: the first discovery runs at once; the Data Import dashboard")
	src, err := d.waitSource(ctx, "the first discovery", func(s *v1.S3Source) bool { return s.Status.LastDiscoveryTime != nil })
	if err != nil {
		return err
	}
	d.say("First discovery finished at %s.", src.Status.LastDiscoveryTime.UTC().Format(time.RFC3339))
	return d.dashboard(ctx, "after the first discovery")
}

// lookup is Step 3 §4 / checklist item 7: find the sample by agent_id + conversation_id.
func (d *demo) lookup(ctx context.Context) error {
	d.section("Guide Step 3 §4: find an imported conversation by agent_id + conversation_id")
	out, err := d.cliRun(ctx, "get", "--store", d.storeDSN, "-n", namespace, "--agent", "agent-avon-ai-001", "--conversation", "avon-ai-example-conv-001")
	d.check("lookup: get finds the seed's example conversation with its messages, logs and user_data",
		err == nil && strings.Contains(out, `"conversation_id": "avon-ai-example-conv-001"`) &&
			strings.Contains(out, `"message_id": "msg-003"`) && strings.Contains(out, `"records_found": 3`) &&
			strings.Contains(out, `"subscription_tier": "professional"`), errText(err))
	out, err = d.cliRun(ctx, "list", "--store", d.storeDSN, "-n", namespace, "--agent", "agent-avon-ai-002")
	d.check("lookup: list shows agent-avon-ai-002's 3 conversations (2 from the .jsonl, 1 from the .tar.gz)",
		err == nil && strings.Count(out, "acme-conv-") == 3, errText(err))
	return nil
}

// refresh is Step 4's Refresh and Step 6: a re-upload is ignored, a newer version wins,
// and a second refresh within the cooldown is throttled.
func (d *demo) refresh(ctx context.Context) error {
	d.section("Guide Steps 4 and 6: new files, a manual refresh, and the 60 s cooldown")
	d.say("Uploading a byte-identical re-upload of the seed example and a newer version of it (%s, dropped in the step before, waits for this refresh too):", ownSample)
	if err := d.upload(phaseRefresh); err != nil {
		return err
	}
	src, err := d.source(ctx)
	if err != nil {
		return err
	}
	last := src.Status.LastDiscoveryTime.Time
	if wait := time.Until(last.Add(60*time.Second + time.Second)); wait > 0 {
		d.say("The last discovery finished %s ago; a refresh now would be throttled. Waiting %s for the cooldown ...",
			time.Since(last).Round(time.Second), wait.Round(time.Second))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	first := strconv.FormatInt(time.Now().Unix(), 10)
	if _, err := d.asTenant(ctx, "annotate", "s3source", sourceName, "-n", namespace, v1.RefreshAnnotation+"="+first, "--overwrite"); err != nil {
		return err
	}
	src, err = d.waitSource(ctx, "the refresh", func(s *v1.S3Source) bool {
		return s.Status.LastHandledRefresh == first && s.Status.LastDiscoveryTime.After(last)
	})
	if err != nil {
		return err
	}
	d.check("refresh: the first refresh ran a discovery", src.Status.LastHandledRefresh == first, "")
	if err := d.dashboard(ctx, "after the refresh"); err != nil {
		return err
	}
	out, err := d.cliRun(ctx, "get", "--store", d.storeDSN, "-n", namespace, "--agent", "agent-avon-ai-001", "--conversation", "avon-ai-example-conv-001")
	d.check("de-duplication: the newer version (with msg-004) replaced the stored conversation",
		err == nil && strings.Contains(out, `"message_id": "msg-004"`), errText(err))
	out, err = d.cliRun(ctx, "get", "--store", d.storeDSN, "-n", namespace, "--agent", "agent-avon-ai-001", "--conversation", "sample-conv-001")
	d.check("drop a file: "+ownSample+", put with the upload-only key, was ingested on the refresh (get finds sample-conv-001)",
		err == nil && strings.Contains(out, `"conversation_id": "sample-conv-001"`) && strings.Contains(out, `"action": "email_change_requested"`), errText(err))
	return d.throttledRefresh(ctx, first)
}

// throttledRefresh asks again at once: the cooldown throttles it, with a condition and an event.
func (d *demo) throttledRefresh(ctx context.Context, first string) error {
	d.say("\nA second refresh right away is within the cooldown:")
	second := strconv.FormatInt(time.Now().Unix(), 10)
	if second <= first {
		second = first + "-again"
	}
	if _, err := d.asTenant(ctx, "annotate", "s3source", sourceName, "-n", namespace, v1.RefreshAnnotation+"="+second, "--overwrite"); err != nil {
		return err
	}
	src, err := d.waitSource(ctx, "the throttled refresh", func(s *v1.S3Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, v1.ConditionReconciling)
		return c != nil && c.Reason == v1.ReasonRefreshThrottled
	})
	if err != nil {
		return err
	}
	c := meta.FindStatusCondition(src.Status.Conditions, v1.ConditionReconciling)
	d.check("refresh: the second refresh within 60 s is throttled (condition Reconciling/RefreshThrottled)",
		src.Status.LastHandledRefresh == first && strings.Contains(c.Message, second), c.Message)
	if _, err := d.asTenant(ctx, "get", "s3source", sourceName, "-n", namespace, "-o",
		`jsonpath={range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}`); err != nil {
		return err
	}
	var events eventsv1.EventList
	if err := d.cl.List(ctx, &events, client.InNamespace(namespace)); err != nil {
		return err
	}
	found := false
	for _, e := range events.Items {
		found = found || (e.Reason == v1.ReasonRefreshThrottled && e.Type == "Warning" && e.Regarding.Name == sourceName)
	}
	d.check("refresh: a Warning event RefreshThrottled was recorded", found, "")
	_, err = d.asTenant(ctx, "get", "events", "-n", namespace, "--field-selector", "reason="+v1.ReasonRefreshThrottled)
	return err
}

// howTo prints how to look around while the demo stays up, as either role.
func (d *demo) howTo(ctx context.Context) error {
	d.section("Look around yourself, as the platform admin or as the tenant")
	kubectlDir := filepath.Dir(d.kubectl)
	d.say(`Both use the local kubectl:

  export PATH=%[1]s:$PATH

The platform admin (cluster-admin) owns namespaces, the tenant's access and quotas:

  export KUBECONFIG=%[2]s
  kubectl get ingestionquotas -A -o wide
  kubectl get rolebindings -n %[3]s
  kubectl patch ingestionquota %[5]s -n %[3]s --type merge -p '{"spec":{"dailyLimit":"1G"}}'   # only the admin may
  kubectl label namespace %[3]s %[6]s=allowed   # alternative to the tenant's keys: the operator's own identity

The tenant %[7]s (the built-in edit role in %[3]s only) owns its Secrets and S3Sources:

  export KUBECONFIG=%[8]s
  kubectl get s3sources,ingestionquotas -n %[3]s -o wide
  kubectl describe s3source %[4]s -n %[3]s
  kubectl annotate s3source %[4]s -n %[3]s %[9]s="$(date +%%s)" --overwrite      # Refresh
  kubectl patch s3source %[4]s -n %[3]s --type merge -p '{"spec":{"disabled":true}}'  # Step 7: Disable
  kubectl delete s3source %[4]s -n %[3]s                                           # Step 7: Remove (S3 untouched)
  kubectl auth can-i --list -n %[3]s       # what edit allows, the operator's roles aggregated
  kubectl get s3sources -n %[10]s          # Forbidden: another customer's namespace

The store is the admin's: the data-import CLI holds its credentials.`,
		kubectlDir, filepath.Join(d.root, d.kubeconfig), namespace, sourceName, quotaName, v1.OperatorIdentityLabel,
		tenantUser, filepath.Join(d.root, d.tenantKubeconfig), v1.RefreshAnnotation, otherNamespace)
	d.say(`Query the store the operator writes (SQLite in WAL mode: readers do not block it):

  go run ./cmd/data-import files --store %[6]s -n %[3]s --source %[4]s [--state failed]
  go run ./cmd/data-import get   --store %[6]s -n %[3]s --agent agent-avon-ai-001 --conversation avon-ai-example-conv-001
  go run ./cmd/data-import list  --store %[6]s -n %[3]s --agent agent-avon-ai-002
  go run ./cmd/data-import validate config/samples/data/initial    # the same checks before uploading

Operator log: .demo/manager.log`, filepath.Join(d.root, ".demo", "kubeconfig"), kubectlDir, namespace, sourceName, v1.RefreshAnnotation, d.storeDSN)
	if d.uploadKey != "" {
		d.dropHowTo(filepath.Join(d.root, d.tenantKubeconfig))
	}
	return nil
}

// dashboard prints the Data Import dashboard from kubectl, status and the store's ledger,
// and checks every number against the sample set.
func (d *demo) dashboard(ctx context.Context, when string) error {
	want := d.expectedTotals()
	quota, err := d.waitQuota(ctx, want.usedBytes)
	if err != nil {
		return err
	}
	src, err := d.source(ctx)
	if err != nil {
		return err
	}
	st := src.Status
	d.say("\n\033[1mData Import dashboard (%s)\033[0m", when)
	d.say("Daily Usage:  %s (resets at %s)", quota.Status.Usage, quota.Status.ResetsAt.UTC().Format(time.RFC3339))
	if _, err := d.asTenant(ctx, "get", "s3sources,ingestionquotas", "-n", namespace, "-o", "wide"); err != nil {
		return err
	}
	f := st.Files
	d.say("S3 Source %s/%s: %s; last discovery %s; next %s", namespace, sourceName, st.State,
		st.LastDiscoveryTime.UTC().Format(time.RFC3339), st.NextDiscoveryTime.UTC().Format(time.RFC3339))
	d.say("  files: %d discovered, %d ingested, %d failed, %d deferred, %d ignored; %d conversation(s) ingested; %d bytes today",
		f.Discovered, f.Ingested, f.Failed, f.Deferred, f.Ignored, st.ConversationsIngested, st.BytesIngestedToday)
	for _, c := range st.Conditions {
		d.say("  condition %-14s %-5s %-18s %s", c.Type, c.Status, c.Reason, c.Message)
	}
	d.say("  recent file errors (status.recentFileErrors):")
	for _, e := range st.RecentFileErrors {
		d.say("    %s [%s] %s", e.Key, e.Reason, e.Message)
	}
	d.say("Per-file states from the store's ledger:")
	if _, err := d.cliRun(ctx, "files", "--store", d.storeDSN, "-n", namespace, "--source", sourceName); err != nil {
		return err
	}

	got := v1.FileCounts{}
	if f != nil {
		got = *f
	}
	d.check(fmt.Sprintf("%s: status.files is %+v", when, want.files), got == want.files, fmt.Sprintf("got %+v", got))
	d.check(fmt.Sprintf("%s: %d conversations ingested", when, want.conversations), st.ConversationsIngested == want.conversations,
		fmt.Sprintf("got %d", st.ConversationsIngested))
	d.check(fmt.Sprintf("%s: quota charged %d bytes (every downloaded object, ingested or failed; not the .csv)", when, want.usedBytes),
		quota.Status.UsedBytes == want.usedBytes && strings.HasSuffix(quota.Status.Usage, "of 500 MB used today"),
		fmt.Sprintf("got %d, %q", quota.Status.UsedBytes, quota.Status.Usage))
	ready := meta.FindStatusCondition(st.Conditions, v1.ConditionReady)
	healthy := meta.FindStatusCondition(st.Conditions, v1.ConditionFilesHealthy)
	d.check(when+": Ready=True/Succeeded and FilesHealthy=False/FilesFailed",
		ready != nil && ready.Reason == v1.ReasonSucceeded && healthy != nil && healthy.Reason == v1.ReasonFilesFailed, "")
	var errKeys []string
	for _, e := range st.RecentFileErrors {
		errKeys = append(errKeys, e.Key)
	}
	sort.Strings(errKeys)
	d.check(when+": status.recentFileErrors lists exactly the failed files", strings.Join(errKeys, " ") == strings.Join(want.failedKeys, " "),
		strings.Join(errKeys, " "))
	return d.checkLedger(ctx, when)
}

// checkLedger compares every file's ledger row (through the CLI's JSON) with the expected.
func (d *demo) checkLedger(ctx context.Context, when string) error {
	cmd := exec.CommandContext(ctx, d.cli, "files", "--store", d.storeDSN, "-n", namespace, "--source", sourceName, "--output", "json")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("data-import files --output json: %w", err)
	}
	var rows []struct {
		Key    string             `json:"key"`
		State  store.FileState    `json:"state"`
		Reason string             `json:"reason"`
		Counts store.RecordCounts `json:"counts"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return fmt.Errorf("data-import files --output json: %w", err)
	}
	var bad []string
	for _, r := range rows {
		e, ok := expected[strings.TrimPrefix(r.Key, d.dayPrefix)]
		c := store.RecordCounts{New: r.Counts.New, Updated: r.Counts.Updated, Unchanged: r.Counts.Unchanged, Invalid: r.Counts.Invalid}
		if !ok || r.State != e.state || r.Reason != e.reason || c != e.counts {
			bad = append(bad, fmt.Sprintf("%s: %s/%s %+v, want %s/%s %+v", r.Key, r.State, r.Reason, c, e.state, e.reason, e.counts))
		}
	}
	d.check(fmt.Sprintf("%s: every file's state, reason and record counts in the ledger (%d files)", when, len(d.sizes)),
		len(bad) == 0 && len(rows) == len(d.sizes), strings.Join(bad, "; "))
	return nil
}

// totals is what the sample set uploaded so far must produce.
type totals struct {
	files         v1.FileCounts
	conversations int64
	usedBytes     int64
	failedKeys    []string
}

func (d *demo) expectedTotals() totals {
	var t totals
	for key, size := range d.sizes {
		e := expected[strings.TrimPrefix(key, d.dayPrefix)]
		t.files.Discovered++
		switch e.state {
		case store.FileIngested:
			t.files.Ingested++
		case store.FileFailed:
			t.files.Failed++
			t.failedKeys = append(t.failedKeys, key)
		case store.FileIgnored:
			t.files.Ignored++
		}
		t.conversations += e.counts.New + e.counts.Updated
		if e.state != store.FileIgnored {
			t.usedBytes += size
		}
	}
	sort.Strings(t.failedKeys)
	return t
}

func (d *demo) source(ctx context.Context) (*v1.S3Source, error) {
	var s v1.S3Source
	return &s, d.cl.Get(ctx, client.ObjectKey{Namespace: namespace, Name: sourceName}, &s)
}

// waitSource polls the source until done holds and no discovery is running.
func (d *demo) waitSource(ctx context.Context, what string, done func(*v1.S3Source) bool) (*v1.S3Source, error) {
	var last *v1.S3Source
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		s, err := d.source(ctx)
		if err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = s
		running := meta.FindStatusCondition(s.Status.Conditions, v1.ConditionReconciling)
		return done(s) && (running == nil || running.Reason != v1.ReasonDiscoveryRunning), nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w (last status: %s; see .demo/manager.log)", what, err, statusJSON(last))
	}
	return last, nil
}

// waitQuota polls the quota until it shows the bytes charged (its reconcile follows the source's).
func (d *demo) waitQuota(ctx context.Context, used int64) (*v1.IngestionQuota, error) {
	var q v1.IngestionQuota
	err := poll(ctx, time.Minute, func() (bool, error) {
		if err := d.cl.Get(ctx, client.ObjectKey{Namespace: namespace, Name: quotaName}, &q); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return q.Status.UsedBytes == used && q.Status.ResetsAt != nil, nil
	})
	if err != nil && ctx.Err() == nil {
		// A wrong figure is a failed check, shown on the dashboard, not the end of the demo.
		return &q, nil
	}
	return &q, err
}

func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func statusJSON(s *v1.S3Source) string {
	if s == nil {
		return "none"
	}
	b, _ := json.Marshal(s.Status)
	return string(b)
}

// asAdmin runs the real kubectl as the platform admin (cluster-admin), echoing the
// command and its output.
func (d *demo) asAdmin(ctx context.Context, args ...string) (string, error) {
	return d.echoRun(ctx, "admin$ kubectl", d.kubectl, []string{"KUBECONFIG=" + d.kubeconfig}, args...)
}

// asTenant runs the real kubectl as the tenant's user (edit in namespace only), echoing
// the command and its output.
func (d *demo) asTenant(ctx context.Context, args ...string) (string, error) {
	return d.echoRun(ctx, "tenant$ kubectl", d.kubectl, []string{"KUBECONFIG=" + d.tenantKubeconfig}, args...)
}

// cliRun runs bin/data-import (what `go run ./cmd/data-import` builds) as the admin, who
// holds the store's credentials, echoing it.
func (d *demo) cliRun(ctx context.Context, args ...string) (string, error) {
	return d.echoRun(ctx, "admin$ bin/data-import", d.cli, nil, args...)
}

// echoRun runs bin, printing the command as shown (a prompt naming who runs it, and the
// command's name) and its output.
func (d *demo) echoRun(ctx context.Context, shown, bin string, env []string, args ...string) (string, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if strings.ContainsAny(a, " \t\"'{}[]$") {
			quoted[i] = "'" + a + "'"
		}
	}
	d.say("%s %s", shown, strings.Join(quoted, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	text := strings.TrimRight(string(out), "\n")
	if text != "" {
		d.say("%s", text)
	}
	if err != nil {
		return text, fmt.Errorf("%s %s: %w", shown, strings.Join(args, " "), err)
	}
	return text, nil
}

// check is one expected outcome of the journey.
type check struct {
	name, detail string
	ok           bool
}

func (d *demo) check(name string, ok bool, detail string) {
	d.checks = append(d.checks, check{name: name, ok: ok, detail: detail})
	if !ok {
		d.say("\033[31mUNEXPECTED\033[0m %s: %s", name, detail)
	}
}

// printChecks lists the outcomes and reports whether all were seen.
func (d *demo) printChecks() bool {
	all := len(d.checks) > 0
	d.say("\nExpected outcomes:")
	for _, c := range d.checks {
		mark := "\033[32mok\033[0m  "
		if !c.ok {
			mark, all = "\033[31mFAIL\033[0m", false
			d.say("  %s %s (%s)", mark, c.name, c.detail)
			continue
		}
		d.say("  %s %s", mark, c.name)
	}
	return all
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
