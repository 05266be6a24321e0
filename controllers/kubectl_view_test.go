package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
)

// wideRow is the row `kubectl get s3source NAME -o wide` prints, as the API server's Table
// conversion of the CRD's printer columns gives it: column name to cell.
func wideRow(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSuffix(env.Config.Host, "/")
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	url := fmt.Sprintf("%s/apis/%s/namespaces/%s/s3sources/%s", host, v1.GroupVersion.String(), ns, name)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("table: %v (%d rows) %s", err, len(table.Rows), body)
	}
	row := map[string]string{}
	for i, col := range table.ColumnDefinitions {
		row[col.Name] = fmt.Sprint(table.Rows[0].Cells[i])
	}
	return row
}

// Issue #9: `kubectl get s3sources -o wide` stays readable: a short Status phrase, counts 0
// rather than blank before the first listing, STATE Stalled (not Enabled) for a stalled
// source, and one Warning event when a source stalls, not one per re-check or retry.
func TestKubectlWideIsReadable(t *testing.T) {
	const ns, bkt = "trig-kubectl", "trig-kubectl"
	ownManager(t, ns)
	createBucket(t, bkt)
	put(t, bkt, "public/one.json", jsonArray(t, conversation("agent-k", "kv-1", "2025-01-15T14:30:00Z", "x")))

	// A step stall: the Secret is missing; the suite re-checks it every second.
	newSourceWith(t, ns, "no-secret", bkt, "public/", func(_ *testing.T, s *v1.S3SourceSpec) { s.Credentials.SecretRef.Name = "nowhere" })
	waitReady(t, ns, "no-secret", metav1.ConditionFalse, v1.ReasonSecretNotFound)
	time.Sleep(3 * time.Second) // three re-checks
	if n := len(events(t, ns, "no-secret", v1.ReasonSourceStalled)); n != 1 {
		t.Errorf("%d SourceStalled events after three re-checks, want 1", n)
	}
	row := wideRow(t, ns, "no-secret")
	if row["State"] != v1.StateStalled || row["Status"] != "Stalled: SecretNotFound" || row["Ingested"] != "0" || row["Failed"] != "0" {
		t.Errorf("kubectl -o wide row %v", row)
	}

	// A run that stalls (the prefix is denied) and is retried on its backoff: one event.
	newSourceWith(t, ns, "denied", bkt, "public/", func(_ *testing.T, s *v1.S3SourceSpec) { s.Prefix = "private/" })
	waitReady(t, ns, "denied", metav1.ConditionFalse, bucket.ReasonAccessDenied)
	clk.Step(31 * time.Second)
	at := clk.Now()
	poke(t, ns, "denied")
	eventually(t, "the retry to fail too", func() error {
		src := getSource(t, ns, "denied")
		if src.Status.ConsecutiveFailures != 2 || src.Status.LastDiscoveryTime.Time.Before(at) {
			return fmt.Errorf("failures %d at %v", src.Status.ConsecutiveFailures, src.Status.LastDiscoveryTime)
		}
		return nil
	})
	src := getSource(t, ns, "denied")
	if src.Status.LastDiscoveryReason != v1.TriggerRetry {
		t.Errorf("lastDiscoveryReason %q, want %q", src.Status.LastDiscoveryReason, v1.TriggerRetry)
	}
	if n := len(events(t, ns, "denied", "DiscoveryFailed")); n != 1 {
		t.Errorf("%d DiscoveryFailed events for one stall retried once, want 1", n)
	}
	// The hint names what the README's bucket-policy template puts in its s3:prefix
	// condition for this prefix.
	wantCondition := readmePolicyPrefix(t, "private/")
	if msg := condition(src, v1.ConditionReady).Message; !strings.Contains(msg, "s3:prefix") || !strings.Contains(msg, `"`+wantCondition+`"`) {
		t.Errorf("AccessDenied hint %q does not name the README policy's s3:prefix value %q", msg, wantCondition)
	}
	row = wideRow(t, ns, "denied")
	if row["State"] != v1.StateStalled || row["Status"] != "Stalled: AccessDenied" {
		t.Errorf("kubectl -o wide row %v", row)
	}

	// A healthy source: a short phrase, not Ready's long message.
	start := clk.Now()
	newSource(t, ns, "fine", bkt, "public/", nil)
	waitRun(t, ns, "fine", start)
	if row = wideRow(t, ns, "fine"); row["State"] != v1.StateEnabled || row["Status"] != "1/1 ingested" || row["Ingested"] != "1" {
		t.Errorf("kubectl -o wide row %v", row)
	}
}

// readmePolicyPrefix is the s3:prefix value the README's bucket-policy template asks for,
// for a source whose spec.prefix is prefix ("conversations/" gives "conversations/*").
func readmePolicyPrefix(t *testing.T, prefix string) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"s3:prefix": \["([^"]+)"\]`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no bucket policy with an s3:prefix condition")
	}
	return strings.ReplaceAll(string(m[1]), "<YOUR_PREFIX>/", prefix)
}
