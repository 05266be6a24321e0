package ingest

import "github.com/avon-ai/data-import-operator/internal/quota"

// Default limits, in decimal bytes like the quota's (8 MB is 8,000,000 bytes). The seed
// caps a file at 50 MB; the archive limits keep a zip or gzip bomb from exhausting
// memory or disk: it fails with LimitExceeded instead.
const (
	// DefaultMaxFileBytes is the largest object read (compressed size for archives): the
	// IngestionQuota's default maxFileSize, so data-import validate and the operator
	// refuse the same files.
	DefaultMaxFileBytes = quota.DefaultMaxFileSize
	// DefaultMaxRecordBytes bounds one conversation: a JSON array element, a single-object
	// file, or a JSONL line. Only one record is buffered at a time, so this (not the file
	// size) is what the readers hold in memory.
	DefaultMaxRecordBytes = 8_000_000
	// DefaultMaxLineBytes is the longest JSONL/NDJSON line: one record.
	DefaultMaxLineBytes = DefaultMaxRecordBytes
	// DefaultMaxArchiveEntries bounds the entries of a ZIP or tar archive (directories count).
	DefaultMaxArchiveEntries = 10_000
	// DefaultMaxArchiveBytes bounds the total uncompressed bytes of an archive.
	DefaultMaxArchiveBytes = 512_000_000
	// DefaultMaxEntryBytes bounds one archive entry, uncompressed.
	DefaultMaxEntryBytes = 50_000_000
	// DefaultMaxDepth bounds JSON nesting (the seed's records nest 4 levels).
	DefaultMaxDepth = 64
)

// MaxErrorsPerFile is how many record errors a Result lists; the rest are counted.
const MaxErrorsPerFile = 20

// MaxMessageRunes bounds a ledger row's message, which status.recentFileErrors shows
// (the CRD allows 4096): what a file holds must never make a status patch too large.
// Values, keys, archive entry names and JSON paths are shortened where a message quotes
// them (Shorten); this cuts what is left.
const MaxMessageRunes = 2048

// maxNameRunes bounds an archive entry name or a JSON path quoted in a message.
const maxNameRunes = 256

// Limits bound what one file may cost. A zero field takes its default.
type Limits struct {
	MaxFileBytes      int64
	MaxRecordBytes    int
	MaxArchiveEntries int
	MaxArchiveBytes   int64
	MaxEntryBytes     int64
	MaxDepth          int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxFileBytes, DefaultMaxFileBytes)
	defInt(&l.MaxRecordBytes, DefaultMaxRecordBytes)
	defInt(&l.MaxArchiveEntries, DefaultMaxArchiveEntries)
	def(&l.MaxArchiveBytes, DefaultMaxArchiveBytes)
	def(&l.MaxEntryBytes, DefaultMaxEntryBytes)
	defInt(&l.MaxDepth, DefaultMaxDepth)
	return l
}
