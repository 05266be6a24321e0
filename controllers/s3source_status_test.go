package controllers

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

type wantCondition struct {
	status metav1.ConditionStatus
	reason string
}

// TestComputeSourceStatus covers every state of the one function that decides status.
// Conditions are compared by status and reason, ignoring transition times.
func TestComputeSourceStatus(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)
	quota := resolvedQuota{Capped: quota.Capped{Quota: quota.Quota{Key: "ns/default", DailyLimit: 500_000_000, MaxFileSize: 50_000_000, RefreshCooldown: time.Minute, Location: time.UTC}}}
	ok := &discovery.Result{Started: now.Add(-time.Second), Finished: now, Listed: 5, Ingested: 4, Ignored: 1}
	withFailed := &discovery.Result{Finished: now, Listed: 3, Ingested: 1, Failed: 2,
		RecentErrors: []store.FileRecord{{Key: "b.json", Reason: ingest.ReasonInvalidRecords, Message: "b.json:2: agent_id: missing", UpdatedAt: now}}}
	deferred := &discovery.Result{Finished: now, Listed: 3, Ingested: 2, Deferred: 1}
	empty := &discovery.Result{Finished: now}
	denied := &discovery.Result{Finished: now, Err: &bucket.Error{Reason: bucket.ReasonAccessDenied, Message: "s3:ListBucket on s3://b/p was denied: check the bucket policy"}}

	tests := []struct {
		name   string
		spec   func(*v1.S3SourceSpec)
		prev   v1.S3SourceStatus
		scope  func(*sourceScope)
		want   map[string]wantCondition
		absent []string
		check  func(*testing.T, v1.S3SourceStatus)
	}{
		{
			name:   "disabled",
			spec:   func(s *v1.S3SourceSpec) { s.Disabled = true },
			prev:   v1.S3SourceStatus{NextDiscoveryTime: &metav1.Time{Time: now}},
			want:   map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonDisabled}},
			absent: []string{v1.ConditionReconciling, v1.ConditionStalled},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.State != "Disabled" || st.NextDiscoveryTime != nil || st.ObservedGeneration != 3 {
					t.Errorf("state %q next %v observedGeneration %d", st.State, st.NextDiscoveryTime, st.ObservedGeneration)
				}
			},
		},
		{
			name:  "first run started",
			scope: func(s *sourceScope) { s.running, s.started = true, true },
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionUnknown, v1.ReasonProgressing},
				v1.ConditionReconciling: {metav1.ConditionTrue, v1.ReasonDiscoveryRunning}, v1.ConditionQuotaAvailable: {metav1.ConditionTrue, v1.ReasonQuotaAvailable}},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.ObservedGeneration != 3 || st.State != "Enabled" {
					t.Errorf("observedGeneration %d state %q", st.ObservedGeneration, st.State)
				}
			},
		},
		{
			name:  "run succeeded",
			prev:  v1.S3SourceStatus{ConversationsIngested: 10, ConsecutiveFailures: 2},
			scope: func(s *sourceScope) { s.result = ok },
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonSucceeded},
				v1.ConditionFilesHealthy: {metav1.ConditionTrue, v1.ReasonAllFilesIngested}},
			absent: []string{v1.ConditionReconciling},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if *st.Files != (v1.FileCounts{Discovered: 5, Ingested: 4, Ignored: 1}) || st.ConsecutiveFailures != 0 {
					t.Errorf("files %+v failures %d", st.Files, st.ConsecutiveFailures)
				}
				if !st.LastDiscoveryTime.Time.Equal(now) || st.NextDiscoveryTime.Sub(now) < time.Hour || st.NextDiscoveryTime.Sub(now) >= time.Hour+time.Minute {
					t.Errorf("last %v next %v", st.LastDiscoveryTime, st.NextDiscoveryTime)
				}
				if st.ObservedGeneration != 2 {
					t.Errorf("folding a run must not claim the new generation was acted on: %d", st.ObservedGeneration)
				}
			},
		},
		{
			name:  "failed files",
			scope: func(s *sourceScope) { s.result = withFailed },
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonSucceeded},
				v1.ConditionFilesHealthy: {metav1.ConditionFalse, v1.ReasonFilesFailed}},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if len(st.RecentFileErrors) != 1 || st.RecentFileErrors[0].Key != "b.json" {
					t.Errorf("recentFileErrors %+v", st.RecentFileErrors)
				}
			},
		},
		{
			name:  "deferred by quota",
			scope: func(s *sourceScope) { s.result = deferred; s.usedToday = 500_000_000 },
			want:  map[string]wantCondition{v1.ConditionQuotaAvailable: {metav1.ConditionFalse, v1.ReasonQuotaExceeded}},
		},
		{
			name:  "deferred, but bytes are left: QuotaAvailable agrees with the quota",
			scope: func(s *sourceScope) { s.result = deferred; s.usedToday = 400_000_000 },
			want:  map[string]wantCondition{v1.ConditionQuotaAvailable: {metav1.ConditionTrue, v1.ReasonQuotaAvailable}},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if c := findCondition(st.Conditions, v1.ConditionQuotaAvailable); !strings.Contains(c.Message, "1 file(s) deferred by the last discovery did not fit") {
					t.Errorf("QuotaAvailable message %q", c.Message)
				}
			},
		},
		{
			name:  "missing quota uses defaults",
			scope: func(s *sourceScope) { s.result = ok; s.quota.Missing = true },
			want:  map[string]wantCondition{v1.ConditionQuotaAvailable: {metav1.ConditionTrue, v1.ReasonDefaultQuota}},
		},
		{
			name:  "no objects under the prefix",
			scope: func(s *sourceScope) { s.result = empty },
			want:  map[string]wantCondition{v1.ConditionReady: {metav1.ConditionTrue, v1.ReasonNoObjectsFound}},
		},
		{
			name:  "listing denied: stalled, still retried with backoff",
			prev:  v1.S3SourceStatus{ConsecutiveFailures: 1},
			scope: func(s *sourceScope) { s.result = denied },
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionFalse, bucket.ReasonAccessDenied},
				v1.ConditionStalled: {metav1.ConditionTrue, bucket.ReasonAccessDenied}},
			absent: []string{v1.ConditionReconciling},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.ConsecutiveFailures != 2 || st.NextDiscoveryTime.Sub(now) != time.Minute {
					t.Errorf("failures %d, next in %v; want 2 and 1m", st.ConsecutiveFailures, st.NextDiscoveryTime.Sub(now))
				}
			},
		},
		{
			name: "address refused at dial time reads like an endpoint refused before the run",
			scope: func(s *sourceScope) {
				s.result = &discovery.Result{Finished: now, Err: &bucket.Error{Reason: bucket.ReasonEndpointNotAllowed, Message: bucket.EndpointNotAllowedMessage}}
			},
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionFalse, v1.ReasonEndpointNotAllowed},
				v1.ConditionStalled: {metav1.ConditionTrue, v1.ReasonEndpointNotAllowed}},
			absent: []string{v1.ConditionReconciling},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				for _, typ := range []string{v1.ConditionReady, v1.ConditionStalled} {
					if c := findCondition(st.Conditions, typ); c.Message != bucket.EndpointNotAllowedMessage {
						t.Errorf("%s message %q, want exactly the fixed one", typ, c.Message)
					}
				}
			},
		},
		{
			name: "missing secret stalls",
			scope: func(s *sourceScope) {
				s.failure = &stepFailure{reason: v1.ReasonSecretNotFound, message: "Secret ns/keys ...", stalled: true}
			},
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionFalse, v1.ReasonSecretNotFound},
				v1.ConditionStalled: {metav1.ConditionTrue, v1.ReasonSecretNotFound}},
			absent: []string{v1.ConditionReconciling},
		},
		{
			name: "operator identity not allowed stalls and clears the external ID",
			prev: v1.S3SourceStatus{ExternalID: "dataimport-old"},
			scope: func(s *sourceScope) {
				s.identity = &identity{}
				s.failure = &stepFailure{reason: v1.ReasonOperatorIdentityNotAllowed, message: "namespace ns may not ...", stalled: true}
			},
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionFalse, v1.ReasonOperatorIdentityNotAllowed},
				v1.ConditionStalled: {metav1.ConditionTrue, v1.ReasonOperatorIdentityNotAllowed}},
			absent: []string{v1.ConditionReconciling},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.ExternalID != "" {
					t.Errorf("externalID %q kept for a refused identity", st.ExternalID)
				}
			},
		},
		{
			name: "external ID of the operator's identity",
			scope: func(s *sourceScope) {
				s.identity = &identity{externalID: "dataimport-uid"}
				s.running, s.started = true, true
			},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.ExternalID != "dataimport-uid" {
					t.Errorf("externalID %q, want dataimport-uid", st.ExternalID)
				}
			},
		},
		{
			name: "an earlier step failed: the external ID stays",
			prev: v1.S3SourceStatus{ExternalID: "dataimport-uid"},
			scope: func(s *sourceScope) {
				s.failure = &stepFailure{reason: v1.ReasonStoreError, message: "database is locked"}
			},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.ExternalID != "dataimport-uid" {
					t.Errorf("externalID %q, want the last known dataimport-uid", st.ExternalID)
				}
			},
		},
		{
			name:  "refresh throttled",
			prev:  v1.S3SourceStatus{LastDiscoveryTime: &metav1.Time{Time: now.Add(-10 * time.Second)}},
			scope: func(s *sourceScope) { s.refreshThrottled, s.refreshAt = "2", now.Add(50*time.Second) },
			want:  map[string]wantCondition{v1.ConditionReconciling: {metav1.ConditionTrue, v1.ReasonRefreshThrottled}},
		},
		{
			name: "store error keeps today's bytes",
			prev: v1.S3SourceStatus{BytesIngestedToday: 42},
			scope: func(s *sourceScope) {
				s.failure = &stepFailure{reason: v1.ReasonStoreError, message: "database is locked"}
			},
			want: map[string]wantCondition{v1.ConditionReady: {metav1.ConditionFalse, v1.ReasonStoreError}},
			check: func(t *testing.T, st v1.S3SourceStatus) {
				if st.BytesIngestedToday != 42 {
					t.Errorf("bytesIngestedToday %d, want the last known 42", st.BytesIngestedToday)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &v1.S3Source{Spec: v1.S3SourceSpec{Bucket: "b", Prefix: "p/"}}
			src.Generation, src.UID = 3, "uid-1"
			if tt.spec != nil {
				tt.spec(&src.Spec)
			}
			prev := tt.prev
			prev.ObservedGeneration = 2
			src.Status = prev
			s := &sourceScope{src: src, now: now, quota: quota, usageRead: true}
			if tt.scope != nil {
				tt.scope(s)
			}
			st := computeSourceStatus(s, prev)
			for typ, want := range tt.want {
				c := findCondition(st.Conditions, typ)
				if c == nil || c.Status != want.status || c.Reason != want.reason {
					t.Errorf("%s = %+v, want %s/%s", typ, c, want.status, want.reason)
				}
			}
			for _, typ := range tt.absent {
				if c := findCondition(st.Conditions, typ); c != nil {
					t.Errorf("%s present: %+v", typ, c)
				}
			}
			if tt.check != nil {
				tt.check(t, st)
			}
			// Computing again from the result changes nothing: no status write loop.
			s.result = nil
			s.started = false
			if again := computeSourceStatus(s, st); !equality.Semantic.DeepEqual(again, st) {
				t.Errorf("recomputing changed the status:\n%+v\nvs\n%+v", again, st)
			}
		})
	}
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func TestFailureBackoffDoublesUpToTheInterval(t *testing.T) {
	hour := &metav1.Duration{Duration: time.Hour}
	for failures, want := range map[int32]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 7: 32 * time.Minute, 8: time.Hour, 20: time.Hour} {
		if got := failureBackoff(hour, failures); got != want {
			t.Errorf("failureBackoff(1h, %d) = %v, want %v", failures, got, want)
		}
	}
}

func TestRetryBackoffIsCappedForTenantCredentials(t *testing.T) {
	hour := &metav1.Duration{Duration: time.Hour}
	secret := &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "keys"}}
	sa := &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "reader"}
	tests := []struct {
		name     string
		spec     v1.S3SourceSpec
		failures int32
		want     time.Duration
	}{
		{"operator identity backs off to the interval", v1.S3SourceSpec{Interval: hour}, 8, time.Hour},
		{"secret: first retry unchanged", v1.S3SourceSpec{Interval: hour, Credentials: secret}, 1, 30 * time.Second},
		{"secret: capped", v1.S3SourceSpec{Interval: hour, Credentials: secret}, 8, credentialsRetryCap},
		{"service account: capped", v1.S3SourceSpec{Interval: hour, Credentials: sa}, 20, credentialsRetryCap},
		{"CA Secret: capped", v1.S3SourceSpec{Interval: hour, CASecretRef: &v1.LocalObjectReference{Name: "ca"}}, 8, credentialsRetryCap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryBackoff(&v1.S3Source{Spec: tt.spec}, tt.failures); got != tt.want {
				t.Errorf("retryBackoff(%d failures) = %v, want %v", tt.failures, got, tt.want)
			}
		})
	}
}

func TestSessionNameFitsSTS(t *testing.T) {
	long := strings.Repeat("n", 63)
	tests := []struct{ ns, name, want string }{
		{"team-a", "conversations", "dataimport@team-a.conversations"},
		{long, long, ("dataimport@" + long + "." + long)[:64]},
	}
	for _, tt := range tests {
		src := &v1.S3Source{}
		src.Namespace, src.Name = tt.ns, tt.name
		if got := sessionName(src); got != tt.want || !regexp.MustCompile(`^[\w+=,.@-]{2,64}$`).MatchString(got) {
			t.Errorf("sessionName(%s/%s) = %q, want %q", tt.ns, tt.name, got, tt.want)
		}
	}
}

func TestJitterIsStableAndBounded(t *testing.T) {
	for _, uid := range []string{"a", "b", "c", "0b6f3c1e-1111-2222-3333-444455556666"} {
		j := Jitter(uid, time.Hour)
		if j < 0 || j >= time.Minute || j%time.Second != 0 || j != Jitter(uid, time.Hour) {
			t.Errorf("Jitter(%q, 1h) = %v: want stable whole seconds in [0, 1m)", uid, j)
		}
	}
}

// A successful run earns a Normal event only when it changed something; an hourly run that
// finds nothing new on a healthy source stays silent.
func TestRunChanged(t *testing.T) {
	readyWith := func(status metav1.ConditionStatus, reason string) *v1.S3SourceStatus {
		return &v1.S3SourceStatus{Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: status, Reason: reason}}}
	}
	healthy := readyWith(metav1.ConditionTrue, v1.ReasonSucceeded)
	nothing := &discovery.Result{Listed: 6, Ingested: 5, Ignored: 1, Unchanged: 6}
	tests := []struct {
		name   string
		res    *discovery.Result
		before *v1.S3SourceStatus
		want   bool
	}{
		{"nothing new on a healthy source", nothing, healthy, false},
		{"files downloaded", &discovery.Result{Listed: 6, Ingested: 6, Downloaded: 1}, healthy, true},
		{"a file failed", &discovery.Result{Listed: 6, Failed: 1, Downloaded: 1, NewlyFailed: 1}, healthy, true},
		{"files deferred", &discovery.Result{Listed: 6, Deferred: 2, NewlyDeferred: 2}, healthy, true},
		{"conversations updated", &discovery.Result{Listed: 6, Conversations: store.RecordCounts{Updated: 1}}, healthy, true},
		{"first success", nothing, &v1.S3SourceStatus{}, true},
		{"first discovery was running", nothing, readyWith(metav1.ConditionUnknown, v1.ReasonProgressing), true},
		{"recovered from a failure", nothing, readyWith(metav1.ConditionFalse, v1.ReasonAccessDenied), true},
		{"re-enabled", nothing, readyWith(metav1.ConditionTrue, v1.ReasonDisabled), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runChanged(tt.res, tt.before); got != tt.want {
				t.Errorf("runChanged = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSourceStateAndSummary: STATE and the -o wide Status column are short and say what
// matters; a stalled or failing source never reads Enabled.
func TestSourceStateAndSummary(t *testing.T) {
	cond := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason}
	}
	long := strings.Repeat("x", 200)
	tests := []struct {
		name         string
		disabled     bool
		st           v1.S3SourceStatus
		state, summa string
	}{
		{"disabled", true, v1.S3SourceStatus{}, v1.StateDisabled, "Disabled"},
		{"new", false, v1.S3SourceStatus{}, v1.StateEnabled, "Pending"},
		{"first run", false, v1.S3SourceStatus{LastDiscoveryReason: v1.TriggerFirstDiscovery, Conditions: []metav1.Condition{
			cond(v1.ConditionReady, metav1.ConditionUnknown, v1.ReasonProgressing), cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonDiscoveryRunning)}},
			v1.StateEnabled, "Discovering (first discovery)"},
		{"stalled", false, v1.S3SourceStatus{Conditions: []metav1.Condition{
			cond(v1.ConditionReady, metav1.ConditionFalse, bucket.ReasonAccessDenied), cond(v1.ConditionStalled, metav1.ConditionTrue, bucket.ReasonAccessDenied)}},
			v1.StateStalled, "Stalled: AccessDenied"},
		{"failing", false, v1.S3SourceStatus{Conditions: []metav1.Condition{
			cond(v1.ConditionReady, metav1.ConditionFalse, bucket.ReasonEndpointUnreachable), cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonProgressingWithRetry)}},
			v1.StateFailing, "Failing: EndpointUnreachable, retrying"},
		{"empty prefix", false, v1.S3SourceStatus{Files: &v1.FileCounts{}, Conditions: []metav1.Condition{cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonNoObjectsFound)}},
			v1.StateEnabled, "No objects found"},
		{"healthy", false, v1.S3SourceStatus{Files: &v1.FileCounts{Discovered: 7, Ingested: 4, Failed: 1, Deferred: 1, Ignored: 1},
			Conditions: []metav1.Condition{cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded), cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonRefreshThrottled)}},
			v1.StateEnabled, "4/6 ingested, 1 failed, 1 deferred, refresh waits"},
		{"bounded", false, v1.S3SourceStatus{LastDiscoveryReason: long, Conditions: []metav1.Condition{cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonDiscoveryRunning)}},
			v1.StateEnabled, "Discovering (" + long[:maxSummary-len("Discovering (")-1] + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sourceState(tt.disabled, tt.st.Conditions); got != tt.state {
				t.Errorf("state %q, want %q", got, tt.state)
			}
			got := sourceSummary(tt.st, tt.disabled)
			if got != tt.summa || len([]rune(got)) > maxSummary {
				t.Errorf("summary %q, want %q (at most %d characters)", got, tt.summa, maxSummary)
			}
		})
	}
}
