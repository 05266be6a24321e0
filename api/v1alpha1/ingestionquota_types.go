package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultQuotaName is the quota a source uses when spec.quotaRef is left out; it is the
// only one whose absence falls back to the defaults below.
const DefaultQuotaName = "default"

// Defaults that apply to a source whose "default" IngestionQuota does not exist, as the CRD's
// default markers spell them. Quantities are decimal, as the product guide says
// "500 MB": 500M = 500,000,000 bytes. The operator resolves quotas with internal/quota,
// whose defaults are these values (its TestDefaultsMatchTheAPI keeps them equal). The manager's ceilings
// (--max-daily-limit, --max-file-size) bound these defaults too.
const (
	DefaultDailyLimit      = "500M"
	DefaultMaxFileSize     = "50M"
	DefaultRefreshCooldown = "60s"
	DefaultTimeZone        = "UTC"
)

// IngestionQuotaSpec bounds what the sources that reference this quota ingest each day.
// +kubebuilder:validation:XValidation:rule="!has(self.maxFileSize) || !has(self.dailyLimit) || quantity(string(self.maxFileSize)).compareTo(quantity(string(self.dailyLimit))) <= 0",message="maxFileSize must not exceed dailyLimit"
type IngestionQuotaSpec struct {
	// DailyLimit is the most object bytes (as stored in S3) downloaded per day, across all
	// sources using this quota. Decimal units: 500M is 500,000,000 bytes; 500Mi is 524,288,000.
	// The platform admin's ceiling (the manager's --max-daily-limit) bounds it:
	// status.effectiveDailyLimit is what applies. Only admins write quotas.
	// +optional
	// +kubebuilder:default="500M"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="dailyLimit must be greater than zero"
	DailyLimit *resource.Quantity `json:"dailyLimit,omitempty"`

	// MaxFileSize is the largest object downloaded; larger objects fail without download.
	// The platform admin's ceiling (the manager's --max-file-size) bounds it:
	// status.effectiveMaxFileSize is what applies.
	// +optional
	// +kubebuilder:default="50M"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="maxFileSize must be greater than zero"
	MaxFileSize *resource.Quantity `json:"maxFileSize,omitempty"`

	// RefreshCooldown is the least time from the end of a source's last discovery
	// (whatever started it) to a discovery asked for with the refresh annotation.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="refreshCooldown must not be negative"
	RefreshCooldown *metav1.Duration `json:"refreshCooldown,omitempty"`

	// TimeZone of the daily window, an IANA name such as "Europe/Paris". The window resets
	// at midnight there.
	// +optional
	// +kubebuilder:default="UTC"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
}

// SourceUsage is what one source charged in the current window.
type SourceUsage struct {
	// Name of the S3Source.
	Name string `json:"name"`
	// UsedBytes in the current window.
	UsedBytes int64 `json:"usedBytes"`
}

// IngestionQuotaStatus is the usage of the current window.
type IngestionQuotaStatus struct {
	// ObservedGeneration is the generation of the spec last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, QuotaAvailable, LimitsCapped.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Window is the current day, YYYY-MM-DD in the quota's time zone.
	// +optional
	Window string `json:"window,omitempty"`

	// UsedBytes downloaded in the window.
	// +optional
	UsedBytes int64 `json:"usedBytes,omitempty"`

	// RemainingBytes of the window's effective limit.
	// +optional
	RemainingBytes int64 `json:"remainingBytes,omitempty"`

	// Usage reads like the dashboard, e.g. "12.3 MB of 500 MB used today".
	// +optional
	Usage string `json:"usage,omitempty"`

	// ResetsAt is when the window ends and usage starts again from zero.
	// +optional
	ResetsAt *metav1.Time `json:"resetsAt,omitempty"`

	// EffectiveDailyLimit is the daily limit enforced: spec.dailyLimit, or the operator's
	// ceiling (the manager's --max-daily-limit) when the spec asks for more.
	// +optional
	EffectiveDailyLimit *resource.Quantity `json:"effectiveDailyLimit,omitempty"`

	// EffectiveMaxFileSize is the largest file downloaded: spec.maxFileSize, or the
	// operator's ceiling (the manager's --max-file-size) when the spec asks for more. It
	// never exceeds EffectiveDailyLimit.
	// +optional
	EffectiveMaxFileSize *resource.Quantity `json:"effectiveMaxFileSize,omitempty"`

	// TopSources are the sources that used the most of the window, most first (at most
	// MaxTopSources). Status does not grow with the number of sources: each S3Source shows
	// its own usage in status.bytesIngestedToday, and the metrics have every source.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=5
	TopSources []SourceUsage `json:"topSources,omitempty"`

	// SourcesCharged is how many sources used some of the window.
	// +optional
	SourcesCharged int32 `json:"sourcesCharged,omitempty"`
}

// MaxTopSources bounds status.topSources of an IngestionQuota.
const MaxTopSources = 5

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// Removing the operator from Argo CD or Flux must not delete the CRDs, and with them every
// tenant's objects: both tools leave an object with these annotations in place when pruning.
// +kubebuilder:metadata:annotations="argocd.argoproj.io/sync-options=Prune=false,Delete=false"
// +kubebuilder:metadata:annotations="kustomize.toolkit.fluxcd.io/prune=disabled"
// +kubebuilder:resource:shortName=iquota,categories={dataimport,all}
// +kubebuilder:printcolumn:name="Usage",type=string,JSONPath=`.status.usage`
// +kubebuilder:printcolumn:name="Limit",type=string,JSONPath=`.status.effectiveDailyLimit`
// +kubebuilder:printcolumn:name="Max File",type=string,JSONPath=`.status.effectiveMaxFileSize`
// +kubebuilder:printcolumn:name="Capped",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="LimitsCapped")].status`
// +kubebuilder:printcolumn:name="Resets At",type=string,JSONPath=`.status.resetsAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// IngestionQuota bounds the daily ingestion of the S3Sources that reference it.
type IngestionQuota struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	// +kubebuilder:default={}
	Spec IngestionQuotaSpec `json:"spec,omitempty"`
	// Status is the usage of the current window. Its default makes a new object read as in progress
	// (observedGeneration -1 is older than any generation) until the operator has acted on
	// it, for kstatus (Flux, kubectl wait) and Argo CD.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status IngestionQuotaStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (q *IngestionQuota) GetConditions() []metav1.Condition { return q.Status.Conditions }

// SetConditions replaces the status conditions.
func (q *IngestionQuota) SetConditions(c []metav1.Condition) { q.Status.Conditions = c }

// +kubebuilder:object:root=true

// IngestionQuotaList is a list of IngestionQuota.
type IngestionQuotaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IngestionQuota `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IngestionQuota{}, &IngestionQuotaList{})
}
