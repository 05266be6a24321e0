package controllers

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// computeSourceStatus is the one place an S3Source's status is decided: from the
// previous status and what this reconcile read and did. It is pure, so its table test
// covers every state.
func computeSourceStatus(s *sourceScope, prev v1.S3SourceStatus) v1.S3SourceStatus {
	st := computeSourceConditions(s, prev)
	if st.Files == nil {
		// Counts read 0, not blank, before the first listing.
		st.Files = &v1.FileCounts{}
	}
	st.State = sourceState(s.src.Spec.Disabled, st.Conditions)
	st.Summary = sourceSummary(st, s.src.Spec.Disabled)
	return st
}

// computeSourceConditions is computeSourceStatus without the fields derived from its result
// (state, summary).
func computeSourceConditions(s *sourceScope, prev v1.S3SourceStatus) v1.S3SourceStatus {
	st := *prev.DeepCopy()
	src := s.src
	now := metav1.NewTime(statusTime(s.now))
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: src.Generation, LastTransitionTime: now,
		})
	}

	if s.ackRefresh != "" {
		st.LastHandledRefresh = s.ackRefresh
	}
	if s.ackReconcileAt != "" {
		st.LastHandledReconcileAt = s.ackReconcileAt
	}
	// The start of the run in flight, or of the run folded now: written by every reconcile
	// that knows it, so a failed patch loses nothing.
	recordStart := func(trig runTrigger) {
		started := metav1.NewTime(statusTime(trig.started))
		st.LastDiscoveryStartTime = &started
		st.LastDiscoveryReason = trig.reason
	}
	if s.result != nil && s.trigger.reason != "" {
		recordStart(s.trigger)
	}
	if s.running && s.inFlight.reason != "" {
		recordStart(s.inFlight)
	}
	if s.identity != nil {
		st.ExternalID = s.identity.externalID
	}
	foldEvents(&st, s, set)
	if s.started || src.Spec.Disabled || (s.failure != nil && s.failure.stalled) {
		st.ObservedGeneration = src.Generation
	}
	if s.failure == nil || s.failure.reason != v1.ReasonStoreError {
		st.BytesIngestedToday = s.bytesToday
	}
	if s.totals != nil {
		st.ConversationsIngested = s.totals.Conversations
		st.PII = piiFromTotals(src.Spec.Validators, s.totals.PII)
	}

	if res := s.result; res != nil && res.Targeted {
		foldEventRun(&st, s, set)
	} else if res != nil {
		finished := metav1.NewTime(statusTime(res.Finished))
		st.LastDiscoveryTime = &finished
		// A request counts as handled once the run that handles it finished: a run cut
		// short by a crash leaves it pending, and the next process runs it.
		if s.trigger.refresh != "" {
			st.LastHandledRefresh = s.trigger.refresh
		}
		if s.trigger.reconcileAt != "" {
			st.LastHandledReconcileAt = s.trigger.reconcileAt
		}
		if res.Err != nil {
			st.ConsecutiveFailures++
		} else {
			st.ConsecutiveFailures = 0
			if s.trigger.validationHash != "" {
				st.ValidationHash = s.trigger.validationHash
			}
			st.Files = &v1.FileCounts{Discovered: res.Listed, Ingested: res.Ingested, Failed: res.Failed, Deferred: res.Deferred, Ignored: res.Ignored,
				Skipped: res.Excluded + res.TooOld}
			st.Listing = listingStatus(res.Listing)
			st.ObservedInclude, st.ObservedExclude, st.ObservedMaxFileAge = observedFilter(res.Filter)
			if s.totals == nil {
				st.ConversationsIngested += res.Conversations.New + res.Conversations.Updated
			}
			if s.totals == nil {
				st.PII = foldPII(st.PII, src.Spec.Validators, res.PII)
			}
			st.RecentFileErrors = nil
			for _, f := range res.RecentErrors {
				st.RecentFileErrors = append(st.RecentFileErrors, fileError(f))
			}
		}
	}

	if src.Spec.Disabled {
		st.NextDiscoveryTime = nil
		set(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonDisabled, "ingestion is paused (spec.disabled); the ledger is kept, so re-enabling processes only what changed")
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
		return st
	}
	if st.LastDiscoveryTime != nil {
		next := metav1.NewTime(dueAt(src, st.LastDiscoveryTime.Time, st.ConsecutiveFailures))
		st.NextDiscoveryTime = &next
	}

	if s.quota.Key != "" && s.usageRead {
		// The same function of the quota's limit and usage as the IngestionQuota's own
		// condition: the two never contradict each other.
		_, resetsAt := s.quota.Window(s.now)
		status, reason, msg := quotaAvailability(s.quota.DailyLimit, s.usedToday, resetsAt)
		if status == metav1.ConditionTrue && s.quota.Missing {
			reason = v1.ReasonDefaultQuota
		}
		if st.Files != nil && st.Files.Deferred > 0 {
			if status == metav1.ConditionTrue {
				msg += fmt.Sprintf("; %d file(s) deferred by the last discovery did not fit: they are ingested after the reset at %s, or sooner when the limit is raised",
					st.Files.Deferred, resetsAt.UTC().Format(time.RFC3339))
			} else {
				msg += fmt.Sprintf("; %d file(s) deferred: they are ingested after the reset, or as soon as the limit is raised", st.Files.Deferred)
			}
		}
		set(v1.ConditionQuotaAvailable, status, reason, msg+"; "+s.quota.describe())
	}

	// A failure that a retry may fix keeps Reconciling=True (kstatus: InProgress) with
	// when the retry happens; only a failure that needs a spec or Secret change stalls.
	retry := ""
	switch f := s.failure; {
	case f != nil && f.stalled:
		set(v1.ConditionReady, metav1.ConditionFalse, f.reason, f.message)
		set(v1.ConditionStalled, metav1.ConditionTrue, f.reason, f.message)
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
		return st
	case f != nil:
		set(v1.ConditionReady, metav1.ConditionFalse, f.reason, f.message)
		retry = f.message
	}
	// A stall stands until new evidence: a run in flight or a run's result.
	if s.running || s.result != nil || s.failure != nil {
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
	}
	if meta.IsStatusConditionTrue(st.Conditions, v1.ConditionStalled) {
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
		return st
	}

	if res := s.result; res != nil && !res.Targeted {
		if res.Err != nil {
			f := runFailure(src, res)
			set(v1.ConditionReady, metav1.ConditionFalse, f.reason, f.message)
			if f.stalled {
				// Only a change (the Secret, the spec, or the bucket's own policy) helps; the
				// source still retries on its backoff in case the fix happens outside.
				msg := f.message + "; the operator retries at " + st.NextDiscoveryTime.UTC().Format(time.RFC3339)
				if f.reason == v1.ReasonEndpointNotAllowed {
					// An address refused at dial time reads exactly like an endpoint refused
					// before any run: "not allowed", and nothing about how it was found.
					msg = f.message
				}
				set(v1.ConditionStalled, metav1.ConditionTrue, f.reason, msg)
				meta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
				return st
			}
			retry = f.message
		} else {
			reason, msg := v1.ReasonSucceeded, runSummary(res)
			if res.Listed == 0 {
				reason, msg = v1.ReasonNoObjectsFound, bucket.NoObjectsMessage(src.Spec.Bucket, src.Spec.Prefix)
				if skipped := res.Excluded + res.TooOld; skipped > 0 {
					msg = fmt.Sprintf("all %d object(s) under s3://%s/%s were skipped by spec.include, spec.exclude or spec.maxFileAge", skipped, src.Spec.Bucket, src.Spec.Prefix)
				}
			}
			set(v1.ConditionReady, metav1.ConditionTrue, reason, msg)
			if res.Failed > 0 {
				set(v1.ConditionFilesHealthy, metav1.ConditionFalse, v1.ReasonFilesFailed,
					fmt.Sprintf("%d file(s) failed; see status.recentFileErrors", res.Failed))
			} else {
				set(v1.ConditionFilesHealthy, metav1.ConditionTrue, v1.ReasonAllFilesIngested, "no file under the prefix is failed")
			}
		}
	} else if c := meta.FindStatusCondition(st.Conditions, v1.ConditionReconciling); c != nil && c.Reason == v1.ReasonProgressingWithRetry {
		retry = strings.TrimPrefix(c.Message, retryPrefix(st.NextDiscoveryTime))
	}

	switch {
	case s.running:
		msg := fmt.Sprintf("discovering s3://%s/%s", src.Spec.Bucket, src.Spec.Prefix)
		if st.LastDiscoveryReason != "" {
			msg += " (" + st.LastDiscoveryReason + ")"
		}
		if st.LastDiscoveryStartTime != nil {
			msg += " since " + st.LastDiscoveryStartTime.UTC().Format(time.RFC3339)
		}
		set(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonDiscoveryRunning, msg)
		if meta.FindStatusCondition(st.Conditions, v1.ConditionReady) == nil {
			set(v1.ConditionReady, metav1.ConditionUnknown, v1.ReasonProgressing, "the first discovery is running")
		}
	case s.refreshThrottled != "":
		set(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonRefreshThrottled,
			fmt.Sprintf("refresh %q waits for the %s cooldown of IngestionQuota %s; it runs at %s",
				s.refreshThrottled, s.quota.RefreshCooldown, s.quota.Key, s.refreshAt.UTC().Format(time.RFC3339)))
	case retry != "" && meta.IsStatusConditionFalse(st.Conditions, v1.ConditionReady):
		set(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonProgressingWithRetry, retryPrefix(st.NextDiscoveryTime)+retry)
	default:
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
	}
	return st
}

// retryPrefix starts the Reconciling message of a failing source.
func retryPrefix(next *metav1.Time) string {
	if next == nil {
		return "retrying after: "
	}
	return "retrying at " + next.UTC().Format(time.RFC3339) + " after: "
}

// runFailure names why a run's listing failed, with the bucket package's sanitized message.
func runFailure(src *v1.S3Source, res *discovery.Result) *stepFailure {
	var be *bucket.Error
	if errors.As(res.Err, &be) {
		return &stepFailure{reason: be.Reason, message: be.Message, stalled: !bucket.IsTransient(res.Err)}
	}
	if errors.Is(res.Err, discovery.ErrStore) {
		// The bucket is fine and no file is blamed: the run is retried on its backoff.
		return &stepFailure{reason: v1.ReasonStoreError,
			message: fmt.Sprintf("the store failed during the discovery of s3://%s/%s; retrying: %v", src.Spec.Bucket, src.Spec.Prefix, res.Err)}
	}
	return &stepFailure{reason: v1.ReasonDiscoveryFailed,
		message: fmt.Sprintf("discovery of s3://%s/%s failed: %v", src.Spec.Bucket, src.Spec.Prefix, res.Err)}
}

// runChanged tells whether a successful run is worth a Normal event: it downloaded files
// (ingested or failed), deferred some, or changed the source's state (the first success,
// or a recovery from Ready=False or Unknown).
func runChanged(res *discovery.Result, before *v1.S3SourceStatus) bool {
	if res.Downloaded > 0 || res.NewlyFailed > 0 || res.NewlyDeferred > 0 ||
		res.Conversations.New > 0 || res.Conversations.Updated > 0 {
		return true
	}
	ready := meta.FindStatusCondition(before.Conditions, v1.ConditionReady)
	return ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != v1.ReasonSucceeded
}

func listingStatus(l discovery.ListingResult) *v1.ListingStatus {
	st := &v1.ListingStatus{LastMode: v1.ListingMode(l.Mode), ObjectsListed: l.Listed}
	if !l.LastFull.IsZero() {
		t := metav1.NewTime(statusTime(l.LastFull))
		st.LastFullListingTime = &t
	}
	return st
}

func runSummary(res *discovery.Result) string {
	msg := runCounts(res)
	if pii := ingest.SummarizePII(res.PII); pii != "" {
		// At most one entry per validator (16), names and numbers only.
		msg += "; " + pii
	}
	return msg
}

func runCounts(res *discovery.Result) string {
	return fmt.Sprintf("discovered %d object(s): %d ingested, %d failed, %d deferred, %d ignored; this run downloaded %d (%s), %d conversation(s) new, %d updated, %d unchanged",
		res.Listed, res.Ingested, res.Failed, res.Deferred, res.Ignored,
		res.Downloaded, quota.FormatBytes(res.BytesDownloaded), res.Conversations.New, res.Conversations.Updated, res.Conversations.Unchanged)
}

// fileError is a failed ledger row as status shows it, cut to the CRD's bounds: a row's
// key and message come from the bucket's files and must never make the status patch too
// large for the API server.
func fileError(f store.FileRecord) v1.FileError {
	return v1.FileError{
		Key: bounded(f.Key, v1.MaxFileErrorKeyLength), Reason: bounded(f.Reason, 64),
		Message: bounded(f.Message, v1.MaxFileErrorMessageLength), Time: metav1.NewTime(f.UpdatedAt),
	}
}

// bounded escapes control characters in s and cuts it to at most limit characters.
func bounded(s string, limit int) string {
	if s = ingest.Shorten(s, limit); utf8.RuneCountInString(s) > limit {
		s = ingest.Shorten(s, limit-1)
	}
	return s
}

// sourceState is status.state: Disabled, Stalled (only a change helps), Failing (retried
// with backoff) or Enabled.
func sourceState(disabled bool, conds []metav1.Condition) string {
	switch {
	case disabled:
		return v1.StateDisabled
	case meta.IsStatusConditionTrue(conds, v1.ConditionStalled):
		return v1.StateStalled
	case meta.IsStatusConditionFalse(conds, v1.ConditionReady):
		return v1.StateFailing
	}
	return v1.StateEnabled
}

// maxSummary bounds status.summary (the CRD's maxLength).
const maxSummary = 64

// sourceSummary is the short phrase of `kubectl get -o wide`; the conditions hold the
// details.
func sourceSummary(st v1.S3SourceStatus, disabled bool) string {
	ready := meta.FindStatusCondition(st.Conditions, v1.ConditionReady)
	rec := meta.FindStatusCondition(st.Conditions, v1.ConditionReconciling)
	var out string
	switch {
	case disabled:
		out = "Disabled"
	case meta.IsStatusConditionTrue(st.Conditions, v1.ConditionStalled):
		out = "Stalled: " + meta.FindStatusCondition(st.Conditions, v1.ConditionStalled).Reason
	case rec != nil && rec.Status == metav1.ConditionTrue && rec.Reason == v1.ReasonDiscoveryRunning:
		out = "Discovering"
		if st.LastDiscoveryReason != "" {
			out += " (" + st.LastDiscoveryReason + ")"
		}
	case ready != nil && ready.Status == metav1.ConditionFalse:
		out = "Failing: " + ready.Reason + ", retrying"
	case ready != nil && ready.Reason == v1.ReasonNoObjectsFound:
		out = "No objects found"
	case st.Files != nil && ready != nil && ready.Status == metav1.ConditionTrue:
		f := st.Files
		out = fmt.Sprintf("%d/%d ingested", f.Ingested, f.Discovered-f.Ignored)
		if f.Failed > 0 {
			out += fmt.Sprintf(", %d failed", f.Failed)
		}
		if f.Deferred > 0 {
			out += fmt.Sprintf(", %d deferred", f.Deferred)
		}
		if rec != nil && rec.Reason == v1.ReasonRefreshThrottled {
			out += ", refresh waits"
		}
	default:
		out = "Pending"
	}
	if r := []rune(out); len(r) > maxSummary {
		out = string(r[:maxSummary-1]) + "…"
	}
	return out
}
