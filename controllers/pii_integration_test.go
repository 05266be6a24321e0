package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/ingest"

	storeapi "github.com/avon-ai/data-import-operator/internal/store"
)

// The PII values the scenario uploads; none may appear in status, events or errors.
const (
	piiPhone = "+44 20 7946 0958"
	piiEmail = "jane.doe@example.com"
	piiCard  = "4111 1111 1111 1111"
)

// piiScenario uploads four files to bkt/pii/ and checks, through MinIO and st, that a
// Redact validator's record is stored redacted, a Flag validator's unchanged and counted
// in status.pii, and that a Reject validator's file and a record contradicting its
// missing_info fail with located errors that do not echo the data.
func piiScenario(t *testing.T, st storeapi.Store, ns, name, bkt string) {
	t.Helper()
	// The suite-end leak scan fails the suite if any status, event, log line or metric
	// carries them.
	rememberSecret("PII phone number", piiPhone)
	rememberSecret("PII e-mail address", piiEmail)
	rememberSecret("PII card number", piiCard)
	createBucket(t, bkt)
	redacted := conversation("pii-agent", "pii-redact", "2025-01-15T14:30:00Z", "call me on "+piiPhone+" after 5pm")
	flagged := conversation("pii-agent", "pii-flag", "2025-01-15T14:30:00Z", "thanks")
	flagged["user_data"].(map[string]any)["contact"] = map[string]any{"email": piiEmail}
	rejected := conversation("pii-agent", "pii-reject", "2025-01-15T14:30:00Z", "my card is "+piiCard)
	withheld := conversation("pii-agent", "pii-withheld", "2025-01-15T14:30:00Z", "hello")
	withheld["missing_info"] = map[string]any{"reason": "customer_privacy_preference", "fields": []any{"phone_number"}}
	withheld["user_data"].(map[string]any)["phone_number"] = piiPhone
	put(t, bkt, "pii/redact.jsonl", jsonLines(t, redacted))
	put(t, bkt, "pii/flag.json", jsonArray(t, flagged))
	put(t, bkt, "pii/reject.jsonl", jsonLines(t, rejected))
	put(t, bkt, "pii/withheld.json", jsonArray(t, conversation("pii-agent", "pii-ok", "2025-01-15T14:30:00Z", "fine"), withheld))
	start := clk.Now()
	newSource(t, ns, name, bkt, "pii/", func(s *v1.S3SourceSpec) {
		s.Validators = []v1.Validator{
			{Type: v1.ValidatorEmail, Action: v1.ValidatorFlag},
			{Type: v1.ValidatorPhoneNumber, Action: v1.ValidatorRedact},
			{Type: v1.ValidatorPaymentCard, Action: v1.ValidatorReject},
		}
	})
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 4, Ingested: 2, Failed: 2})

	ctx := context.Background()
	get := func(id string) string {
		c, ok, err := st.GetConversation(ctx, ns, "pii-agent", id)
		if err != nil || !ok {
			t.Fatalf("%s not stored (found=%v, err=%v)", id, ok, err)
		}
		return string(c.Raw)
	}
	if raw := get("pii-redact"); !strings.Contains(raw, `"content":"call me on [REDACTED:phone] after 5pm"`) || strings.Contains(raw, "7946") {
		t.Errorf("redacted record stored as %s", raw)
	}
	if raw := get("pii-flag"); !strings.Contains(raw, piiEmail) {
		t.Errorf("flagged record stored as %s, want it unchanged", raw)
	}
	for _, id := range []string{"pii-reject", "pii-withheld", "pii-ok"} {
		if _, ok, _ := st.GetConversation(ctx, ns, "pii-agent", id); ok {
			t.Errorf("%s from a failed file was stored (policy SkipFile)", id)
		}
	}

	wantPII := []v1.PIICount{
		{Validator: "email", Action: v1.ValidatorFlag, Records: 1, Matches: 1},
		{Validator: "phone", Action: v1.ValidatorRedact, Records: 1, Matches: 1},
		{Validator: "card", Action: v1.ValidatorReject, Records: 1, Matches: 1},
	}
	if !slices.Equal(src.Status.PII, wantPII) {
		t.Errorf("status.pii = %+v, want %+v", src.Status.PII, wantPII)
	}
	byKey := map[string]v1.FileError{}
	for _, e := range src.Status.RecentFileErrors {
		byKey[e.Key] = e
	}
	for key, want := range map[string]string{
		"pii/reject.jsonl":  "pii/reject.jsonl:1: messages[0].content: matched validator card (PaymentCard, action Reject) 1 time(s); the matched text is not shown",
		"pii/withheld.json": "pii/withheld.json[1]: user_data.phone_number: listed in missing_info.fields but present",
	} {
		e, ok := byKey[key]
		if !ok || e.Reason != ingest.ReasonInvalidRecords || !strings.Contains(e.Message, want) {
			t.Errorf("recentFileErrors[%s] = %+v, want reason %s and %q", key, e, ingest.ReasonInvalidRecords, want)
		}
	}
	if c := condition(src, v1.ConditionReady); !strings.Contains(c.Message, "PII: email flagged in 1 record(s) (1 match(es)); phone redacted in 1 record(s) (1 match(es)); card rejected in 1 record(s) (1 match(es))") {
		t.Errorf("Ready message %q does not summarize the run's PII", c.Message)
	}
	if c := condition(src, v1.ConditionFilesHealthy); c.Status != metav1.ConditionFalse {
		t.Errorf("FilesHealthy = %s, want False", c.Status)
	}
	waitEvent(t, ns, name, v1.ReasonPIIRedacted, "1 file(s) stored with personal data redacted (phone: 1 record(s))")
	waitEvent(t, ns, name, v1.ReasonPIIFlagged, "1 file(s) stored with personal data flagged (email: 1 record(s))")
	eventually(t, "PII metrics", func() error {
		for _, c := range wantPII {
			if got := testutil.ToFloat64(metrics.PIIMatches.WithLabelValues(ns, name, c.Validator, string(c.Action))); got != float64(c.Matches) {
				return fmt.Errorf("dataimport_pii_matches_total{validator=%q,action=%q} = %v, want %d", c.Validator, c.Action, got, c.Matches)
			}
		}
		return nil
	})
	// Nothing the operator reports echoes the personal data.
	row, _, _ := st.LookupFile(ctx, ns+"/"+name, "pii/redact.jsonl")
	reported := []string{row.Message}
	for _, e := range src.Status.RecentFileErrors {
		reported = append(reported, e.Message)
	}
	for _, c := range src.Status.Conditions {
		reported = append(reported, c.Message)
	}
	for _, reason := range []string{v1.ReasonPIIRedacted, v1.ReasonPIIFlagged, "FilesFailed"} {
		for _, e := range events(t, ns, name, reason) {
			reported = append(reported, e.Note)
		}
	}
	for _, r := range reported {
		for _, secret := range []string{"7946", piiEmail, "4111"} {
			if strings.Contains(r, secret) {
				t.Errorf("reported text echoes personal data: %s", r)
			}
		}
	}
	if !strings.Contains(row.Message, "PII: phone redacted in 1 record(s) (1 match(es))") {
		t.Errorf("ledger message %q does not count the redaction", row.Message)
	}
}

func TestPIIValidatorsOnSQLite(t *testing.T) {
	piiScenario(t, store, "policy", "pii-sqlite", "pii-sqlite")
}

func TestPIIValidatorsOnPostgreSQL(t *testing.T) {
	const ns = "postgres"
	piiScenario(t, postgresManager(t, ns), ns, "pii-postgres", "pii-postgres")
}

// A validator the CRD cannot check (a region libphonenumber does not know) stalls the
// source with reason InvalidValidators, before any S3 request.
func TestPIIInvalidValidatorStalls(t *testing.T) {
	const ns, name, bkt = "policy", "pii-bad-region", "pii-bad-region"
	createBucket(t, bkt)
	ct := counts.of(bkt)
	newSource(t, ns, name, bkt, "x/", func(s *v1.S3SourceSpec) {
		s.Validators = []v1.Validator{{Type: v1.ValidatorPhoneNumber, Regions: []string{"ZZ"}}}
	})
	eventually(t, "Stalled=True/InvalidValidators", func() error {
		c := condition(getSource(t, ns, name), v1.ConditionStalled)
		if c.Status != metav1.ConditionTrue || c.Reason != v1.ReasonInvalidValidators {
			return fmt.Errorf("Stalled = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		if !strings.Contains(c.Message, `spec.validators[0] (phone): region "ZZ"`) {
			return fmt.Errorf("message %q does not name the validator and region", c.Message)
		}
		return nil
	})
	wantRequests(t, ct, 0, 0)
}
