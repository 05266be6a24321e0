package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/ingest"

	// The suite's store is the variable store (suite_test.go).
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
)

func quantity(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

func createQuota(t *testing.T, ns, name string, spec v1.IngestionQuotaSpec) {
	t.Helper()
	q := &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

func getQuota(t *testing.T, ns, name string) *v1.IngestionQuota {
	t.Helper()
	q := &v1.IngestionQuota{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, q); err != nil {
		t.Fatal(err)
	}
	return q
}

func wantFiles(t *testing.T, src *v1.S3Source, want v1.FileCounts) {
	t.Helper()
	if src.Status.Files == nil || *src.Status.Files != want {
		t.Fatalf("status.files = %+v, want %+v (Ready: %s)", src.Status.Files, want, condition(src, v1.ConditionReady).Message)
	}
}

func wantRequests(t *testing.T, ct *bucket.CountingTransport, lists, gets int) {
	t.Helper()
	if got := ct.Count(bucket.OpListObjectsV2); got != lists {
		t.Errorf("ListObjectsV2 requests = %d, want %d (all: %v)", got, lists, ct.Counts())
	}
	if got := ct.Count(bucket.OpGetObject); got != gets {
		t.Errorf("GetObject requests = %d, want %d (all: %v)", got, gets, ct.Counts())
	}
	for op, n := range ct.Counts() {
		if op != bucket.OpListObjectsV2 && op != bucket.OpGetObject && n > 0 {
			t.Errorf("unexpected %d %s request(s): the operator only lists and reads", n, op)
		}
	}
}

func storedContent(t *testing.T, ns, agent, id string) string {
	t.Helper()
	c, ok, err := store.GetConversation(context.Background(), ns, agent, id)
	if err != nil || !ok {
		t.Fatalf("conversation %s/%s/%s not in the store (found=%v, err=%v)", ns, agent, id, ok, err)
	}
	return string(c.Raw)
}

// Scenarios 1, 3 and 4: every format is ingested with honest status; identical re-uploads
// change nothing; an updated object is re-ingested and its newer record wins; a
// rediscovery one interval later downloads only what is new or updated.
func TestIngestsEveryFormatIncrementally(t *testing.T) {
	const ns, name, bkt = "formats", "conversations", "formats"
	createBucket(t, bkt)
	a := jsonArray(t, conversation("agent-1", "c-001", "2025-01-15T14:30:00Z", "hello"), conversation("agent-1", "c-002", "2025-01-15T14:31:00Z", "billing"))
	b := jsonLines(t, conversation("agent-2", "c-003", "2025-01-15T10:00:00Z", "first"), conversation("agent-2", "c-004", "2025-01-15T10:05:00Z", "second"))
	c := zipOf(t, map[string][]byte{"day/c.json": jsonArray(t, conversation("agent-1", "c-005", "2025-01-16T08:00:00Z", "zipped"))})
	d := tarGzOf(t, map[string][]byte{"d.jsonl": jsonLines(t, conversation("agent-3", "c-006", "2025-01-16T09:00:00Z", "tarred"))})
	objects := map[string][]byte{
		"conversations/2025/01/15/a.json":    a,
		"conversations/2025/01/15/b.jsonl":   b,
		"conversations/2025/01/16/c.zip":     c,
		"conversations/2025/01/16/d.tar.gz":  d,
		"conversations/2025/01/16/notes.csv": []byte("not,a,conversation\n"),
		"elsewhere/outside.json":             a,
	}
	for k, v := range objects {
		put(t, bkt, k, v)
	}
	createQuota(t, ns, "default", v1.IngestionQuotaSpec{})
	ct := counts.of(bkt)
	start := clk.Now()
	newSource(t, ns, name, bkt, "conversations/", nil)

	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 5, Ingested: 4, Ignored: 1})
	if r := condition(src, v1.ConditionReady); r.Status != metav1.ConditionTrue || r.Reason != v1.ReasonSucceeded {
		t.Fatalf("Ready = %s/%s %q, want True/Succeeded", r.Status, r.Reason, r.Message)
	}
	if src.Status.ConversationsIngested != 6 {
		t.Errorf("conversationsIngested = %d, want 6", src.Status.ConversationsIngested)
	}
	if got := src.Status.LastDiscoveryTime.Unix(); got != start.Unix() {
		t.Errorf("lastDiscoveryTime = %v, want the (fake) clock's %v", src.Status.LastDiscoveryTime, start)
	}
	next := src.Status.NextDiscoveryTime.Sub(src.Status.LastDiscoveryTime.Time)
	if next < time.Hour || next >= time.Hour+time.Minute {
		t.Errorf("nextDiscoveryTime is %v after the last discovery, want one interval (1h) plus a jitter under 1m", next)
	}
	wantBytes := int64(len(a) + len(b) + len(c) + len(d))
	if src.Status.BytesIngestedToday != wantBytes {
		t.Errorf("bytesIngestedToday = %d, want %d (the four downloaded objects)", src.Status.BytesIngestedToday, wantBytes)
	}
	if src.Status.State != "Enabled" {
		t.Errorf("state = %q, want Enabled", src.Status.State)
	}
	wantRequests(t, ct, 1, 4)
	wantKstatus(t, src, kstatus.CurrentStatus)
	// Metrics are counted right after the status that folds the run is written.
	eventually(t, "the run's metrics", func() error {
		for what, got := range map[string][2]float64{
			"last successful discovery": {testutil.ToFloat64(metrics.LastSuccess.WithLabelValues(ns, name)), float64(start.Unix())},
			"files ingested":            {testutil.ToFloat64(metrics.Files.WithLabelValues(ns, name, "ingested")), 4},
			"bytes downloaded":          {testutil.ToFloat64(metrics.Bytes.WithLabelValues(ns, name)), float64(len(a) + len(b) + len(c) + len(d))},
			"new conversations":         {testutil.ToFloat64(metrics.Conversations.WithLabelValues(ns, name, "new")), 6},
			"objects listed":            {testutil.ToFloat64(metrics.ObjectsListed.WithLabelValues(ns, name)), 5},
		} {
			if got[0] != got[1] {
				return fmt.Errorf("metric %s = %v, want %v", what, got[0], got[1])
			}
		}
		return nil
	})
	waitEvent(t, ns, name, "DiscoverySucceeded", "discovered 5 object(s): 4 ingested")
	eventually(t, "quota usage", func() error {
		q := getQuota(t, ns, "default")
		if q.Status.UsedBytes != wantBytes || q.Status.RemainingBytes != 500_000_000-wantBytes {
			return fmt.Errorf("quota status %+v, want used %d", q.Status, wantBytes)
		}
		if !strings.HasSuffix(q.Status.Usage, "of 500 MB used today") || len(q.Status.TopSources) != 1 || q.Status.TopSources[0].UsedBytes != wantBytes {
			return fmt.Errorf("usage %q, top sources %+v", q.Status.Usage, q.Status.TopSources)
		}
		wantKstatus(t, q, kstatus.CurrentStatus)
		return nil
	})
	if got := storedContent(t, ns, "agent-1", "c-005"); !strings.Contains(got, "zipped") {
		t.Errorf("c-005 stored as %s", got)
	}
	if got := storedContent(t, ns, "agent-3", "c-006"); !strings.Contains(got, "tarred") {
		t.Errorf("c-006 stored as %s", got)
	}
	if _, ok, _ := store.GetConversation(context.Background(), ns, "agent-1", "c-001"); !ok {
		t.Error("c-001 missing")
	}

	// Scenario 3: the same bytes again (same ETag), the same records under a new key, and
	// an update with a newer version of c-003.
	put(t, bkt, "conversations/2025/01/15/a.json", a)
	put(t, bkt, "conversations/2025/01/17/a-copy.json", a)
	put(t, bkt, "conversations/2025/01/15/b.jsonl", jsonLines(t,
		conversation("agent-2", "c-003", "2025-01-15T12:00:00Z", "corrected"), conversation("agent-2", "c-004", "2025-01-15T10:05:00Z", "second")))
	ct.Reset()
	// Scenario 4: one interval later the source rediscovers (the poke stands in for the
	// requeue timer, which the controller set to nextDiscoveryTime).
	clk.Step(next + time.Second)
	second := clk.Now()
	poke(t, ns, name)
	src = waitRun(t, ns, name, second)
	wantFiles(t, src, v1.FileCounts{Discovered: 6, Ingested: 5, Ignored: 1})
	wantRequests(t, ct, 1, 2) // a-copy.json and the updated b.jsonl only
	if got := storedContent(t, ns, "agent-2", "c-003"); !strings.Contains(got, "corrected") {
		t.Errorf("the newer c-003 did not win: %s", got)
	}
	if src.Status.ConversationsIngested != 7 {
		t.Errorf("conversationsIngested = %d, want 7 (one updated; the copy's two unchanged)", src.Status.ConversationsIngested)
	}
	copyRow, ok, err := store.LookupFile(context.Background(), ns+"/"+name, "conversations/2025/01/17/a-copy.json")
	if err != nil || !ok || copyRow.Counts.Unchanged != 2 || copyRow.Counts.New != 0 {
		t.Errorf("a-copy.json ledger row %+v (found=%v, err=%v), want 2 unchanged, 0 new", copyRow.Counts, ok, err)
	}

	// A rediscovery with nothing new downloads nothing.
	ct.Reset()
	clk.Step(2 * time.Hour)
	third := clk.Now()
	poke(t, ns, name)
	src = waitRun(t, ns, name, third)
	wantFiles(t, src, v1.FileCounts{Discovered: 6, Ingested: 5, Ignored: 1})
	wantRequests(t, ct, 1, 0)

	// That run changed nothing, so it recorded no Normal event. Events are written in order:
	// once the next run's event is there, the quiet run's would have been too.
	put(t, bkt, "conversations/2025/01/18/e.json", jsonArray(t, conversation("agent-1", "c-007", "2025-01-18T08:00:00Z", "late")))
	clk.Step(2 * time.Hour)
	fourth := clk.Now()
	poke(t, ns, name)
	waitRun(t, ns, name, fourth)
	waitEvent(t, ns, name, "DiscoverySucceeded", "discovered 7 object(s): 6 ingested")
	for _, e := range events(t, ns, name, "DiscoverySucceeded") {
		if strings.Contains(e.Note, "this run downloaded 0 ") {
			t.Errorf("a discovery that changed nothing recorded a Normal event: %s", e.Note)
		}
	}
}

// Scenario 2: invalid files fail with their precise error; valid files are unaffected.
func TestInvalidFilesFailWithPreciseErrors(t *testing.T) {
	const ns, name, bkt = "invalid", "mixed", "invalid"
	createBucket(t, bkt)
	good := conversation("agent-1", "ok-1", "2025-01-15T14:30:00Z", "fine")
	badTS := conversation("agent-1", "bad-ts", "2025-01-15T14:30:00Z", "x")
	badTS["messages"].([]any)[1].(map[string]any)["timestamp"] = "15/01/2025"
	noAgent := conversation("agent-1", "no-agent", "2025-01-15T14:30:00Z", "x")
	delete(noAgent, "agent_id")
	put(t, bkt, "in/good.json", jsonArray(t, good))
	put(t, bkt, "in/bom.json", append([]byte("\xEF\xBB\xBF"), jsonArray(t, good)...))
	put(t, bkt, "in/badts.jsonl", jsonLines(t, conversation("agent-1", "ok-2", "2025-01-15T14:30:00Z", "fine"), badTS))
	put(t, bkt, "in/noagent.json", jsonArray(t, noAgent))
	start := clk.Now()
	newSource(t, ns, name, bkt, "in/", nil)

	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 4, Ingested: 1, Failed: 3})
	byKey := map[string]v1.FileError{}
	for _, e := range src.Status.RecentFileErrors {
		byKey[e.Key] = e
	}
	for key, want := range map[string][]string{
		"in/bom.json":     {ingest.ReasonInvalidEncoding, "byte-order mark"},
		"in/badts.jsonl":  {ingest.ReasonInvalidRecords, `in/badts.jsonl:2: messages[1].timestamp: "15/01/2025" is not an ISO-8601 timestamp`},
		"in/noagent.json": {ingest.ReasonInvalidRecords, "in/noagent.json[0]", "agent_id"},
	} {
		e, ok := byKey[key]
		if !ok {
			t.Errorf("no recentFileErrors entry for %s: %+v", key, src.Status.RecentFileErrors)
			continue
		}
		if e.Reason != want[0] {
			t.Errorf("%s: reason %q, want %q", key, e.Reason, want[0])
		}
		for _, w := range want[1:] {
			if !strings.Contains(e.Message, w) {
				t.Errorf("%s: message %q lacks %q", key, e.Message, w)
			}
		}
	}
	if c := condition(src, v1.ConditionFilesHealthy); c.Status != metav1.ConditionFalse || c.Reason != v1.ReasonFilesFailed {
		t.Errorf("FilesHealthy = %s/%s, want False/FilesFailed", c.Status, c.Reason)
	}
	if c := condition(src, v1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %s (%s): failed files must not make the source unready", c.Status, c.Message)
	}
	waitEvent(t, ns, name, "FilesFailed", "3 file(s) failed")
	storedContent(t, ns, "agent-1", "ok-1")
	// SkipFile (the default): the valid first line of badts.jsonl is not committed.
	if _, ok, _ := store.GetConversation(context.Background(), ns, "agent-1", "ok-2"); ok {
		t.Error("ok-2 from a failed file was stored under the SkipFile policy")
	}
}

// SkipRecord commits the valid records of a file with invalid ones.
func TestSkipRecordPolicy(t *testing.T) {
	const ns, name, bkt = "policy", "skiprecord", "policy"
	createBucket(t, bkt)
	bad := conversation("agent-9", "bad", "2025-01-15T14:30:00Z", "x")
	bad["timestamp"] = "yesterday"
	put(t, bkt, "p/mixed.jsonl", jsonLines(t, conversation("agent-9", "kept", "2025-01-15T14:30:00Z", "kept"), bad))
	start := clk.Now()
	newSource(t, ns, name, bkt, "p/", func(s *v1.S3SourceSpec) { s.OnInvalidRecord = v1.SkipRecord })
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Ingested: 1})
	storedContent(t, ns, "agent-9", "kept")
	row, _, _ := store.LookupFile(context.Background(), ns+"/"+name, "p/mixed.jsonl")
	if row.Counts.Valid != 1 || row.Counts.Invalid != 1 {
		t.Errorf("ledger counts %+v, want 1 valid and 1 invalid", row.Counts)
	}
}

// A spec change re-checks files that failed validation, without a re-upload: widening the
// agent allow-list ingests a file its old list rejected.
func TestSpecChangeRechecksFailedFiles(t *testing.T) {
	const ns, name, bkt = "policy", "allowlist", "allowlist"
	createBucket(t, bkt)
	put(t, bkt, "a/late-agent.json", jsonArray(t, conversation("agent-new", "al-1", "2025-01-15T14:30:00Z", "x")))
	start := clk.Now()
	newSource(t, ns, name, bkt, "a/", func(s *v1.S3SourceSpec) { s.AgentIDs = []string{"agent-old"} })
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Failed: 1})
	if len(src.Status.RecentFileErrors) != 1 || !strings.Contains(src.Status.RecentFileErrors[0].Message, "agent-new") {
		t.Fatalf("recentFileErrors = %+v, want the unknown agent named", src.Status.RecentFileErrors)
	}

	clk.Step(time.Minute)
	again := clk.Now()
	patch := client.MergeFrom(src.DeepCopy())
	src.Spec.AgentIDs = []string{"agent-old", "agent-new"}
	if err := k8s.Patch(context.Background(), src, patch); err != nil {
		t.Fatal(err)
	}
	src = waitRun(t, ns, name, again)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Ingested: 1})
	storedContent(t, ns, "agent-new", "al-1")
}

// Scenario 5: a disabled source makes no S3 request; re-enabling resumes.
func TestDisabledSourceMakesNoRequests(t *testing.T) {
	const ns, name, bkt = "disabled", "paused", "disabled"
	createBucket(t, bkt)
	put(t, bkt, "c/one.json", jsonArray(t, conversation("agent-5", "d-1", "2025-01-15T14:30:00Z", "x")))
	ct := counts.of(bkt)
	newSource(t, ns, name, bkt, "c/", func(s *v1.S3SourceSpec) { s.Disabled = true })
	eventually(t, "Disabled status", func() error {
		src := getSource(t, ns, name)
		if c := condition(src, v1.ConditionReady); src.Status.State != "Disabled" || c.Reason != v1.ReasonDisabled {
			return fmt.Errorf("state %q, Ready %s/%s", src.Status.State, c.Status, c.Reason)
		}
		return nil
	})
	clk.Step(3 * time.Hour)
	poke(t, ns, name)
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "while-disabled")
	time.Sleep(300 * time.Millisecond) // give a wrongly started run the chance to show up
	if n := ct.Total(); n != 0 {
		t.Fatalf("%d S3 request(s) while disabled: %v", n, ct.Counts())
	}
	if src := getSource(t, ns, name); src.Status.LastDiscoveryTime != nil || src.Status.NextDiscoveryTime != nil {
		t.Fatalf("a disabled source discovered or scheduled a discovery: %+v", src.Status)
	} else {
		wantKstatus(t, src, kstatus.CurrentStatus)
	}

	start := clk.Now()
	src := getSource(t, ns, name)
	patch := client.MergeFrom(src.DeepCopy())
	src.Spec.Disabled = false
	if err := k8s.Patch(context.Background(), src, patch); err != nil {
		t.Fatal(err)
	}
	src = waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Ingested: 1})
	if src.Status.State != "Enabled" {
		t.Errorf("state %q after re-enabling", src.Status.State)
	}
}

// Scenario 6: a refresh runs at once when the cooldown allows; a second within the
// cooldown is throttled, says when it will run, and runs then.
func TestRefreshAnnotationAndCooldown(t *testing.T) {
	const ns, name, bkt = "refresh", "manual", "refresh"
	createBucket(t, bkt)
	put(t, bkt, "r/one.json", jsonArray(t, conversation("agent-6", "r-1", "2025-01-15T14:30:00Z", "x")))
	start := clk.Now()
	newSource(t, ns, name, bkt, "r/", nil)
	waitRun(t, ns, name, start)

	clk.Step(61 * time.Second) // past the default 60s cooldown, far from the 1h interval
	put(t, bkt, "r/two.json", jsonArray(t, conversation("agent-6", "r-2", "2025-01-15T14:30:00Z", "x")))
	first := clk.Now()
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "1")
	src := waitRun(t, ns, name, first)
	if src.Status.LastHandledRefresh != "1" {
		t.Fatalf("lastHandledRefresh = %q, want 1", src.Status.LastHandledRefresh)
	}
	wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 2})

	clk.Step(10 * time.Second)
	put(t, bkt, "r/three.json", jsonArray(t, conversation("agent-6", "r-3", "2025-01-15T14:30:00Z", "x")))
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "2")
	runsAt := first.Add(time.Minute).UTC().Format(time.RFC3339)
	eventually(t, "a throttled refresh", func() error {
		src = getSource(t, ns, name)
		c := condition(src, v1.ConditionReconciling)
		if c.Reason != v1.ReasonRefreshThrottled || !strings.Contains(c.Message, "runs at "+runsAt) {
			return fmt.Errorf("Reconciling = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	waitEvent(t, ns, name, v1.ReasonRefreshThrottled, "it runs at "+runsAt)
	wantKstatus(t, src, kstatus.InProgressStatus)
	if src.Status.LastHandledRefresh != "1" || src.Status.Files.Discovered != 2 {
		t.Fatalf("the throttled refresh ran early: %+v", src.Status)
	}

	clk.Step(51 * time.Second) // the cooldown has passed
	second := clk.Now()
	poke(t, ns, name)
	src = waitRun(t, ns, name, second)
	if src.Status.LastHandledRefresh != "2" {
		t.Fatalf("lastHandledRefresh = %q, want 2", src.Status.LastHandledRefresh)
	}
	wantFiles(t, src, v1.FileCounts{Discovered: 3, Ingested: 3})
}

// Scenario 8: a file over maxFileSize fails without being downloaded.
func TestFileOverMaxSizeIsNeverDownloaded(t *testing.T) {
	const ns, name, bkt = "toolarge", "big", "toolarge"
	createBucket(t, bkt)
	createQuota(t, ns, "small-files", v1.IngestionQuotaSpec{DailyLimit: quantity("1M"), MaxFileSize: quantity("1k")})
	var many []map[string]any
	for i := range 10 {
		many = append(many, conversation("agent-8", convID("big", i), "2025-01-15T14:30:00Z", "padding padding padding"))
	}
	put(t, bkt, "b/big.json", jsonArray(t, many...))
	put(t, bkt, "b/small.json", jsonArray(t, conversation("agent-8", "small", "2025-01-15T14:30:00Z", "x")))
	ct := counts.of(bkt)
	start := clk.Now()
	newSource(t, ns, name, bkt, "b/", func(s *v1.S3SourceSpec) { s.QuotaRef = "small-files" })
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 1, Failed: 1})
	wantRequests(t, ct, 1, 1)
	if len(src.Status.RecentFileErrors) != 1 || src.Status.RecentFileErrors[0].Reason != ingest.ReasonFileTooLarge ||
		!strings.Contains(src.Status.RecentFileErrors[0].Message, "larger than the 1 kB maximum file size of IngestionQuota toolarge/small-files") {
		t.Fatalf("recentFileErrors = %+v", src.Status.RecentFileErrors)
	}
}

// Scenario 7: files that do not fit in today's quota are deferred and ingested after the
// reset.
func TestQuotaDefersAndResumesAfterReset(t *testing.T) {
	const ns, name, bkt = "quota", "limited", "quota"
	createBucket(t, bkt)
	var size int
	for i := range 3 {
		body := jsonArray(t, conversation("agent-7", convID("q", i), "2025-01-15T14:30:00Z", "same length"))
		size = len(body)
		put(t, bkt, fmt.Sprintf("q/file-%d.json", i), body)
	}
	limit := int64(2*size + size/2) // two files fit, the third does not
	createQuota(t, ns, "tight", v1.IngestionQuotaSpec{DailyLimit: resource.NewQuantity(limit, resource.DecimalSI), MaxFileSize: resource.NewQuantity(limit, resource.DecimalSI)})
	start := clk.Now()
	newSource(t, ns, name, bkt, "q/", func(s *v1.S3SourceSpec) { s.QuotaRef = "tight" })
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 3, Ingested: 2, Deferred: 1})
	// Half a file's bytes are left: QuotaAvailable stays True, as on the IngestionQuota, and
	// says the deferred file did not fit.
	if c := condition(src, v1.ConditionQuotaAvailable); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "1 file(s) deferred by the last discovery did not fit") {
		t.Errorf("QuotaAvailable = %s/%s %q, want True and the deferred file named", c.Status, c.Reason, c.Message)
	}
	waitEvent(t, ns, name, v1.ReasonQuotaExceeded, "1 file(s) deferred")
	deferred, err := store.ListFiles(context.Background(), ns+"/"+name, storeapi.FileDeferred, 10)
	if err != nil || len(deferred) != 1 || deferred[0].Reason != ingest.ReasonQuotaExceeded {
		t.Fatalf("deferred ledger rows %+v (err %v)", deferred, err)
	}
	eventually(t, "quota usage", func() error {
		q := getQuota(t, ns, "tight")
		if q.Status.UsedBytes != int64(2*size) || q.Status.UsedBytes > limit {
			return fmt.Errorf("used %d, want %d (limit %d)", q.Status.UsedBytes, 2*size, limit)
		}
		return nil
	})

	// The next day (in the quota's UTC window) the deferred file is ingested.
	y, m, d := clk.Now().UTC().Date()
	clk.SetTime(time.Date(y, m, d+1, 0, 0, 30, 0, time.UTC))
	reset := clk.Now()
	poke(t, ns, name)
	src = waitRun(t, ns, name, reset)
	wantFiles(t, src, v1.FileCounts{Discovered: 3, Ingested: 3})
	if src.Status.BytesIngestedToday != int64(size) {
		t.Errorf("bytesIngestedToday = %d after the reset, want %d", src.Status.BytesIngestedToday, size)
	}
	eventually(t, "the new window", func() error {
		q := getQuota(t, ns, "tight")
		if q.Status.Window != reset.Format(time.DateOnly) || q.Status.UsedBytes != int64(size) {
			return fmt.Errorf("window %s used %d", q.Status.Window, q.Status.UsedBytes)
		}
		return nil
	})
}

// Scenario 9: wrong credentials, a missing bucket, a policy denying the prefix and a
// missing Secret each give a clear reason and message, and retries back off.
func TestBucketErrorsHaveReasonsAndBackOff(t *testing.T) {
	const ns = "errors"
	createBucket(t, "errors")
	put(t, "errors", "private/x.json", jsonArray(t, conversation("agent-1", "e-1", "2025-01-15T14:30:00Z", "x")))
	tests := []struct {
		name, reason, message string
		retried               bool // a discovery ran and failed (not a Secret missing before it)
		mutate                func(t *testing.T, s *v1.S3SourceSpec)
	}{
		{"wrong-secret", bucket.ReasonInvalidCredentials, "", true, func(t *testing.T, s *v1.S3SourceSpec) {
			sec := s.Credentials.SecretRef.Name
			secret := getSecret(t, ns, sec)
			secret.Data[controllers.SecretSecretAccessKey] = []byte("wrong-secret-key")
			if err := k8s.Update(context.Background(), secret); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing-bucket", bucket.ReasonNoSuchBucket, "does-not-exist", true, func(t *testing.T, s *v1.S3SourceSpec) {
			// A user allowed on the missing bucket, so S3 answers NoSuchBucket, not AccessDenied.
			ak, sk, err := s3.CreateReadOnlyUser("does-not-exist", "public/")
			if err != nil {
				t.Fatal(err)
			}
			secret := getSecret(t, ns, s.Credentials.SecretRef.Name)
			secret.Data[controllers.SecretAccessKeyID], secret.Data[controllers.SecretSecretAccessKey] = []byte(ak), []byte(sk)
			if err := k8s.Update(context.Background(), secret); err != nil {
				t.Fatal(err)
			}
			s.Bucket = "does-not-exist"
		}},
		{"denied-prefix", bucket.ReasonAccessDenied, "bucket policy", true, func(_ *testing.T, s *v1.S3SourceSpec) { s.Prefix = "private/" }},
		{"missing-secret", v1.ReasonSecretNotFound, "errors/nowhere", false, func(_ *testing.T, s *v1.S3SourceSpec) {
			s.Credentials.SecretRef.Name = "nowhere"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The users' policies allow public/ only; each case breaks one thing.
			src := newSourceWith(t, ns, tt.name, "errors", "public/", tt.mutate)
			var got *v1.S3Source
			eventually(t, "Ready=False/"+tt.reason, func() error {
				got = getSource(t, ns, src.Name)
				c := condition(got, v1.ConditionReady)
				if c.Status != metav1.ConditionFalse || c.Reason != tt.reason || !strings.Contains(c.Message, tt.message) {
					return fmt.Errorf("Ready = %s/%s %q", c.Status, c.Reason, c.Message)
				}
				return nil
			})
			if c := condition(got, v1.ConditionStalled); c.Status != metav1.ConditionTrue || c.Reason != tt.reason {
				t.Errorf("Stalled = %s/%s, want True/%s: only a change by the user helps", c.Status, c.Reason, tt.reason)
			}
			wantKstatus(t, got, kstatus.FailedStatus)
			if !tt.retried {
				return
			}
			// Still retried on a backoff, in case the fix happens outside the cluster.
			if got.Status.ConsecutiveFailures != 1 || got.Status.NextDiscoveryTime.Sub(got.Status.LastDiscoveryTime.Time) != 30*time.Second {
				t.Fatalf("after one failure: consecutiveFailures %d, next in %v; want 1 and 30s",
					got.Status.ConsecutiveFailures, got.Status.NextDiscoveryTime.Sub(got.Status.LastDiscoveryTime.Time))
			}
			if c := condition(got, v1.ConditionStalled); !strings.Contains(c.Message, "retries at "+got.Status.NextDiscoveryTime.UTC().Format(time.RFC3339)) {
				t.Errorf("Stalled message %q does not say when it retries", c.Message)
			}
			waitEvent(t, ns, src.Name, "DiscoveryFailed", tt.message)
		})
	}
	// The operator does not watch Secrets: the fixed Secret is picked up by the next retry,
	// 30s after one failure and never more than credentialsRetryCap later. The poke stands
	// in for the requeue timer once the fake clock reached the retry.
	fixed := getSecret(t, ns, "wrong-secret-keys")
	ak, sk, err := s3.CreateReadOnlyUser("errors", "public/")
	if err != nil {
		t.Fatal(err)
	}
	fixed.Data[controllers.SecretAccessKeyID], fixed.Data[controllers.SecretSecretAccessKey] = []byte(ak), []byte(sk+"\n")
	if err := k8s.Update(context.Background(), fixed); err != nil {
		t.Fatal(err)
	}
	clk.Step(30 * time.Second)
	poke(t, ns, "wrong-secret")
	eventually(t, "the fixed Secret to be used", func() error {
		got := getSource(t, ns, "wrong-secret")
		if c := condition(got, v1.ConditionReady); c.Status != metav1.ConditionTrue || c.Reason != v1.ReasonNoObjectsFound {
			return fmt.Errorf("Ready = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		if c := condition(got, v1.ConditionStalled); c.Status != "Absent" {
			return fmt.Errorf("still stalled: %s", c.Message)
		}
		return nil
	})

	// Backoff doubles: the second failure schedules the retry 60s later.
	clk.Step(time.Second)
	again := clk.Now()
	poke(t, ns, "missing-bucket")
	eventually(t, "a second failure", func() error {
		got := getSource(t, ns, "missing-bucket")
		if got.Status.LastDiscoveryTime.Before(&metav1.Time{Time: again}) || got.Status.ConsecutiveFailures != 2 {
			return fmt.Errorf("consecutiveFailures %d at %v", got.Status.ConsecutiveFailures, got.Status.LastDiscoveryTime)
		}
		if d := got.Status.NextDiscoveryTime.Sub(got.Status.LastDiscoveryTime.Time); d != time.Minute {
			return fmt.Errorf("next retry in %v, want 1m", d)
		}
		return nil
	})
}

// Scenario 10: deleting a source removes its ledger and finalizer; S3 and the imported
// conversations are untouched.
func TestDeleteRemovesLedgerOnly(t *testing.T) {
	const ns, name, bkt = "deletion", "gone", "deletion"
	createBucket(t, bkt)
	put(t, bkt, "x/one.json", jsonArray(t, conversation("agent-10", "del-1", "2025-01-15T14:30:00Z", "x")))
	put(t, bkt, "x/two.jsonl", jsonLines(t, conversation("agent-10", "del-2", "2025-01-15T14:30:00Z", "x")))
	start := clk.Now()
	src := newSource(t, ns, name, bkt, "x/", nil)
	waitRun(t, ns, name, start)
	if rows, _ := store.ListFiles(context.Background(), ns+"/"+name, "", 10); len(rows) != 2 {
		t.Fatalf("ledger rows before delete: %d, want 2", len(rows))
	}
	if err := k8s.Delete(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the source to go", func() error {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(src), &v1.S3Source{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
	if rows, err := store.ListFiles(context.Background(), ns+"/"+name, "", 10); err != nil || len(rows) != 0 {
		t.Fatalf("ledger rows after delete: %d (err %v), want 0", len(rows), err)
	}
	keys, err := s3.ListKeys(bkt, "x/")
	if err != nil || len(keys) != 2 {
		t.Fatalf("S3 objects after delete: %v (err %v), want both untouched", keys, err)
	}
	storedContent(t, ns, "agent-10", "del-1")
	storedContent(t, ns, "agent-10", "del-2")

	// Adding the same bucket again works, and re-ingestion changes nothing.
	again := clk.Now()
	newSourceWith(t, ns, name, bkt, "x/", func(t *testing.T, s *v1.S3SourceSpec) {})
	src2 := waitRun(t, ns, name, again)
	wantFiles(t, src2, v1.FileCounts{Discovered: 2, Ingested: 2})
	if src2.Status.ConversationsIngested != 0 {
		t.Errorf("re-adding the source stored %d conversations again, want 0 (all unchanged)", src2.Status.ConversationsIngested)
	}
}

// A reconcile with nothing to do writes nothing.
func TestNoOpReconcileWritesNothing(t *testing.T) {
	const ns, name, bkt = "noop", "quiet", "noop"
	createBucket(t, bkt)
	put(t, bkt, "n/one.json", jsonArray(t, conversation("agent-11", "n-1", "2025-01-15T14:30:00Z", "x")))
	start := clk.Now()
	newSource(t, ns, name, bkt, "n/", nil)
	waitRun(t, ns, name, start)
	time.Sleep(200 * time.Millisecond) // let the run's own follow-up reconciles settle
	before := statusWrites.of(ns, name)
	reconciles := sourceReads.of(ns, name)
	poke(t, ns, name)
	eventually(t, "a reconcile after the poke", func() error {
		if sourceReads.of(ns, name) <= reconciles {
			return fmt.Errorf("no reconcile yet")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if after := statusWrites.of(ns, name); after != before {
		t.Fatalf("a no-op reconcile wrote status %d time(s)", after-before)
	}
}

func getSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// newSourceWith is newSource with a mutation that may touch the cluster (e.g. the Secret).
func newSourceWith(t *testing.T, ns, name, bkt, prefix string, mutate func(*testing.T, *v1.S3SourceSpec)) *v1.S3Source {
	t.Helper()
	var spec v1.S3SourceSpec
	src := newSource(t, ns, name, bkt, prefix, func(s *v1.S3SourceSpec) {
		s.Disabled = true // hold it until the mutation is in place
	})
	if mutate != nil {
		spec = src.Spec
		mutate(t, &spec)
	}
	spec.Disabled = false
	cur := getSource(t, ns, name)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec = spec
	cur.Spec.Interval, cur.Spec.Timeout = ptr.To(metav1.Duration{Duration: time.Hour}), ptr.To(metav1.Duration{Duration: time.Minute})
	if err := k8s.Patch(context.Background(), cur, patch); err != nil {
		t.Fatal(err)
	}
	return cur
}
