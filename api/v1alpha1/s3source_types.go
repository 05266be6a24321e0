package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CredentialsProvider selects where the operator's S3 credentials come from.
// +kubebuilder:validation:Enum=Default;Secret;ServiceAccount
type CredentialsProvider string

const (
	// CredentialsDefault uses the operator's own identity (the AWS default chain: IRSA web
	// identity, EKS Pod Identity, environment, or instance metadata). The admin allows it
	// only in chosen namespaces (--operator-identity-namespace-selector).
	CredentialsDefault CredentialsProvider = "Default"
	// CredentialsSecret reads static keys from a Secret in the source's namespace.
	CredentialsSecret CredentialsProvider = "Secret"
	// CredentialsServiceAccount uses a ServiceAccount of the source's namespace: the
	// operator requests a token for it (TokenRequest API) and exchanges it with STS
	// AssumeRoleWithWebIdentity for the role in its eks.amazonaws.com/role-arn annotation.
	CredentialsServiceAccount CredentialsProvider = "ServiceAccount"
)

// ServiceAccountRoleAnnotation on a ServiceAccount names the IAM role its tokens assume,
// as IRSA (EKS) defines it.
const ServiceAccountRoleAnnotation = "eks.amazonaws.com/role-arn"

// InvalidRecordPolicy says what an invalid record does to the rest of its file.
// +kubebuilder:validation:Enum=SkipFile;SkipRecord
type InvalidRecordPolicy string

const (
	// SkipFile commits nothing from a file that holds any invalid record.
	SkipFile InvalidRecordPolicy = "SkipFile"
	// SkipRecord commits the valid records of a file and reports the invalid ones.
	SkipRecord InvalidRecordPolicy = "SkipRecord"
)

// S3SourceSpec points at a bucket prefix of conversation files and says how to read it.
// +kubebuilder:validation:XValidation:rule="!has(self.caSecretRef) || has(self.endpoint)",message="caSecretRef needs endpoint: a CA bundle only applies to a custom S3-compatible endpoint"
type S3SourceSpec struct {
	// Bucket is the S3 bucket name, e.g. "my-bucket" (3-63 characters: lowercase letters,
	// digits, dots and hyphens, starting and ending with a letter or digit).
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`
	// +kubebuilder:validation:XValidation:rule="!self.contains('..')",message="bucket must not contain two adjacent periods"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+\\\\.[0-9]+\\\\.[0-9]+\\\\.[0-9]+$')",message="bucket must not be formatted as an IP address"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('xn--') && !self.startsWith('sthree-')",message="bucket must not start with the reserved prefixes xn-- or sthree-"
	// +kubebuilder:validation:XValidation:rule="!self.endsWith('-s3alias') && !self.endsWith('--ol-s3')",message="bucket must not end with the reserved suffixes -s3alias or --ol-s3"
	Bucket string `json:"bucket"`

	// Prefix limits discovery to keys that start with it, e.g. "conversations/". Use a
	// trailing slash to mean a folder. Empty means the whole bucket.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="prefix must not start with '/': S3 keys have no leading slash (use conversations/, not /conversations/)"
	Prefix string `json:"prefix,omitempty"`

	// Region of the bucket, e.g. "eu-west-1".
	// +optional
	// +kubebuilder:default="us-east-1"
	// +kubebuilder:validation:Pattern=`^[a-z0-9-]+$`
	Region string `json:"region,omitempty"`

	// Endpoint is the URL of an S3-compatible server (MinIO, Ceph, ...). Empty means AWS S3.
	// The platform admin must allow it (manager flag --allowed-endpoints); otherwise the
	// source stalls with reason EndpointNotAllowed and nothing is dialed. Without a
	// credentials Secret, it must also be in --operator-identity-endpoints.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://[^\s/?#]+(/[^\s?#]*)?$`
	Endpoint string `json:"endpoint,omitempty"`

	// ForcePathStyle addresses the bucket as endpoint/bucket instead of bucket.endpoint,
	// which most S3-compatible servers need.
	// +optional
	ForcePathStyle bool `json:"forcePathStyle,omitempty"`

	// CASecretRef names a Secret in this namespace whose "ca.crt" key holds the PEM bundle
	// that signs a private endpoint's certificate.
	// +optional
	CASecretRef *LocalObjectReference `json:"caSecretRef,omitempty"`

	// Credentials say how the operator authenticates. Without it, the AWS default chain
	// (workload identity) is used.
	// +optional
	Credentials *Credentials `json:"credentials,omitempty"`

	// Interval between discoveries.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="interval must be at least 1m"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Timeout bounds each S3 call (a list page, or the download of one object).
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="timeout must be between 1s and 1h"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Disabled pauses the source: no S3 calls, no discovery. The ledger is kept, so
	// re-enabling processes only what changed meanwhile.
	// +optional
	// +kubebuilder:default=false
	Disabled bool `json:"disabled"`

	// QuotaRef names the IngestionQuota in this namespace that bounds this source. When the
	// quota named "default" does not exist the documented defaults apply (500M a day, 50M a
	// file, 60s cooldown), bounded by the operator's ceilings; any other name that does not
	// exist stalls the source (QuotaNotFound): quotas are the platform admin's.
	// +optional
	// +kubebuilder:default="default"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	QuotaRef string `json:"quotaRef,omitempty"`

	// AgentIDs, when set, is the allow-list of agent_id values the platform knows; a record
	// with any other agent_id is invalid.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	// +listType=set
	AgentIDs []string `json:"agentIDs,omitempty"`

	// OnInvalidRecord says what an invalid record does to its file: SkipFile commits
	// nothing from that file; SkipRecord commits its valid records.
	// +optional
	// +kubebuilder:default=SkipFile
	OnInvalidRecord InvalidRecordPolicy `json:"onInvalidRecord,omitempty"`

	// DryRun validates files and reports the result without storing any conversation.
	// Dry-run results are kept apart from the real ledger: a file unchanged since the last
	// dry run is not downloaded (or charged) again, status counts and recentFileErrors
	// describe the dry run, and turning dryRun off processes every file for real.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// Validators look for personal data in each record's free text (messages[].content
	// and every string value inside user_data; identifiers, timestamps and logs are not
	// scanned) and Reject, Redact or Flag what they find. They run in list order, each on
	// the text as redacted by those before it. A changed list applies to new, updated and
	// failed files; files already ingested are not re-read.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(v, self.filter(w, (has(w.name) ? w.name : {'Email': 'email', 'PhoneNumber': 'phone', 'PaymentCard': 'card', 'Regex': 'regex'}[w.type]) == (has(v.name) ? v.name : {'Email': 'email', 'PhoneNumber': 'phone', 'PaymentCard': 'card', 'Regex': 'regex'}[v.type])).size() == 1)",message="validators need distinct names (an unnamed validator is named email, phone, card or regex after its type): give a name to each of two validators of the same type"
	Validators []Validator `json:"validators,omitempty"`

	// Events turns on the source's webhook receiver: S3 event notifications (MinIO or
	// Ceph webhook targets, AWS EventBridge API destinations, SNS HTTPS subscriptions)
	// sent to status.webhookPath with the token as a Bearer token get the objects they
	// name processed within seconds, without listing the prefix. Scheduled discoveries
	// still run.
	// +optional
	Events *Events `json:"events,omitempty"`
}

// Events configure a source's webhook receiver.
type Events struct {
	// SecretRef names a Secret in the source's namespace whose "token" key is the
	// receiver's token (at least 16 bytes). The webhook path is derived from it, and every
	// request must also carry it (Authorization: Bearer <token>).
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
}

// EventsTokenKey is the key of the token in spec.events.secretRef's Secret.
const EventsTokenKey = "token"

// ValidatorType is the kind of personal data a validator detects.
// +kubebuilder:validation:Enum=Email;PhoneNumber;PaymentCard;Regex
type ValidatorType string

const (
	// ValidatorEmail detects e-mail addresses (confirmed with Go's net/mail parser).
	ValidatorEmail ValidatorType = "Email"
	// ValidatorPhoneNumber detects phone numbers in international format (+CC ...), and
	// national numbers of the validator's regions (confirmed with libphonenumber).
	ValidatorPhoneNumber ValidatorType = "PhoneNumber"
	// ValidatorPaymentCard detects payment card numbers (issuer prefix, length, Luhn).
	ValidatorPaymentCard ValidatorType = "PaymentCard"
	// ValidatorRegex detects the matches of the validator's pattern.
	ValidatorRegex ValidatorType = "Regex"
)

// ValidatorAction is what a validator does with a record in which it found a match.
// +kubebuilder:validation:Enum=Reject;Redact;Flag
type ValidatorAction string

const (
	// ValidatorReject makes the record invalid: spec.onInvalidRecord decides what happens
	// to its file, and the error names the validator and the field, never the text.
	ValidatorReject ValidatorAction = "Reject"
	// ValidatorRedact replaces each match by [REDACTED:<name>] before the record is
	// stored; de-duplication compares the redacted record.
	ValidatorRedact ValidatorAction = "Redact"
	// ValidatorFlag stores the record unchanged and counts it in status.pii and metrics.
	ValidatorFlag ValidatorAction = "Flag"
)

// Validator is one PII check.
// +kubebuilder:validation:XValidation:rule="self.type == 'Regex' ? has(self.pattern) : !has(self.pattern)",message="pattern is required for type Regex and not allowed for other types"
// +kubebuilder:validation:XValidation:rule="self.type == 'PhoneNumber' || !has(self.regions)",message="regions are only for type PhoneNumber"
// +kubebuilder:validation:XValidation:rule="!has(self.pattern) || !self.pattern.substring(0, 0).matches(self.pattern)",message="pattern must be an RE2 regular expression (Go regexp syntax) that does not match the empty string"
type Validator struct {
	// Name identifies the validator in errors, status, metrics and the redaction token
	// [REDACTED:<name>]. Default: email, phone, card or regex, after the type.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// Type is Email, PhoneNumber, PaymentCard or Regex.
	// +required
	Type ValidatorType `json:"type"`

	// Action is Reject, Redact or Flag.
	// +optional
	// +kubebuilder:default=Reject
	Action ValidatorAction `json:"action,omitempty"`

	// Pattern is the Regex validator's regular expression, in RE2 syntax (Go's regexp:
	// no backreferences or lookaround; matching is linear in the text). It must not match
	// the empty string. An invalid pattern is refused at admission or, if it got in, stalls
	// the source with reason InvalidValidators.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Pattern string `json:"pattern,omitempty"`

	// Regions are ISO 3166-1 alpha-2 codes (e.g. US, DE) whose national-format numbers a
	// PhoneNumber validator also detects, when written with a separator ("(415) 555-2671",
	// "030 901820"; a bare run of digits is taken for an order number). Without regions
	// only numbers in international format (+1 415 555 2671) are detected: a national
	// number is ambiguous without its country.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Pattern=`^[A-Z]{2}$`
	// +listType=set
	Regions []string `json:"regions,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Credentials select exactly one way to authenticate, optionally assuming a role on top.
// +kubebuilder:validation:XValidation:rule="self.provider == 'Secret' ? has(self.secretRef) : !has(self.secretRef)",message="secretRef is required when provider is Secret and not allowed otherwise: choose one credentials mode"
// +kubebuilder:validation:XValidation:rule="self.provider == 'ServiceAccount' ? has(self.serviceAccountName) : !has(self.serviceAccountName)",message="serviceAccountName is required when provider is ServiceAccount and not allowed otherwise: choose one credentials mode"
// +kubebuilder:validation:XValidation:rule="self.provider != 'ServiceAccount' || !has(self.assumeRole)",message="assumeRole is not allowed with provider ServiceAccount: the role is the one in the ServiceAccount's eks.amazonaws.com/role-arn annotation"
// +kubebuilder:validation:XValidation:rule="self.provider != 'Default' || !has(self.assumeRole) || !has(self.assumeRole.externalID)",message="assumeRole.externalID is not allowed with provider Default: the operator generates the external ID for this namespace and shows it in status.externalID; put that value in the role's trust policy"
type Credentials struct {
	// Provider is Default (the operator's own identity, only in namespaces the admin
	// allowed), Secret (static keys from secretRef) or ServiceAccount (a token of
	// serviceAccountName exchanged for the role in its eks.amazonaws.com/role-arn annotation).
	// +optional
	// +kubebuilder:default=Default
	Provider CredentialsProvider `json:"provider,omitempty"`

	// SecretRef names a Secret in this namespace with the keys AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN. Only with provider Secret.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// ServiceAccountName names a ServiceAccount in this namespace whose
	// eks.amazonaws.com/role-arn annotation names the IAM role to assume with its token
	// (audience sts.amazonaws.com). Only with provider ServiceAccount.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// AssumeRole assumes an IAM role with STS on top of the credentials above. Not with
	// provider ServiceAccount.
	// +optional
	AssumeRole *AssumeRole `json:"assumeRole,omitempty"`
}

// AssumeRole is an IAM role assumed through STS.
type AssumeRole struct {
	// RoleARN of the role, e.g. arn:aws:iam::123456789012:role/avon-ingestion.
	// +required
	// +kubebuilder:validation:Pattern=`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`
	RoleARN string `json:"roleARN"`

	// ExternalID the role's trust policy requires, if any. Only with provider Secret (the
	// tenant's own keys): with provider Default the operator sets the external ID itself,
	// see status.externalID.
	// +optional
	// +kubebuilder:validation:MaxLength=1224
	ExternalID string `json:"externalID,omitempty"`

	// SessionName recorded in CloudTrail.
	// +optional
	// +kubebuilder:default="data-import-operator"
	// +kubebuilder:validation:Pattern=`^[\w+=,.@-]{2,64}$`
	SessionName string `json:"sessionName,omitempty"`
}

// FileCounts tally the objects under the prefix by what happened to them.
type FileCounts struct {
	// Discovered objects under the prefix at the last discovery.
	Discovered int64 `json:"discovered"`
	// Ingested objects whose conversations are stored.
	Ingested int64 `json:"ingested"`
	// Failed objects: invalid content, too large, or unreadable.
	Failed int64 `json:"failed"`
	// Deferred objects that did not fit in today's quota; retried after the reset.
	Deferred int64 `json:"deferred"`
	// Ignored objects with an unsupported extension.
	Ignored int64 `json:"ignored"`
}

// FileError describes one failed object.
type FileError struct {
	// Key of the object.
	// +kubebuilder:validation:MaxLength=1024
	Key string `json:"key"`
	// Reason is a stable CamelCase code, e.g. InvalidRecords, FileTooLarge, Parked.
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`
	// Message says what is wrong, where (line, entry, field) and what was expected; a
	// longer one is cut, the cut marked with "…".
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message"`
	// Time the error was recorded.
	Time metav1.Time `json:"time"`
}

// PIICount is what one validator found over the source's lifetime.
type PIICount struct {
	// Validator is the validator's name.
	Validator string `json:"validator"`
	// Action is the validator's action when the matches were counted.
	Action ValidatorAction `json:"action"`
	// Records is how many records the validator matched (rejected, redacted or flagged).
	Records int64 `json:"records"`
	// Matches is how many matches it found in them.
	Matches int64 `json:"matches"`
}

// MaxRecentFileErrors bounds status.recentFileErrors.
const MaxRecentFileErrors = 10

// Bounds of one FileError, in characters: a file's contents must never make a status
// patch exceed the API server's request size (ten errors at these bounds are about 50 kB).
// The operator truncates longer values, marking the cut with "…".
const (
	// MaxFileErrorKeyLength is S3's longest object key (1024 bytes).
	MaxFileErrorKeyLength = 1024
	// MaxFileErrorMessageLength bounds FileError.Message.
	MaxFileErrorMessageLength = 4096
)

// S3SourceStatus is what the operator observed.
type S3SourceStatus struct {
	// ObservedGeneration is the generation of the spec last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, QuotaAvailable, FilesHealthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// State is Enabled, Disabled, Failing (the last discovery failed and is retried with
	// backoff) or Stalled (only a change of the spec, a Secret or the bucket policy helps).
	// +optional
	State string `json:"state,omitempty"`

	// Summary is a short phrase for `kubectl get -o wide` (e.g. "Ingested 4 of 5",
	// "Discovering", "Stalled: AccessDenied"); the conditions hold the details.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Summary string `json:"summary,omitempty"`

	// LastDiscoveryStartTime is when the latest discovery run started. While it is later
	// than lastDiscoveryTime a run is in flight (Reconciling=True, DiscoveryRunning); a
	// manager that restarts resumes such a run at once.
	// +optional
	LastDiscoveryStartTime *metav1.Time `json:"lastDiscoveryStartTime,omitempty"`

	// LastDiscoveryReason says why the latest discovery run started, e.g. "first discovery",
	// "interval elapsed", "refresh requested", "retry after failure (backoff)", "resuming
	// interrupted discovery".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	LastDiscoveryReason string `json:"lastDiscoveryReason,omitempty"`

	// LastDiscoveryTime is when the last discovery run finished.
	// +optional
	LastDiscoveryTime *metav1.Time `json:"lastDiscoveryTime,omitempty"`

	// NextDiscoveryTime is when the next scheduled discovery is due.
	// +optional
	NextDiscoveryTime *metav1.Time `json:"nextDiscoveryTime,omitempty"`

	// LastHandledRefresh is the value of the refresh annotation last acted on: handled by
	// a discovery that finished, or acknowledged without one while the source is disabled.
	// +optional
	LastHandledRefresh string `json:"lastHandledRefresh,omitempty"`

	// LastHandledReconcileAt is the value of Flux's reconcile.fluxcd.io/requestedAt
	// annotation last acted on (`flux reconcile`), as Flux's own objects report it; it is
	// treated as a refresh.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// ValidationHash identifies the validation settings (agentIDs, onInvalidRecord,
	// validators) the last finished discovery checked files against. Failed files are
	// checked again only when these settings change.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ValidationHash string `json:"validationHash,omitempty"`

	// Files tally the objects under the prefix.
	// +optional
	Files *FileCounts `json:"files,omitempty"`

	// ConversationsIngested is the number of conversations this source has stored (new or
	// updated), over its lifetime. The store keeps it in the same transaction as each file
	// commit, so it agrees with the ledger after a crash and grows while a run is in flight.
	// +optional
	ConversationsIngested int64 `json:"conversationsIngested,omitempty"`

	// BytesIngestedToday is what this source charged to its quota in the current window.
	// +optional
	BytesIngestedToday int64 `json:"bytesIngestedToday,omitempty"`

	// ConsecutiveFailures counts discovery runs that failed in a row; retries back off
	// from 30s, doubling, up to the interval.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`

	// ExternalID is the external ID the operator sends when it assumes spec's role with its
	// own identity (provider Default): generated per namespace, stable, never chosen by the
	// tenant. The role's trust policy should require it (sts:ExternalId).
	// +optional
	ExternalID string `json:"externalID,omitempty"`

	// PII counts, per validator in spec.validators, the records its matches rejected,
	// redacted or flagged over the source's lifetime (a validator removed from the spec
	// is dropped). Files a run redacted or flagged also raise a Normal event.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=validator
	PII []PIICount `json:"pii,omitempty"`

	// WebhookPath is where the source's receiver listens, /hook/<sha256 of token, name and
	// namespace> on the operator's receiver address, when spec.events is set. It changes
	// when the token does.
	// +optional
	WebhookPath string `json:"webhookPath,omitempty"`

	// LastEventTime is when the last run triggered by webhook events finished.
	// +optional
	LastEventTime *metav1.Time `json:"lastEventTime,omitempty"`

	// RecentFileErrors are the newest failed objects, newest first (at most 10).
	// +optional
	// +kubebuilder:validation:MaxItems=10
	RecentFileErrors []FileError `json:"recentFileErrors,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// Removing the operator from Argo CD or Flux must not delete the CRDs, and with them every
// tenant's objects: both tools leave an object with these annotations in place when pruning.
// +kubebuilder:metadata:annotations="argocd.argoproj.io/sync-options=Prune=false,Delete=false"
// +kubebuilder:metadata:annotations="kustomize.toolkit.fluxcd.io/prune=disabled"
// +kubebuilder:resource:shortName=s3src,categories={dataimport,all}
// +kubebuilder:printcolumn:name="Bucket",type=string,JSONPath=`.spec.bucket`
// +kubebuilder:printcolumn:name="Prefix",type=string,JSONPath=`.spec.prefix`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Last Discovery",type=date,JSONPath=`.status.lastDiscoveryTime`
// +kubebuilder:printcolumn:name="Ingested",type=integer,JSONPath=`.status.files.ingested`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.files.failed`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,priority=1,JSONPath=`.status.summary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// S3Source imports conversation files from an S3 bucket prefix, hourly by default.
type S3Source struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec S3SourceSpec `json:"spec"`
	// Status is what the operator observed. Its default makes a new object read as in progress
	// (observedGeneration -1 is older than any generation) until the operator has acted on
	// it, for kstatus (Flux, kubectl wait) and Argo CD.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status S3SourceStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (s *S3Source) GetConditions() []metav1.Condition { return s.Status.Conditions }

// SetConditions replaces the status conditions.
func (s *S3Source) SetConditions(c []metav1.Condition) { s.Status.Conditions = c }

// +kubebuilder:object:root=true

// S3SourceList is a list of S3Source.
type S3SourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []S3Source `json:"items"`
}

func init() {
	SchemeBuilder.Register(&S3Source{}, &S3SourceList{})
}
