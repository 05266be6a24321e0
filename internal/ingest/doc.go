package ingest

// How a file is ingested (Engine.Process):
//
//  1. The key's extension (case-insensitive) picks the reader: .json, .jsonl/.ndjson,
//     .zip, .tar.gz/.tgz. Other extensions are ignored (FileIgnored, UnsupportedFormat).
//     The first bytes are sniffed: a gzip stream named .json, a ZIP named .tar.gz, a
//     byte-order mark, UTF-16 fail the file with a message saying what the content looks like.
//  2. Readers stream: a JSON array is read element by element, JSONL line by line, through
//     a window that holds one record (at most Limits.MaxRecordBytes) at a time. Archive
//     entries named .json/.jsonl/.ndjson are read the same way, in archive order; other
//     entries are listed in Result.Ignored; a nested archive, a link, a device, an absolute
//     or ".." name fails the whole archive (UnsafeArchive). Entry count, per-entry and total
//     uncompressed bytes are bounded (LimitExceeded). ZIP objects are spooled to a temp file.
//  3. Each record is parsed once by a strict parser that also compacts it: the compacted
//     bytes are the stored Raw (unknown fields kept), validated against the seed's format
//     (see validate.go: required fields, Roles, the CSAT range, timestamps in RFC 3339 with
//     a zone) and hashed in canonical form (see hash.go) for ContentHash.
//  4. Records with the same (agent_id, conversation_id) in one file are reduced with Newer,
//     the rule the store applies across files; the losers count as Unchanged.
//  5. The outcome: a file-level problem (encoding, malformed JSON outside a record, unsafe
//     archive, limits) fails the file whatever the policy, with zero record counts. Otherwise, under SkipFile any
//     invalid record fails the file (InvalidRecords) and commits nothing; under SkipRecord
//     the valid records commit and the invalid are counted. No valid record at all is
//     NoValidRecords. Syntax errors inside one record (a JSONL line, an array element)
//     make that record invalid. Invalid UTF-8 anywhere fails the file (InvalidEncoding).
//  6. Unless Options.DryRun, Store.CommitFile is called exactly once with the ledger row,
//     the surviving conversations of an ingested file, and the quota reservation, so the
//     store commits all of it or none. Its New/Updated/Unchanged counts are merged in.
//
// Every RecordError names the object key, the archive entry, the JSONL line (1-based) or
// the array index (0-based), the JSON path, the value's problem and what was expected:
//
//	conversations/2025/01/15/a.jsonl:17: messages[2].timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)
//
// A Result lists the first MaxErrorsPerFile errors and counts the rest. Process returns an
// error only when the body cannot be read, the store fails, or the context ends.
//
// Memory: the readers hold one record; a dry run keeps only the identities seen. A commit
// holds the file's compacted records until CommitFile (bounded by MaxFileBytes for plain
// files), because FileCommit carries the whole file in one transaction.
