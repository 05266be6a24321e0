// Package store is the contract between the ingest engine and the stores: the Store
// interface, the rows it reads and writes (conversations, the file ledger, quota
// reservations and usage) and the rule every store applies to each committed record
// (RecordOutcome, after Newer). The backends live in its subpackages sqlite and
// postgres, and must all pass the shared suite in storetest; package backend opens the
// one a DSN names.
//
// It imports no other package of this module, so the backends and the engine can both
// import it.
package store

import (
	"context"
	"errors"
	"time"
)

// FileState is the ledger state of one object.
type FileState string

const (
	FileIngested FileState = "ingested"
	FileFailed   FileState = "failed"
	FileDeferred FileState = "deferred"
	FileIgnored  FileState = "ignored"
)

// Conversation is one validated record, ready to store. Raw is the record exactly as the
// customer sent it (compacted), so unknown fields are never lost; it is valid JSON (the
// ingest engine's parser wrote it), which stores do not check again.
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
	// PII are what the file's PII validators counted, added to the source's lifetime
	// totals (SourceTotals.PII) by the commit that writes the row; not kept in the row.
	PII []PIITotal
}

// PIITotal is what one validator, under one action, counted.
type PIITotal struct {
	Validator, Action string
	Records, Matches  int64
}

// RecordCounts are the per-file record tallies.
type RecordCounts struct {
	Valid     int64
	Invalid   int64
	New       int64
	Updated   int64
	Unchanged int64
}

// ListingState is what a source's completed discoveries proved about its prefix, for
// incremental listing (see package discovery).
type ListingState struct {
	// Scope identifies what the runs listed (bucket, prefix, filters); a state of another
	// scope proves nothing about this one.
	Scope string
	// LastFull is when the last complete full listing began.
	LastFull time.Time
	// Marks are, oldest first, the marks of recent runs.
	Marks []ListingMark
}

// ListingMark says that every object with a key up to and including Key that existed at
// At was settled (ingested, failed for good or ignored) by the run that began at At.
type ListingMark struct {
	At  time.Time `json:"at"`
	Key string    `json:"key"`
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

// ErrRejected marks a store error caused by what was written (a value the database
// cannot hold: a data exception, a constraint, a size limit), not by the database being
// unavailable: writing the same content again fails the same way. Test with errors.Is.
var ErrRejected = errors.New("the store rejected the content")

// Rejected marks err as caused by the content written (see ErrRejected); its message is
// err's.
func Rejected(err error) error {
	if err == nil {
		return nil
	}
	return rejectedError{err}
}

type rejectedError struct{ err error }

func (e rejectedError) Error() string        { return e.err.Error() }
func (e rejectedError) Unwrap() error        { return e.err }
func (e rejectedError) Is(target error) bool { return target == ErrRejected }

// AttemptOutcome is how a processing attempt counted by BeginAttempt ended.
type AttemptOutcome uint8

const (
	// AttemptSettled: the file reached an outcome that needs no retry; its count is cleared.
	AttemptSettled AttemptOutcome = iota
	// AttemptForgiven: the attempt failed for a reason that is not the file's (a transient
	// download failure, a shutdown, the store unavailable); it does not count.
	AttemptForgiven
)

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
	// DeleteSource removes a source's ledger rows and listing state; conversations stay.
	DeleteSource(ctx context.Context, source string) error
	// RangeFiles returns, in key order, up to limit ledger rows of a source whose keys
	// sort after after and, unless through is "", not after through (limit <= 0: no
	// limit). Keys compare bytewise (UTF-8 byte order), the order in which S3 lists them,
	// so the rows of a listed page's key range are read with one indexed range scan.
	RangeFiles(ctx context.Context, source, after, through string, limit int) ([]FileRecord, error)
	// DeleteFiles removes the ledger rows of a source with these keys that were updated
	// before olderThan (objects gone from the bucket), and returns how many it removed.
	// The age guard keeps rows written after the listing that proved them gone began.
	DeleteFiles(ctx context.Context, source string, keys []string, olderThan time.Time) (int, error)

	// CountFiles returns how many ledger rows a source has in each state.
	CountFiles(ctx context.Context, source string) (map[FileState]int64, error)
	// ListingState returns where a source's incremental discoveries may start listing;
	// found is false before the first completed run.
	ListingState(ctx context.Context, source string) (ListingState, bool, error)
	// SaveListingState replaces a source's listing state in one write: after a crash
	// the previous state stands, which only makes the next listing start earlier.
	SaveListingState(ctx context.Context, source string, st ListingState) error

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
	// BeginAttempt counts one attempt to process version etag of an object, before the
	// attempt starts, so an attempt that kills the process (out of memory, a crash) still
	// counts. It returns the attempts of that version counted so far, this one included;
	// another etag, or fresh, starts again at 1. A CommitFile of the object clears the
	// count (its outcome is settled); EndAttempt ends an attempt otherwise.
	BeginAttempt(ctx context.Context, source, key, etag string, fresh bool) (int, error)
	// EndAttempt ends an attempt that did not commit: AttemptSettled clears the count,
	// AttemptForgiven takes the attempt back. An attempt that failed because of the file
	// is not ended: it keeps counting.
	EndAttempt(ctx context.Context, source, key string, outcome AttemptOutcome) error

	// Usage returns a quota's used bytes for a day, in total and per source.
	Usage(ctx context.Context, quota, day string) (int64, map[string]int64, error)

	// SourceUsage returns a quota's used bytes for a day in total and those of one
	// source: what a source's reconcile needs, summed by the database instead of
	// returning a row for every source of the quota (10,000 sources reconciling would
	// read 10,000 rows each).
	SourceUsage(ctx context.Context, quota, day, source string) (total, own int64, err error)

	// GetConversation finds one conversation by its identity: namespace, agent_id and
	// conversation_id.
	GetConversation(ctx context.Context, namespace, agentID, conversationID string) (Conversation, bool, error)
	// ListConversations lists an agent's conversations in one namespace, by
	// conversation_id.
	ListConversations(ctx context.Context, namespace, agentID string, limit int) ([]Conversation, error)

	Close() error
}

// Fencer is implemented by a store that several manager processes share (PostgreSQL):
// it keeps two processes from running the discovery of one source at once, whatever
// their shard Leases say (a process paused or cut off past its Lease still holds its
// fence, and its successor waits). A store only one process opens (SQLite) has none.
type Fencer interface {
	// TryFence takes the source's fence unless another process holds it (ok false).
	// Taking it drops the source's quota reservations: only a holder of the fence
	// reserves for the source, so any left are a previous holder's that never committed.
	TryFence(ctx context.Context, source string) (f Fence, ok bool, err error)
}

// Fence is a held source fence.
type Fence interface {
	// Lost is closed when the fence can no longer be guaranteed (its database session
	// ended); the run holding it must stop.
	Lost() <-chan struct{}
	// Release gives the fence up.
	Release()
}

// SourceTotals are a source's lifetime counters, kept by the store in the same
// transaction as each file commit, so they agree with the ledger after a crash.
type SourceTotals struct {
	// Conversations is the number of records commits stored as new or updated.
	Conversations int64
	// PII are the committed files' PII counts per validator and action, ordered by
	// validator then action.
	PII []PIITotal
}

// TotalsReader is implemented by the stores that keep SourceTotals (both backends; see
// storetest). It is apart from Store so that test stores need not keep totals.
type TotalsReader interface {
	// SourceTotals returns a source's lifetime totals (zero for a source never committed
	// to, or deleted with DeleteSource).
	SourceTotals(ctx context.Context, source string) (SourceTotals, error)
}

// Outcome is how one committed record counts in its file's RecordCounts.
type Outcome uint8

const (
	OutcomeUnchanged Outcome = iota
	OutcomeNew
	OutcomeUpdated
)

// Add counts one record's outcome.
func (c *RecordCounts) Add(o Outcome) {
	switch o {
	case OutcomeNew:
		c.New++
	case OutcomeUpdated:
		c.Updated++
	default:
		c.Unchanged++
	}
}

// RecordOutcome is the rule every store applies to each record of a commit, in file
// order, against stored: the row held for the record's identity at that moment (nil
// when there is none), which is a row an earlier record of the same commit wrote when
// there is one. write reports whether rec replaces stored.
//
//   - nothing stored: rec is written, New;
//   - stored came from the same object version (source, key and last-modified equal):
//     an earlier record of this file (or an earlier ingestion of this very object)
//     already counted the identity, so rec is Unchanged; it is written when Newer (the
//     newest copy within a file wins, as across files);
//   - rec is Newer than stored: it is written, Updated, or Unchanged when the content
//     hashes are equal (only the origin moves to the newer copy);
//   - otherwise stored stays and rec is Unchanged (an older version is not an update).
//
// So a file counts each identity at most once as New or Updated, every other record of
// it as Unchanged, and New+Updated+Unchanged is the number of records committed. Once
// a record of the file was written for an identity, the identity's later records in the
// file are Unchanged, even one that changes the content again. (Before commits were
// streamed, a file's duplicates were first reduced to the newest, which alone was
// compared with the stored row. The counts differ only for a file holding both a copy
// identical to the stored row, from a newer object, and another version of the same
// conversation: that file now counts the identity Unchanged when the identical copy
// comes first and Updated when the other version does.)
//
// Writing identical content when its origin is newer keeps the stored row equal to the
// maximum under Newer of every record ever committed, whatever the order of files and
// of records within them.
func RecordOutcome(rec, stored *Conversation) (write bool, o Outcome) {
	switch {
	case stored == nil:
		return true, OutcomeNew
	case stored.Source == rec.Source && stored.ObjectKey == rec.ObjectKey && stored.ObjectLastModified.Equal(rec.ObjectLastModified):
		return Newer(rec, stored), OutcomeUnchanged
	case !Newer(rec, stored):
		return false, OutcomeUnchanged
	case rec.ContentHash == stored.ContentHash:
		return true, OutcomeUnchanged
	default:
		return true, OutcomeUpdated
	}
}
