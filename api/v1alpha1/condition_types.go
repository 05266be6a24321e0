package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus, so `kubectl wait`,
// Flux health checks and Argo CD read them without custom code.
const (
	// ConditionReady is True when the last discovery run succeeded (or, for a quota,
	// when its spec is valid and usage was computed).
	ConditionReady = "Ready"
	// ConditionReconciling is True while a discovery run is in progress.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when only a change to the spec or a Secret can help.
	ConditionStalled = "Stalled"
	// ConditionQuotaAvailable is False when today's quota is used up and files wait for the reset.
	ConditionQuotaAvailable = "QuotaAvailable"
	// ConditionFilesHealthy is False when the last run failed one or more files.
	ConditionFilesHealthy = "FilesHealthy"
	// ConditionLimitsCapped is True when a quota's spec asks for more than the operator's
	// ceilings allow and the ceiling applies instead (see status.effectiveDailyLimit and
	// status.effectiveMaxFileSize).
	ConditionLimitsCapped = "LimitsCapped"
	// ConditionEventsReady is True when spec.events is set and the source's webhook
	// receiver accepts events at status.webhookPath.
	ConditionEventsReady = "EventsReady"
)

// Condition reasons. They are stable API: alerts and runbooks key on them.
const (
	ReasonSucceeded            = "Succeeded"
	ReasonProgressing          = "Progressing"
	ReasonProgressingWithRetry = "ProgressingWithRetry"
	ReasonDiscoveryRunning     = "DiscoveryRunning"
	ReasonDisabled             = "Disabled"
	ReasonAccessDenied         = "AccessDenied"
	ReasonNoSuchBucket         = "NoSuchBucket"
	ReasonInvalidCredentials   = "InvalidCredentials"
	ReasonEndpointUnreachable  = "EndpointUnreachable"
	ReasonThrottled            = "Throttled"
	ReasonTimeout              = "Timeout"
	ReasonSecretNotFound       = "SecretNotFound"
	ReasonInvalidSpec          = "InvalidSpec"
	ReasonNoObjectsFound       = "NoObjectsFound"
	ReasonDiscoveryFailed      = "DiscoveryFailed"
	ReasonQuotaExceeded        = "QuotaExceeded"
	ReasonQuotaAvailable       = "QuotaAvailable"
	ReasonFilesFailed          = "FilesFailed"
	ReasonAllFilesIngested     = "AllFilesIngested"
	ReasonRefreshThrottled     = "RefreshThrottled"
	// ReasonRefreshQueued (Normal event): a refresh came while a discovery was running; it
	// runs after that one, once the cooldown from its end has passed.
	ReasonRefreshQueued = "RefreshQueued"
	// ReasonRefreshNotRun (Warning event): a refresh came while the source is disabled; it
	// is acknowledged (status.lastHandledRefresh) and not run.
	ReasonRefreshNotRun = "RefreshNotRun"
	// ReasonDiscoveryStarted (Normal event): a discovery started; the note says why.
	ReasonDiscoveryStarted = "DiscoveryStarted"
	// ReasonSourceStalled (Warning event): the source stalled; one event when it stalls,
	// not one per re-check.
	ReasonSourceStalled = "SourceStalled"
	ReasonStoreError    = "StoreError"
	ReasonDefaultQuota  = "DefaultQuota"
	// ReasonQuotaNotFound: spec.quotaRef names a quota other than "default" that does not
	// exist (only the namespace's "default" quota falls back to the defaults).
	ReasonQuotaNotFound   = "QuotaNotFound"
	ReasonInvalidTimeZone = "InvalidTimeZone"
	// ReasonCeilingApplied (LimitsCapped=True): the spec asked for more than a ceiling.
	ReasonCeilingApplied = "CeilingApplied"
	// ReasonWithinCeilings (LimitsCapped=False): the spec's limits apply as written.
	ReasonWithinCeilings = "WithinCeilings"
	// ReasonOperatorIdentityNotAllowed: the source uses the operator's own identity
	// (provider Default) in a namespace the admin did not allow.
	ReasonOperatorIdentityNotAllowed = "OperatorIdentityNotAllowed"
	// ReasonServiceAccountNotFound: spec.credentials.serviceAccountName names no
	// ServiceAccount in the source's namespace.
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
	// ReasonInvalidServiceAccount: the ServiceAccount lacks a well-formed
	// eks.amazonaws.com/role-arn annotation.
	ReasonInvalidServiceAccount = "InvalidServiceAccount"
	// ReasonEndpointNotAllowed: spec.endpoint is not on the platform admin's allow-list, or
	// the address it resolves to is refused (loopback, link-local, the API server, a denied
	// CIDR). Both read the same; only the admin can change it.
	ReasonEndpointNotAllowed = "EndpointNotAllowed"
	// ReasonOperatorIdentityEndpointNotAllowed: the operator's own identity (no credentials
	// Secret) would sign requests to a custom endpoint the admin did not allow for it.
	ReasonOperatorIdentityEndpointNotAllowed = "OperatorIdentityEndpointNotAllowed"
	// ReasonInvalidValidators (Stalled): spec.validators cannot be compiled (a pattern that
	// is not RE2, a region libphonenumber does not know); the message names the validator.
	ReasonInvalidValidators = "InvalidValidators"
	// ReasonPIIRedacted (Normal event): a run stored files whose records a Redact
	// validator changed.
	ReasonPIIRedacted = "PIIRedacted"
	// ReasonPIIFlagged (Normal event): a run stored files in which a Flag validator matched.
	ReasonPIIFlagged = "PIIFlagged"
	// ReasonInvalidResponse: the endpoint answered something that is not S3 (a web page, an
	// empty body).
	ReasonInvalidResponse = "InvalidResponse"
)

// OperatorIdentityLabel is the namespace label the default
// --operator-identity-namespace-selector matches (value "allowed"): only the admin sets
// namespace labels, so only the admin lets a namespace use the operator's own identity.
const OperatorIdentityLabel = "dataimport.avon.ai/operator-identity"

// Reasons of EventsReady.
const (
	// ReasonInvalidEventsSecret: spec.events.secretRef's Secret is missing or has no usable token.
	ReasonInvalidEventsSecret = "InvalidEventsSecret"
	// ReasonReceiverListening: the receiver accepts events at status.webhookPath.
	ReasonReceiverListening = "ReceiverListening"
	// ReasonReceiverDisabled: the manager runs no receiver (--receiver-bind-address=0).
	ReasonReceiverDisabled = "ReceiverDisabled"
)

// Event reasons of the webhook receiver.
const (
	// ReasonEventsReceived (Normal event): a run triggered by webhook events processed files.
	ReasonEventsReceived = "EventsReceived"
	// ReasonSubscriptionConfirmation (Warning event): an SNS topic asked to confirm an HTTPS
	// subscription the operator did not confirm itself.
	ReasonSubscriptionConfirmation = "SubscriptionConfirmation"
)

// RefreshAnnotation asks for a discovery now. Any new value counts; the cooldown of the
// source's IngestionQuota throttles it:
//
//	kubectl annotate s3source NAME dataimport.avon.ai/refresh-requested-at="$(date +%s)" --overwrite
const RefreshAnnotation = "dataimport.avon.ai/refresh-requested-at"

// ReconcileRequestAnnotation is Flux's request for a reconcile (`flux reconcile`, see
// fluxcd/pkg apis/meta); the operator treats a new value as a refresh, with the same
// cooldown, and reports it in status.lastHandledReconcileAt.
const ReconcileRequestAnnotation = "reconcile.fluxcd.io/requestedAt"

// Why a discovery run started: logged, and shown in status.lastDiscoveryReason and the
// Reconciling condition's message.
const (
	TriggerFirstDiscovery = "first discovery"
	TriggerSpecChanged    = "spec changed"
	TriggerRefresh        = "refresh requested"
	TriggerInterval       = "interval elapsed"
	TriggerRetry          = "retry after failure (backoff)"
	TriggerQuotaReset     = "quota window reset"
	TriggerQuotaRaised    = "quota raised"
	TriggerResume         = "resuming interrupted discovery"
	TriggerRecovered      = "recovered"
	// TriggerEventOverflow: more keys were named by S3 events than the per-source queue
	// holds, or looking them up failed; one full discovery replaces them.
	TriggerEventOverflow = "event queue overflowed"
)

// Source states (status.state).
const (
	StateEnabled  = "Enabled"
	StateDisabled = "Disabled"
	StateFailing  = "Failing"
	StateStalled  = "Stalled"
)

// Finalizer removes a source's ledger from the store before the object goes away.
const Finalizer = "dataimport.avon.ai/ledger"
