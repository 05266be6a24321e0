// Package sqlite is the embedded conversation store (modernc.org/sqlite, pure Go), the
// default so the operator runs without a database server.
//
// Writes go through one connection opened with BEGIN IMMEDIATE transactions: SQLite has
// a single writer anyway, and taking the write lock at BEGIN makes every
// read-compare-write (CommitFile, Reserve) atomic against other writers, including
// another process on the same file (which waits up to the busy timeout). Reads use a
// separate pool; WAL lets them run beside the writer on a consistent snapshot.
//
// So commits of every namespace take turns: SQLite has one write lock per database, and
// no finer lock can let two tenants' transactions write at once. (PostgreSQL commits
// of different namespaces run concurrently; see package postgres.) A cluster where
// several tenants import large files at the same time should use PostgreSQL.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/internal/migrate"
	"github.com/avon-ai/data-import-operator/internal/store/internal/plan"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout is how long a writer waits for another process holding the write lock.
const busyTimeout = 10 * time.Second

// readConns bounds the read pool; each connection holds its own page cache.
const readConns = 4

// writerPragmas tune the one write connection for file commits. A commit writes a whole
// file (up to the engine's file limit) in one transaction; with SQLite's default 2 MB
// page cache its dirty pages spill into the WAL mid-transaction, and pages spilled then
// changed again are written twice, each first copied to the statement journal, which
// by default is a temporary file. A 16 MB cache (allocated only as a commit needs it)
// holds the dirty pages of files up to about that size until commit, and temp_store
// keeps statement journals (and any temporary table) in memory: about a quarter fewer
// pwrite calls for a 4 MB file (BenchmarkIngest), nothing changed for small files.
//
// wal_autocheckpoint moves checkpoints off the commit: see checkpointer. The writer
// still checkpoints by itself past 8192 pages (32 MB of WAL), should the checkpointer
// fall behind or the writes be other than file commits.
const writerPragmas = "&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(8192)"

// Store is an store.Store on one SQLite file.
type Store struct {
	w    *sql.DB // one connection, BEGIN IMMEDIATE
	r    *sql.DB
	ckpt *checkpointer
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.TotalsReader = (*Store)(nil)
)

// Open opens (creating if needed) the database file at path and applies migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: open %q: want a file path without '?' or '#'", path)
	}
	params := fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)",
		busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", path+params+writerPragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+params+"&_pragma=query_only(1)")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	s.r = r
	c, err := sql.Open("sqlite", path+params)
	if err != nil {
		_ = errors.Join(w.Close(), r.Close())
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	c.SetMaxOpenConns(1)
	s.ckpt = newCheckpointer(c)
	return s, nil
}

// Close stops the checkpointer and closes the pools.
func (s *Store) Close() error {
	return errors.Join(s.ckpt.close(), s.w.Close(), s.r.Close())
}

// checkpointBytes is how much a file commit writes, in records' bytes, before the WAL is
// checkpointed: about SQLite's own automatic checkpoint (1000 pages of 4 kB).
const checkpointBytes = 4 << 20

// commitOverhead counts the ledger, totals and index pages of one file commit towards
// checkpointBytes, so many small files are checkpointed too.
const commitOverhead = 32 << 10

// checkpointer copies the WAL into the database file on its own connection, after file
// commits wrote checkpointBytes. SQLite would run that checkpoint at the end of the
// commit that crossed its threshold, on the one write connection, so the commit (a
// caller waiting for its file) and the next file's commit waited for the copy. A
// PASSIVE checkpoint does not block the writer: the next commit appends to the WAL
// while the copy runs.
type checkpointer struct {
	db      *sql.DB
	pending atomic.Int64 // bytes committed since the last checkpoint started
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

func newCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed counts n bytes committed and starts a checkpoint when they reach
// checkpointBytes.
func (c *checkpointer) committed(n int64) {
	if c.pending.Add(n) >= checkpointBytes {
		select {
		case c.kick <- struct{}{}:
		default: // one is already due
		}
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		c.pending.Store(0)
		// Best effort: a checkpoint that fails (busy, I/O) leaves the frames in the WAL,
		// where readers find them; the next one, or the writer's own past
		// wal_autocheckpoint, copies them.
		_, _ = c.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// close waits for a running checkpoint and closes the connection; closing again (a
// Store closed twice) does nothing.
func (c *checkpointer) close() error {
	c.closed.Do(func() { close(c.stop) })
	<-c.done
	return c.db.Close()
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return s.apply(ctx, ms)
}

// apply applies the migrations of ms not applied yet, in one transaction. ms must be
// the first len(ms) migrations.
func (s *Store) apply(ctx context.Context, ms []migrate.Migration) error {
	return s.write(ctx, "migrate", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		if have > len(ms) {
			return fmt.Errorf("database schema version %d is newer than this binary's %d", have, len(ms))
		}
		for _, m := range ms[have:] {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, fmtTime(time.Now())); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// write runs fn in one write transaction, naming op in any error.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// timeLayout is fixed-width so text order is time order (years 0000..9999).
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// errOutOfRange marks a time the fixed-width text form cannot hold.
var errOutOfRange = errors.New("year outside 0000..9999")

// checkTime rejects times the fixed-width text form cannot hold.
func checkTime(field string, t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%s %s: %w", field, t.Format(time.RFC3339Nano), errOutOfRange)
	}
	return nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// ---- ledger ----

const fileColumns = `source, key, etag, size, last_modified, state, reason, message,
	valid_count, invalid_count, new_count, updated_count, unchanged_count, bytes, attempts, first_seen, updated_at`

// upsertFileSQL counts the attempt and keeps the first first_seen.
const upsertFileSQL = `INSERT INTO files (` + fileColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
	ON CONFLICT (source, key) DO UPDATE SET
		etag = excluded.etag, size = excluded.size, last_modified = excluded.last_modified,
		state = excluded.state, reason = excluded.reason, message = excluded.message,
		valid_count = excluded.valid_count, invalid_count = excluded.invalid_count,
		new_count = excluded.new_count, updated_count = excluded.updated_count,
		unchanged_count = excluded.unchanged_count, bytes = excluded.bytes,
		attempts = files.attempts + 1, updated_at = excluded.updated_at`

func upsertFile(ctx context.Context, tx *sql.Tx, f store.FileRecord) error {
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"last_modified", f.LastModified}, {"first_seen", f.FirstSeen}, {"updated_at", f.UpdatedAt}} {
		if err := checkTime(t.name, t.t); err != nil {
			return err
		}
	}
	c := f.Counts
	_, err := tx.ExecContext(ctx, upsertFileSQL, f.Source, f.Key, f.ETag, f.Size, fmtTime(f.LastModified),
		string(f.State), f.Reason, f.Message, c.Valid, c.Invalid, c.New, c.Updated, c.Unchanged, f.Bytes,
		fmtTime(orNow(f.FirstSeen)), fmtTime(orNow(f.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("ledger row %s/%s: %w", f.Source, f.Key, err)
	}
	return nil
}

func scanFile(row interface{ Scan(...any) error }) (store.FileRecord, error) {
	var f store.FileRecord
	var state, lm, first, upd string
	err := row.Scan(&f.Source, &f.Key, &f.ETag, &f.Size, &lm, &state, &f.Reason, &f.Message,
		&f.Counts.Valid, &f.Counts.Invalid, &f.Counts.New, &f.Counts.Updated, &f.Counts.Unchanged,
		&f.Bytes, &f.Attempts, &first, &upd)
	if err != nil {
		return f, err
	}
	f.State = store.FileState(state)
	if f.LastModified, err = parseTime(lm); err != nil {
		return f, err
	}
	if f.FirstSeen, err = parseTime(first); err != nil {
		return f, err
	}
	f.UpdatedAt, err = parseTime(upd)
	return f, err
}

// LookupFile returns the ledger row of one object (a primary-key lookup).
func (s *Store) LookupFile(ctx context.Context, source, key string) (store.FileRecord, bool, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+fileColumns+` FROM files WHERE source = ? AND key = ?`, source, key)
	f, err := scanFile(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.FileRecord{}, false, nil
	}
	if err != nil {
		return store.FileRecord{}, false, fmt.Errorf("sqlite: lookup file %s/%s: %w", source, key, err)
	}
	return f, true, nil
}

// lookupChunk bounds the keys of one IN (...) query, well under SQLite's variable limit.
const lookupChunk = 500

// LookupFiles returns the ledger rows of keys, in queries of lookupChunk keys.
func (s *Store) LookupFiles(ctx context.Context, source string, keys []string) (map[string]store.FileRecord, error) {
	out := make(map[string]store.FileRecord, len(keys))
	for start := 0; start < len(keys); start += lookupChunk {
		chunk := keys[start:min(start+lookupChunk, len(keys))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, source)
		for _, k := range chunk {
			args = append(args, k)
		}
		q := `SELECT ` + fileColumns + ` FROM files WHERE source = ? AND key IN (?` + strings.Repeat(`,?`, len(chunk)-1) + `)`
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: lookup %d files of %s: %w", len(chunk), source, err)
		}
		for rows.Next() {
			f, err := scanFile(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: lookup files of %s: %w", source, err)
			}
			out[f.Key] = f
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: lookup files of %s: %w", source, err)
		}
	}
	return out, nil
}

// ListFiles returns a source's ledger rows in state ("" for all), most recently updated
// first; limit <= 0 means no limit.
func (s *Store) ListFiles(ctx context.Context, source string, state store.FileState, limit int) ([]store.FileRecord, error) {
	q := `SELECT ` + fileColumns + ` FROM files WHERE source = ?`
	args := []any{source}
	if state != "" {
		q += ` AND state = ?`
		args = append(args, string(state))
	}
	q += ` ORDER BY updated_at DESC, key`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list files of %s: %w", source, err)
	}
	defer rows.Close()
	var out []store.FileRecord
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list files of %s: %w", source, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list files of %s: %w", source, err)
	}
	return out, nil
}

// RecordFile upserts a ledger row alone.
func (s *Store) RecordFile(ctx context.Context, f store.FileRecord) error {
	return wrap(s.write(ctx, "record file "+f.Source+"/"+f.Key, func(tx *sql.Tx) error {
		return upsertFile(ctx, tx, f)
	}))
}

// DeleteSource removes a source's ledger rows and its outstanding reservations.
// Conversations stay, and so does charged usage: those bytes were downloaded that day.
func (s *Store) DeleteSource(ctx context.Context, source string) error {
	return wrap(s.write(ctx, "delete source "+source, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM files WHERE source = ?`, source); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM file_attempts WHERE source = ?`, source); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM source_totals WHERE source = ?`, source); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM source_pii_totals WHERE source = ?`, source); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM listing_state WHERE source = ?`, source); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM reservations WHERE source = ?`, source)
		return err
	}))
}

// RangeFiles returns the rows of source with after < key <= through (through "": no
// upper bound), in key order: a range scan of the primary key. SQLite compares TEXT
// with BINARY, byte by byte, which is S3's listing order.
func (s *Store) RangeFiles(ctx context.Context, source, after, through string, limit int) ([]store.FileRecord, error) {
	q := `SELECT ` + fileColumns + ` FROM files WHERE source = ? AND key > ?`
	args := []any{source, after}
	if through != "" {
		q += ` AND key <= ?`
		args = append(args, through)
	}
	q += ` ORDER BY key`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: range of files of %s: %w", source, err)
	}
	defer rows.Close()
	var out []store.FileRecord
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: range of files of %s: %w", source, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: range of files of %s: %w", source, err)
	}
	return out, nil
}

// DeleteFiles deletes the rows of source with keys updated before olderThan, in one
// write transaction.
func (s *Store) DeleteFiles(ctx context.Context, source string, keys []string, olderThan time.Time) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	if err := checkTime("olderThan", olderThan); err != nil {
		return 0, fmt.Errorf("sqlite: delete files of %s: %w", source, err)
	}
	var n int64
	err := s.write(ctx, "delete files of "+source, func(tx *sql.Tx) error {
		return chunked(len(keys), func(lo, hi int) error {
			args := make([]any, 0, hi-lo+2)
			args = append(args, source, fmtTime(olderThan))
			for _, k := range keys[lo:hi] {
				args = append(args, k)
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM files WHERE source = ? AND updated_at < ? AND key IN (?`+
				strings.Repeat(`,?`, hi-lo-1)+`)`, args...)
			if err != nil {
				return err
			}
			d, err := res.RowsAffected()
			n += d
			return err
		})
	})
	if err != nil {
		return 0, wrap(err)
	}
	return int(n), nil
}

// CountFiles counts a source's ledger rows by state (the files_source_state index).
func (s *Store) CountFiles(ctx context.Context, source string) (map[store.FileState]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM files WHERE source = ? GROUP BY state`, source)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count files of %s: %w", source, err)
	}
	defer rows.Close()
	out := map[store.FileState]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("sqlite: count files of %s: %w", source, err)
		}
		out[store.FileState(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count files of %s: %w", source, err)
	}
	return out, nil
}

// ListingState reads a source's listing state.
func (s *Store) ListingState(ctx context.Context, source string) (store.ListingState, bool, error) {
	var st store.ListingState
	var last, marks string
	err := s.r.QueryRowContext(ctx, `SELECT scope, last_full, marks FROM listing_state WHERE source = ?`, source).Scan(&st.Scope, &last, &marks)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ListingState{}, false, nil
	}
	if err == nil {
		st.LastFull, err = parseTime(last)
	}
	if err == nil {
		err = json.Unmarshal([]byte(marks), &st.Marks)
	}
	if err != nil {
		return store.ListingState{}, false, fmt.Errorf("sqlite: listing state of %s: %w", source, err)
	}
	return st, true, nil
}

// SaveListingState replaces a source's listing state.
func (s *Store) SaveListingState(ctx context.Context, source string, st store.ListingState) error {
	if err := checkTime("lastFull", st.LastFull); err != nil {
		return fmt.Errorf("sqlite: save listing state of %s: %w", source, err)
	}
	marks, err := json.Marshal(nonNil(st.Marks))
	if err != nil {
		return fmt.Errorf("sqlite: save listing state of %s: %w", source, err)
	}
	return wrap(s.write(ctx, "save listing state of "+source, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO listing_state (source, scope, last_full, marks) VALUES (?, ?, ?, ?)
			ON CONFLICT (source) DO UPDATE SET scope = excluded.scope, last_full = excluded.last_full, marks = excluded.marks`,
			source, st.Scope, fmtTime(st.LastFull), string(marks))
		return err
	}))
}

// nonNil encodes no marks as [], not null.
func nonNil(m []store.ListingMark) []store.ListingMark {
	if m == nil {
		return []store.ListingMark{}
	}
	return m
}

// BeginAttempt counts an attempt to process version etag of source/key.
func (s *Store) BeginAttempt(ctx context.Context, source, key, etag string, fresh bool) (int, error) {
	var tries int
	err := s.write(ctx, "begin attempt "+source+"/"+key, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO file_attempts (source, key, etag, tries, updated_at)
			VALUES (?, ?, ?, 1, ?)
			ON CONFLICT (source, key) DO UPDATE SET
				tries = CASE WHEN file_attempts.etag = excluded.etag AND NOT ? THEN file_attempts.tries + 1 ELSE 1 END,
				etag = excluded.etag, updated_at = excluded.updated_at
			RETURNING tries`, source, key, etag, fmtTime(time.Now()), fresh).Scan(&tries)
	})
	if err != nil {
		return 0, wrap(err)
	}
	return tries, nil
}

// EndAttempt clears (settled) or takes back (forgiven) the last attempt of source/key.
func (s *Store) EndAttempt(ctx context.Context, source, key string, outcome store.AttemptOutcome) error {
	q := `DELETE FROM file_attempts WHERE source = ? AND key = ?`
	if outcome == store.AttemptForgiven {
		q = `UPDATE file_attempts SET tries = tries - 1 WHERE source = ? AND key = ? AND tries > 0`
	}
	return wrap(s.write(ctx, "end attempt "+source+"/"+key, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q, source, key)
		return err
	}))
}

// ---- conversations ----

const convColumns = `namespace, agent_id, conversation_id, activity_time, object_key, object_last_modified,
	position, content_hash, source, raw`

// CommitFile streams a file's conversations into one write transaction, then writes
// its ledger row and usage; see plan.Commit and store.RecordOutcome. The transaction
// (and with it SQLite's write lock) starts with the first full batch, and is held
// while the rest of the file is parsed.
func (s *Store) CommitFile(ctx context.Context, c store.FileCommit) (store.RecordCounts, error) {
	var ct *commitTx
	begin := func(ctx context.Context) (plan.Tx, error) {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		ct = &commitTx{tx: tx, stmts: map[string]*sql.Stmt{}}
		return ct, nil
	}
	counts, err := plan.Commit(ctx, begin, c)
	if err != nil {
		return store.RecordCounts{}, wrap(fmt.Errorf("commit file %s/%s: %w", c.File.Source, c.File.Key, err))
	}
	if ct != nil {
		s.ckpt.committed(ct.written + commitOverhead)
	}
	return counts, nil
}

// commitTx adapts a write transaction to plan.Tx. Its statements are prepared once per
// shape and closed with the transaction.
type commitTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// written counts the bytes of the records written.
	written int64
}

func (t *commitTx) prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	t.stmts[q] = st
	return st, nil
}

func (t *commitTx) Stored(ctx context.Context, keys []plan.Key) (map[plan.Key]store.Conversation, error) {
	return t.loadStored(ctx, keys)
}

func (t *commitTx) Write(ctx context.Context, writes []*store.Conversation) error {
	return t.writeConversations(ctx, writes)
}

// UpsertFile writes the ledger row of a committed file, whose outcome is settled, so
// its processing attempts are cleared in the same transaction.
func (t *commitTx) UpsertFile(ctx context.Context, f store.FileRecord) error {
	if err := upsertFile(ctx, t.tx, f); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM file_attempts WHERE source = ? AND key = ?`, f.Source, f.Key); err != nil {
		return fmt.Errorf("clear attempts of %s/%s: %w", f.Source, f.Key, err)
	}
	// The lifetime totals move with the commit that stores the conversations.
	if n := f.Counts.New + f.Counts.Updated; n > 0 {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO source_totals (source, conversations) VALUES (?, ?)
			ON CONFLICT (source) DO UPDATE SET conversations = conversations + excluded.conversations`, f.Source, n); err != nil {
			return fmt.Errorf("totals of %s: %w", f.Source, err)
		}
	}
	for _, p := range f.PII {
		if p.Records <= 0 {
			continue
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO source_pii_totals (source, validator, action, records, matches) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (source, validator, action) DO UPDATE SET records = source_pii_totals.records + excluded.records,
				matches = source_pii_totals.matches + excluded.matches`, f.Source, p.Validator, p.Action, p.Records, p.Matches); err != nil {
			return fmt.Errorf("PII totals of %s: %w", f.Source, err)
		}
	}
	return nil
}

func (t *commitTx) Charge(ctx context.Context, id int64, fallback *store.Reservation) error {
	return charge(ctx, t.tx, id, fallback)
}

func (t *commitTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t *commitTx) Rollback(context.Context) error { return t.tx.Rollback() }

// Rows per multi-row statement: a whole plan batch each, far below SQLite's 32766 bound
// variables (11 per written row).
const chunk = plan.BatchSize

// chunked runs fn over [lo,hi) chunks of [0,n) of at most chunk rows.
func chunked(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += chunk {
		if err := fn(lo, min(lo+chunk, n)); err != nil {
			return err
		}
	}
	return nil
}

// values returns rows "(?, ?, ...)" groups of cols placeholders, comma-separated.
func values(rows, cols int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(group+", ", rows), ", ")
}

// loadStored reads the ordering fields and origin of the stored rows among keys.
func (t *commitTx) loadStored(ctx context.Context, keys []plan.Key) (map[plan.Key]store.Conversation, error) {
	stored := make(map[plan.Key]store.Conversation)
	err := chunked(len(keys), func(lo, hi int) error {
		stmt, err := t.prepare(ctx, `SELECT namespace, agent_id, conversation_id, activity_time, object_last_modified,
			object_key, position, content_hash, source
			FROM conversations WHERE (namespace, agent_id, conversation_id) IN (VALUES `+values(hi-lo, 3)+`)`)
		if err != nil {
			return err
		}
		args := make([]any, 0, 3*(hi-lo))
		for _, k := range keys[lo:hi] {
			args = append(args, k.Namespace, k.AgentID, k.ConversationID)
		}
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var at, lm string
			var c store.Conversation
			if err := rows.Scan(&c.Namespace, &c.AgentID, &c.ConversationID, &at, &lm, &c.ObjectKey, &c.Position, &c.ContentHash, &c.Source); err != nil {
				return err
			}
			if c.ActivityTime, err = parseTime(at); err != nil {
				return err
			}
			if c.ObjectLastModified, err = parseTime(lm); err != nil {
				return err
			}
			stored[plan.KeyOf(&c)] = c
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read stored conversations: %w", err)
	}
	return stored, nil
}

// convRow is one row of the conversations upsert. raw is bound as the record's bytes
// (a blob: no Go string copy of every record) and stored as text by the CAST.
const convRow = "(?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT), ?)"

// rawArg binds raw as bytes; nil would bind NULL, so it is the empty record.
func rawArg(raw []byte) []byte {
	if raw == nil {
		return []byte{}
	}
	return raw
}

func (t *commitTx) writeConversations(ctx context.Context, writes []*store.Conversation) error {
	for _, c := range writes {
		if err := checkTime("activity time", c.ActivityTime); err != nil {
			return fmt.Errorf("conversation %s/%s/%s: %w", c.Namespace, c.AgentID, c.ConversationID, err)
		}
		if err := checkTime("object last-modified", c.ObjectLastModified); err != nil {
			return fmt.Errorf("conversation %s/%s/%s: %w", c.Namespace, c.AgentID, c.ConversationID, err)
		}
	}
	now := fmtTime(time.Now())
	err := chunked(len(writes), func(lo, hi int) error {
		stmt, err := t.prepare(ctx, `INSERT INTO conversations (`+convColumns+`, updated_at) VALUES `+
			strings.TrimSuffix(strings.Repeat(convRow+", ", hi-lo), ", ")+`
			ON CONFLICT (namespace, agent_id, conversation_id) DO UPDATE SET
				activity_time = excluded.activity_time, object_key = excluded.object_key,
				object_last_modified = excluded.object_last_modified, position = excluded.position,
				content_hash = excluded.content_hash, source = excluded.source, raw = excluded.raw,
				updated_at = excluded.updated_at`)
		if err != nil {
			return err
		}
		args := make([]any, 0, 11*(hi-lo))
		for _, c := range writes[lo:hi] {
			args = append(args, c.Namespace, c.AgentID, c.ConversationID, fmtTime(c.ActivityTime), c.ObjectKey,
				fmtTime(c.ObjectLastModified), c.Position, c.ContentHash, c.Source, rawArg(c.Raw), now)
			t.written += int64(len(c.Raw))
		}
		_, err = stmt.ExecContext(ctx, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %d conversations: %w", len(writes), err)
	}
	return nil
}

func scanConversation(row interface{ Scan(...any) error }) (store.Conversation, error) {
	var c store.Conversation
	var at, lm, raw string
	err := row.Scan(&c.Namespace, &c.AgentID, &c.ConversationID, &at, &c.ObjectKey, &lm, &c.Position, &c.ContentHash, &c.Source, &raw)
	if err != nil {
		return c, err
	}
	c.Raw = []byte(raw)
	if c.ActivityTime, err = parseTime(at); err != nil {
		return c, err
	}
	c.ObjectLastModified, err = parseTime(lm)
	return c, err
}

// GetConversation finds one conversation by identity.
func (s *Store) GetConversation(ctx context.Context, namespace, agentID, conversationID string) (store.Conversation, bool, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+convColumns+` FROM conversations
		WHERE namespace = ? AND agent_id = ? AND conversation_id = ?`, namespace, agentID, conversationID)
	c, err := scanConversation(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Conversation{}, false, nil
	}
	if err != nil {
		return store.Conversation{}, false, fmt.Errorf("sqlite: get conversation %s/%s/%s: %w", namespace, agentID, conversationID, err)
	}
	return c, true, nil
}

// ListConversations lists an agent's conversations in namespace by conversation_id;
// limit <= 0 means no limit.
func (s *Store) ListConversations(ctx context.Context, namespace, agentID string, limit int) ([]store.Conversation, error) {
	q := `SELECT ` + convColumns + ` FROM conversations WHERE namespace = ? AND agent_id = ? ORDER BY conversation_id`
	args := []any{namespace, agentID}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	out, err := s.queryConversations(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list conversations of %s/%s: %w", namespace, agentID, err)
	}
	return out, nil
}

// DumpConversations returns every conversation by identity (tests compare dumps).
func (s *Store) DumpConversations(ctx context.Context) ([]store.Conversation, error) {
	out, err := s.queryConversations(ctx, `SELECT `+convColumns+` FROM conversations ORDER BY namespace, agent_id, conversation_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: dump conversations: %w", err)
	}
	return out, nil
}

func (s *Store) queryConversations(ctx context.Context, q string, args ...any) ([]store.Conversation, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ---- quota ----

// Reserve holds r.Bytes of r.Quota's r.Day when used + reserved + r.Bytes <= r.Limit.
// The immediate transaction holds SQLite's write lock from the sum to the insert, so
// concurrent reservers are serialized.
func (s *Store) Reserve(ctx context.Context, r store.Reservation) (int64, error) {
	if r.Bytes < 0 {
		return 0, fmt.Errorf("sqlite: reserve %d bytes of %s on %s: negative size", r.Bytes, r.Quota, r.Day)
	}
	var id int64
	err := s.write(ctx, fmt.Sprintf("reserve %d bytes of %s on %s", r.Bytes, r.Quota, r.Day), func(tx *sql.Tx) error {
		var held int64
		if err := tx.QueryRowContext(ctx, `SELECT
			COALESCE((SELECT SUM(bytes) FROM usage WHERE quota = ? AND day = ?), 0) +
			COALESCE((SELECT SUM(bytes) FROM reservations WHERE quota = ? AND day = ?), 0)`,
			r.Quota, r.Day, r.Quota, r.Day).Scan(&held); err != nil {
			return err
		}
		if held+r.Bytes > r.Limit {
			return fmt.Errorf("%w: %d bytes used or reserved, limit %d", store.ErrQuotaExceeded, held, r.Limit)
		}
		return tx.QueryRowContext(ctx, `INSERT INTO reservations (quota, day, source, bytes, created_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, r.Quota, r.Day, r.Source, r.Bytes, fmtTime(time.Now())).Scan(&id)
	})
	if err != nil {
		return 0, wrap(err)
	}
	return id, nil
}

// Release drops a reservation without charging it; an unknown id is not an error
// (ReleaseAll may have dropped it already).
func (s *Store) Release(ctx context.Context, id int64) error {
	return wrap(s.write(ctx, fmt.Sprintf("release reservation %d", id), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM reservations WHERE id = ?`, id)
		return err
	}))
}

// ChargeReservation converts a reservation to usage.
func (s *Store) ChargeReservation(ctx context.Context, id int64) error {
	return wrap(s.write(ctx, fmt.Sprintf("charge reservation %d", id), func(tx *sql.Tx) error {
		return charge(ctx, tx, id, nil)
	}))
}

// charge deletes reservation id and adds its bytes to usage. When the row is gone (a
// restart's ReleaseAll) the download still happened, so fallback, when it names a
// quota, is charged instead.
func charge(ctx context.Context, tx *sql.Tx, id int64, fallback *store.Reservation) error {
	var r store.Reservation
	err := tx.QueryRowContext(ctx, `DELETE FROM reservations WHERE id = ? RETURNING quota, day, source, bytes`, id).
		Scan(&r.Quota, &r.Day, &r.Source, &r.Bytes)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reservation %d: %w", id, err)
	}
	if r, err = plan.ChargeTarget(id, r, err == nil, fallback); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO usage (quota, day, source, bytes) VALUES (?, ?, ?, ?)
		ON CONFLICT (quota, day, source) DO UPDATE SET bytes = usage.bytes + excluded.bytes`,
		r.Quota, r.Day, r.Source, r.Bytes)
	if err != nil {
		return fmt.Errorf("charge reservation %d: %w", id, err)
	}
	return nil
}

// ReleaseAll drops every reservation.
func (s *Store) ReleaseAll(ctx context.Context) error {
	return wrap(s.write(ctx, "release all reservations", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM reservations`)
		return err
	}))
}

// Usage returns the bytes charged to quota on day, in total and per source.
func (s *Store) Usage(ctx context.Context, quota, day string) (int64, map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT source, bytes FROM usage WHERE quota = ? AND day = ?`, quota, day)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: usage of %s on %s: %w", quota, day, err)
	}
	defer rows.Close()
	total, per, err := plan.SumUsage(rows)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: usage of %s on %s: %w", quota, day, err)
	}
	return total, per, nil
}

// SourceUsage sums a quota's usage of a day, in total and of one source.
func (s *Store) SourceUsage(ctx context.Context, quota, day, source string) (int64, int64, error) {
	var total, own int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(CASE WHEN source = ? THEN bytes END), 0)
		FROM usage WHERE quota = ? AND day = ?`, source, quota, day).Scan(&total, &own)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: usage of %s on %s: %w", quota, day, err)
	}
	return total, own, nil
}

// SourceTotals returns a source's lifetime totals.
func (s *Store) SourceTotals(ctx context.Context, source string) (store.SourceTotals, error) {
	var t store.SourceTotals
	err := s.r.QueryRowContext(ctx, `SELECT conversations FROM source_totals WHERE source = ?`, source).Scan(&t.Conversations)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("sqlite: totals of %s: %w", source, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT validator, action, records, matches FROM source_pii_totals WHERE source = ? ORDER BY validator, action`, source)
	if err != nil {
		return t, fmt.Errorf("sqlite: PII totals of %s: %w", source, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p store.PIITotal
		if err := rows.Scan(&p.Validator, &p.Action, &p.Records, &p.Matches); err != nil {
			return t, fmt.Errorf("sqlite: PII totals of %s: %w", source, err)
		}
		t.PII = append(t.PII, p)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("sqlite: PII totals of %s: %w", source, err)
	}
	return t, nil
}

// wrap prefixes the backend's name and marks errors the content caused (see
// store.ErrRejected).
func wrap(err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("sqlite: %w", err)
	if rejected(err) {
		return store.Rejected(err)
	}
	return err
}

// SQLite's primary result codes for errors the written values cause.
const (
	codeTooBig     = 18 // SQLITE_TOOBIG: a string or blob over the length limit
	codeConstraint = 19 // SQLITE_CONSTRAINT: a CHECK, NOT NULL or key violation
	codeMismatch   = 20 // SQLITE_MISMATCH: a datatype mismatch
)

// rejected reports whether err was caused by the values written, not by the database
// (busy, I/O, disk full): writing them again fails the same way.
func rejected(err error) bool {
	if errors.Is(err, errOutOfRange) {
		return true
	}
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case codeTooBig, codeConstraint, codeMismatch:
		return true
	}
	return false
}
