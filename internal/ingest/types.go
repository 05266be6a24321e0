// Package ingest turns S3 objects into validated, de-duplicated conversations in a Store.
// It knows nothing of Kubernetes: callers hand it an object's identity and a byte stream.
package ingest

import "time"

// ObjectRef identifies one S3 object as it was listed. ETag and Size together decide
// whether an object already in the ledger was updated.
type ObjectRef struct {
	// Namespace is the tenant that owns the object's conversations: the S3Source's
	// namespace. Conversations are identified, de-duplicated and replaced only within it.
	Namespace string
	// Source is the owner of the ledger row, "namespace/name" for an S3Source.
	Source       string
	Bucket       string
	Key          string
	ETag         string
	Size         int64
	LastModified time.Time
}

// InvalidRecordPolicy says what an invalid record does to the rest of its file.
type InvalidRecordPolicy string

const (
	// SkipFile commits nothing from a file that holds any invalid record.
	SkipFile InvalidRecordPolicy = "SkipFile"
	// SkipRecord commits the valid records and counts the invalid ones.
	SkipRecord InvalidRecordPolicy = "SkipRecord"
)

// Reasons recorded in the ledger and surfaced in status. They are stable API.
const (
	ReasonIngested          = "Ingested"
	ReasonInvalidRecords    = "InvalidRecords"
	ReasonInvalidEncoding   = "InvalidEncoding"
	ReasonMalformed         = "MalformedContent"
	ReasonContentMismatch   = "ContentMismatch"
	ReasonUnsafeArchive     = "UnsafeArchive"
	ReasonLimitExceeded     = "LimitExceeded"
	ReasonUnsupportedFormat = "UnsupportedFormat"
	ReasonFileTooLarge      = "FileTooLarge"
	ReasonQuotaExceeded     = "QuotaExceeded"
	ReasonDownloadFailed    = "DownloadFailed"
	ReasonNoValidRecords    = "NoValidRecords"
	// ReasonStoreRejected: the store refused to write the file (a value the database
	// cannot hold that validation let through); retried, then parked.
	ReasonStoreRejected = "StoreRejected"
	// ReasonParked: the file failed or stopped the manager too many times in a row for
	// reasons retrying does not fix; it is not downloaded again until its ETag changes
	// or a refresh is requested.
	ReasonParked = "Parked"
)
