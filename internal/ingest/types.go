// Package ingest turns S3 objects into validated, de-duplicated conversations in a Store.
// It knows nothing of Kubernetes: callers hand it an object's identity and a byte stream.
package ingest

import (
	"context"
	"errors"
	"time"
)

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

// FileState is the ledger state of one object.
type FileState string

const (
	FileIngested FileState = "ingested"
	FileFailed   FileState = "failed"
	FileDeferred FileState = "deferred"
	FileIgnored  FileState = "ignored"
)

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
)

// Conversation is one validated record, ready to store. Raw is the record exactly as the
// customer sent it (compacted), so unknown fields are never lost.
type Conversation struct {
	// Namespace is the tenant the conversation belongs to; with AgentID and
	// ConversationID it is the conversation's identity. A store sets it from
	// FileCommit.Namespace.
	Namespace      string
	AgentID        string
	ConversationID string
	// ActivityTime is the latest timestamp in the record (conversation and messages):
	// the first key of the "newer record wins" order.
	ActivityTime time.Time
	// ContentHash identifies the canonical content; an identical record is "unchanged".
	ContentHash string
	Raw         []byte
	// Origin of the record, the later keys of the "newer" order.
	ObjectKey          string
	ObjectLastModified time.Time
	// Position is the record's index in its file (entry-major for archives).
	Position int64
	Source   string
}

// Newer reports whether a should replace b under the documented order: activity time,
// then the object's last-modified, then object key, then position, then content hash.
// It is a strict total order on distinct records, so the final store never depends on
// the order in which files were processed.
func Newer(a, b *Conversation) bool {
	if !a.ActivityTime.Equal(b.ActivityTime) {
		return a.ActivityTime.After(b.ActivityTime)
	}
	if !a.ObjectLastModified.Equal(b.ObjectLastModified) {
		return a.ObjectLastModified.After(b.ObjectLastModified)
	}
	if a.ObjectKey != b.ObjectKey {
		return a.ObjectKey > b.ObjectKey
	}
	if a.Position != b.Position {
		return a.Position > b.Position
	}
	return a.ContentHash > b.ContentHash
}

// FileRecord is one ledger row.
type FileRecord struct {
	Source       string
	Key          string
	ETag         string
	Size         int64
	LastModified time.Time
	State        FileState
	Reason       string
	Message      string
	Counts       RecordCounts
	// Bytes is what this object charged to the daily quota (its size when downloaded, else 0).
	Bytes     int64
	Attempts  int
	FirstSeen time.Time
	UpdatedAt time.Time
}

// RecordCounts are the per-file record tallies.
type RecordCounts struct {
	Valid     int64
	Invalid   int64
	New       int64
	Updated   int64
	Unchanged int64
}

// Reservation is quota held for one download before it starts.
type Reservation struct {
	Quota  string // "namespace/name" of the IngestionQuota
	Day    string // the window, "2006-01-02" in the quota's time zone
	Source string
	Bytes  int64
	Limit  int64
}

// ConversationStream produces one file's valid conversations in file order: it calls
// yield once per record and returns nil when every record was yielded. It stops and
// returns an error when yield returns false. Any error (the file turned out invalid,
// its body could not be read, ctx ended) means nothing of the file may be committed.
//
// A stream may be consumed once. Raw of a yielded conversation stays valid after yield
// returns: a store may buffer records before writing them.
type ConversationStream func(yield func(Conversation) bool) error

// StreamOf streams convs (tests, and callers that already hold a file's records).
func StreamOf(convs ...Conversation) ConversationStream {
	return func(yield func(Conversation) bool) error {
		for _, c := range convs {
			if !yield(c) {
				return ErrStreamStopped
			}
		}
		return nil
	}
}

// ErrStreamStopped is what a ConversationStream returns when its consumer stopped early.
var ErrStreamStopped = errors.New("conversation stream stopped by its consumer")

// FileCommit is everything about one file, committed in one transaction: its valid
// conversations, streamed into the transaction while the file is still being parsed,
// its ledger row, and the conversion of its quota reservation into usage. A stream
// error rolls all of it back.
//
// The store compares each record with the row stored when the record is met, which
// includes the rows this commit wrote earlier: see RecordOutcome for the rule and how
// New, Updated and Unchanged are counted.
type FileCommit struct {
	// Namespace owns every conversation of the commit: the store stores each streamed
	// record under it and compares it only with rows of the same namespace. It is
	// required when Conversations yields a record.
	Namespace string
	File      FileRecord
	// Conversations, when non-nil, is consumed once, inside the transaction.
	Conversations ConversationStream
	// Complete, when non-nil, is called after Conversations returned nil and before the
	// ledger row is written, to fill in what a streamed file knows only at its end
	// (state, reason, message, valid and invalid counts, bytes read). The store then sets
	// the row's New, Updated and Unchanged counts.
	Complete func(f *FileRecord)
	// ReservationID, when non-zero, is released and its bytes recorded as usage.
	ReservationID int64
	Reservation   Reservation
}

// ErrQuotaExceeded is returned by Reserve when the bytes do not fit in the day's limit.
var ErrQuotaExceeded = errors.New("daily ingestion quota exceeded")

// Store persists conversations, the file ledger and quota usage.
// Implementations live in internal/store/...; all must pass the shared suite in
// internal/store/storetest.
type Store interface {
	// LookupFile returns the ledger row for one object (one indexed lookup).
	LookupFile(ctx context.Context, source, key string) (FileRecord, bool, error)
	// LookupFiles returns the ledger rows of many objects of a source (one listed page),
	// keyed by object key; keys without a row are absent from the map.
	LookupFiles(ctx context.Context, source string, keys []string) (map[string]FileRecord, error)
	// ListFiles returns a source's ledger rows in a state ("" for all), newest first.
	ListFiles(ctx context.Context, source string, state FileState, limit int) ([]FileRecord, error)
	// RecordFile upserts a ledger row alone (ignored, deferred, failed before download).
	RecordFile(ctx context.Context, f FileRecord) error
	// CommitFile streams conversations, then writes the ledger row and usage, in one
	// transaction; it returns the commit's New/Updated/Unchanged counts. It calls neither
	// Conversations nor Complete after it returned.
	CommitFile(ctx context.Context, c FileCommit) (RecordCounts, error)
	// DeleteSource removes a source's ledger rows; conversations stay.
	DeleteSource(ctx context.Context, source string) error
	// PruneFiles drops ledger rows of a source whose keys are not in keep and were
	// updated before olderThan (objects gone from the bucket).
	PruneFiles(ctx context.Context, source string, keep map[string]struct{}, olderThan time.Time) (int, error)

	// Reserve atomically holds bytes of a quota's day if used+reserved+bytes <= limit,
	// else returns ErrQuotaExceeded. Concurrent callers never exceed the limit together.
	Reserve(ctx context.Context, r Reservation) (int64, error)
	// Release drops a reservation that will not be committed (no bytes are charged).
	Release(ctx context.Context, id int64) error
	// ChargeReservation converts a reservation to usage without a file commit (download
	// happened but nothing could be committed).
	ChargeReservation(ctx context.Context, id int64) error
	// ReleaseAll drops every outstanding reservation (at manager start: a crashed
	// download never committed).
	ReleaseAll(ctx context.Context) error
	// Usage returns a quota's used bytes for a day, in total and per source.
	Usage(ctx context.Context, quota, day string) (int64, map[string]int64, error)

	// GetConversation finds one conversation by its identity: namespace, agent_id and
	// conversation_id.
	GetConversation(ctx context.Context, namespace, agentID, conversationID string) (Conversation, bool, error)
	// ListConversations lists an agent's conversations in one namespace, by
	// conversation_id.
	ListConversations(ctx context.Context, namespace, agentID string, limit int) ([]Conversation, error)

	Close() error
}
