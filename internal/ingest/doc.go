package ingest

// How a file is ingested (Engine.Process):
//
//  1. The key's extension (case-insensitive) picks the reader: .json, .jsonl/.ndjson,
//     .zip, .tar.gz/.tgz. Other extensions are ignored (store.FileIgnored, UnsupportedFormat).
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
//     a zone; a field listed in missing_info.fields must not be present in user_data),
//     then, when Options.Validators is set, scanned for personal data (see pii.go: Reject
//     makes the record invalid, Redact rewrites it, Flag counts it), and the record as it
//     will be stored is hashed in canonical form (see hash.go) for ContentHash.
//  4. Records with the same (agent_id, conversation_id) in one file are left to the store,
//     which decides each record against the row it holds at that moment, rows written by
//     earlier records of the same file included (store.RecordOutcome): the newest copy wins, as
//     across files, and the identity counts once as New or Updated, its other records as
//     Unchanged. A dry run counts a file's repeated identities as Unchanged.
//  5. The outcome: a file-level problem (encoding, malformed JSON outside a record, unsafe
//     archive, limits) fails the file whatever the policy, with zero record counts. Otherwise, under SkipFile any
//     invalid record fails the file (InvalidRecords) and commits nothing; under SkipRecord
//     the valid records commit and the invalid are counted. No valid record at all is
//     NoValidRecords. Syntax errors inside one record (a JSONL line, an array element)
//     make that record invalid. Invalid UTF-8 anywhere fails the file (InvalidEncoding).
//     Both stores accept exactly the same records: a string (key or value) holding
//     \u0000 or a lone UTF-16 surrogate escape, or an agent_id or conversation_id over
//     MaxIDBytes, makes its record invalid with its path, because PostgreSQL cannot hold
//     it where SQLite would (TestBothStoresAcceptTheSameRecords runs one hostile corpus
//     through both).
//  6. Unless Options.DryRun, the file is committed while it is read: a goroutine parses
//     and validates, and sends the valid records in batches of 256 through a channel of
//     two batches to store.Store.CommitFile, whose transaction writes them (a lookup and a
//     multi-row upsert per batch) as they arrive, so parsing and inserting overlap. The
//     ledger row (its outcome filled in by store.FileCommit.Complete once the file is read) and
//     the quota reservation commit in the same transaction. A file that fails, whenever
//     that shows (an invalid record under SkipFile ends the stream at once, a file-level
//     error at the end), rolls the transaction back, and a second CommitFile commits its
//     ledger row alone and charges its reservation. A dry run opens no transaction.
//     The store's New/Updated/Unchanged counts are the Result's.
// Every RecordError names the object key, the archive entry, the JSONL line (1-based) or
// the array index (0-based), the JSON path, the value's problem and what was expected:
//
//	conversations/2025/01/15/a.jsonl:17: messages[2].timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)
//
// A Result lists the first MaxErrorsPerFile errors and counts the rest. Process returns an
// error only when the body cannot be read, the store fails, or the context ends.
//
// Memory: the readers hold one record; a commit holds at most a few batches of records
// (the one being filled, the channel's two, the store's), each at most 256 records and
// about 4 MB, so MaxQueuedRecordBytes whatever the file's size, and nothing per identity; a dry run keeps the identities seen (Result.Pairs). The price of
// streaming is that the store's write transaction stays open while the rest of the file
// is read: SQLite's single writer (and PostgreSQL's commit lock) is held for that time,
// from the first full batch on, so other commits wait for a slow download.
