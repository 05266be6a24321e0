// Package postgres is the conversation store on a PostgreSQL server (pgx, pgxpool).
//
// Concurrency: transactions run at READ COMMITTED and serialize only where a
// read-compare-write needs it, with transaction-scoped advisory locks released at commit:
//   - CommitFile locks its namespace for the whole commit, so two commits of the same
//     conversation never both compare against the same old row. A file is streamed into
//     its transaction, so the agents it touches are not known when it starts, and
//     locking them batch by batch could deadlock two commits; its namespace is known,
//     and every row a commit writes (conversations, the ledger row of its source, the
//     usage of its quota) belongs to that namespace. So commits of one namespace are
//     serialized, as SQLite's single writer serializes all commits, and commits of
//     different namespaces run concurrently: one tenant's large import does not hold
//     up another's. (Two namespaces whose names hash alike share a lock: that only
//     serializes them.)
//   - Reserve locks its (quota, day), so concurrent reservers — in any process — see
//     each other's reservations before deciding. A reservation never waits for a commit.
//
// What still serializes: commits of one namespace, reservations of one (quota, day),
// and migrations.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/internal/migrate"
	"github.com/avon-ai/data-import-operator/internal/store/internal/plan"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock namespaces (the first key of pg_advisory_xact_lock(int, int)).
const (
	lockMigrate int32 = iota + 1
	lockCommit
	lockQuota
)

// Store is an store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// committing admits this process's commits to the database: one per namespace (they
	// serialize on the namespace's advisory lock anyway) and at most half the pool in
	// all. Waiting here instead of on the lock keeps waiters from holding pool
	// connections that Reserve, lookups and readiness checks need.
	committing *gate
	// fences are the source fences (fence.go), on a session of their own.
	fences *fences
	// createStage creates a commit's stage table (see stageTable).
	createStage string
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.TotalsReader = (*Store)(nil)
)

// Open connects to the database at dsn (a postgres:// URL) and applies migrations. The
// DSN's password never appears in errors.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: parse DSN %s: %w", Redact(dsn), err), dsn)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: connect to %s: %w", Redact(dsn), err), dsn)
	}
	s := &Store{pool: pool, committing: newGate(max(1, int(cfg.MaxConns)/2)), fences: newFences(cfg.ConnConfig.Copy())}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, scrub(fmt.Errorf("postgres: open %s: %w", Redact(dsn), err), dsn)
	}
	if s.createStage, err = createStageSQL(ctx, pool); err != nil {
		pool.Close()
		return nil, scrub(fmt.Errorf("postgres: open %s: %w", Redact(dsn), err), dsn)
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.fences.close()
	s.pool.Close()
	return nil
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
	return s.write(ctx, "migrate", func(tx pgx.Tx) error {
		// Two processes opening a fresh database at once must not both create the tables.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockMigrate); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		if have > len(ms) {
			return fmt.Errorf("database schema version %d is newer than this binary's %d", have, len(ms))
		}
		for _, m := range ms[have:] {
			// No arguments: the simple protocol runs a multi-statement file.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// write runs fn in one transaction, naming op in any error.
func (s *Store) write(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// hash32 maps a lock key to the second advisory-lock key; collisions only serialize.
func hash32(parts ...string) int32 {
	h := fnv.New32a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return int32(h.Sum32())
}

// splitTime separates what timestamptz keeps (microseconds) from the rest.
func splitTime(t time.Time) (time.Time, int16) {
	return t.Truncate(time.Microsecond), int16(t.Nanosecond() % 1000)
}

func joinTime(t time.Time, ns int16) time.Time {
	return t.Add(time.Duration(ns)).UTC()
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
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, $15, $16)
	ON CONFLICT (source, key) DO UPDATE SET
		etag = excluded.etag, size = excluded.size, last_modified = excluded.last_modified,
		state = excluded.state, reason = excluded.reason, message = excluded.message,
		valid_count = excluded.valid_count, invalid_count = excluded.invalid_count,
		new_count = excluded.new_count, updated_count = excluded.updated_count,
		unchanged_count = excluded.unchanged_count, bytes = excluded.bytes,
		attempts = files.attempts + 1, updated_at = excluded.updated_at`

func upsertFile(ctx context.Context, tx pgx.Tx, f store.FileRecord) error {
	c := f.Counts
	_, err := tx.Exec(ctx, upsertFileSQL, f.Source, f.Key, f.ETag, f.Size, f.LastModified, string(f.State),
		f.Reason, f.Message, c.Valid, c.Invalid, c.New, c.Updated, c.Unchanged, f.Bytes,
		orNow(f.FirstSeen), orNow(f.UpdatedAt))
	if err != nil {
		return fmt.Errorf("ledger row %s/%s: %w", f.Source, f.Key, err)
	}
	return nil
}

func scanFile(row pgx.Row) (store.FileRecord, error) {
	var f store.FileRecord
	var state string
	err := row.Scan(&f.Source, &f.Key, &f.ETag, &f.Size, &f.LastModified, &state, &f.Reason, &f.Message,
		&f.Counts.Valid, &f.Counts.Invalid, &f.Counts.New, &f.Counts.Updated, &f.Counts.Unchanged,
		&f.Bytes, &f.Attempts, &f.FirstSeen, &f.UpdatedAt)
	f.State = store.FileState(state)
	f.LastModified, f.FirstSeen, f.UpdatedAt = f.LastModified.UTC(), f.FirstSeen.UTC(), f.UpdatedAt.UTC()
	return f, err
}

// LookupFile returns the ledger row of one object (a primary-key lookup).
func (s *Store) LookupFile(ctx context.Context, source, key string) (store.FileRecord, bool, error) {
	f, err := scanFile(s.pool.QueryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE source = $1 AND key = $2`, source, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.FileRecord{}, false, nil
	}
	if err != nil {
		return store.FileRecord{}, false, fmt.Errorf("postgres: lookup file %s/%s: %w", source, key, err)
	}
	return f, true, nil
}

// LookupFiles returns the ledger rows of keys in one query.
func (s *Store) LookupFiles(ctx context.Context, source string, keys []string) (map[string]store.FileRecord, error) {
	out := make(map[string]store.FileRecord, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+fileColumns+` FROM files WHERE source = $1 AND key = ANY($2)`, source, keys)
	if err != nil {
		return nil, fmt.Errorf("postgres: lookup %d files of %s: %w", len(keys), source, err)
	}
	defer rows.Close()
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: lookup files of %s: %w", source, err)
		}
		out[f.Key] = f
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: lookup files of %s: %w", source, err)
	}
	return out, nil
}

// ListFiles returns a source's ledger rows in state ("" for all), most recently updated
// first; limit <= 0 means no limit.
func (s *Store) ListFiles(ctx context.Context, source string, state store.FileState, limit int) ([]store.FileRecord, error) {
	q := `SELECT ` + fileColumns + ` FROM files WHERE source = $1`
	args := []any{source}
	if state != "" {
		q += ` AND state = $2`
		args = append(args, string(state))
	}
	q += ` ORDER BY updated_at DESC, key`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list files of %s: %w", source, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.FileRecord, error) { return scanFile(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list files of %s: %w", source, err)
	}
	return out, nil
}

// RecordFile upserts a ledger row alone.
func (s *Store) RecordFile(ctx context.Context, f store.FileRecord) error {
	return wrap(s.write(ctx, "record file "+f.Source+"/"+f.Key, func(tx pgx.Tx) error {
		return upsertFile(ctx, tx, f)
	}))
}

// DeleteSource removes a source's ledger rows and its outstanding reservations.
// Conversations stay, and so does charged usage: those bytes were downloaded that day.
func (s *Store) DeleteSource(ctx context.Context, source string) error {
	return wrap(s.write(ctx, "delete source "+source, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM files WHERE source = $1`, source); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM file_attempts WHERE source = $1`, source); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM source_totals WHERE source = $1`, source); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM source_pii_totals WHERE source = $1`, source); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM listing_state WHERE source = $1`, source); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM reservations WHERE source = $1`, source)
		return err
	}))
}

// RangeFiles returns the rows of source with after < key <= through (through "": no
// upper bound), in key order: a range scan of the primary key. The key column is
// COLLATE "C", so PostgreSQL compares it byte by byte, which is S3's listing order
// (a linguistic collation would put "a-b" after "a/c").
func (s *Store) RangeFiles(ctx context.Context, source, after, through string, limit int) ([]store.FileRecord, error) {
	q := `SELECT ` + fileColumns + ` FROM files WHERE source = $1 AND key > $2`
	args := []any{source, after}
	if through != "" {
		q += ` AND key <= $3`
		args = append(args, through)
	}
	q += ` ORDER BY key`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: range of files of %s: %w", source, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.FileRecord, error) { return scanFile(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: range of files of %s: %w", source, err)
	}
	return out, nil
}

// DeleteFiles deletes the rows of source with keys updated before olderThan.
func (s *Store) DeleteFiles(ctx context.Context, source string, keys []string, olderThan time.Time) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	var n int64
	err := s.write(ctx, "delete files of "+source, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM files WHERE source = $1 AND updated_at < $2 AND key = ANY ($3::text[])`,
			source, olderThan, keys)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrap(err)
	}
	return int(n), nil
}

// BeginAttempt counts an attempt to process version etag of source/key.
func (s *Store) BeginAttempt(ctx context.Context, source, key, etag string, fresh bool) (int, error) {
	var tries int
	err := s.write(ctx, "begin attempt "+source+"/"+key, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO file_attempts (source, key, etag, tries, updated_at)
			VALUES ($1, $2, $3, 1, now())
			ON CONFLICT (source, key) DO UPDATE SET
				tries = CASE WHEN file_attempts.etag = excluded.etag AND NOT $4 THEN file_attempts.tries + 1 ELSE 1 END,
				etag = excluded.etag, updated_at = excluded.updated_at
			RETURNING tries`, source, key, etag, fresh).Scan(&tries)
	})
	if err != nil {
		return 0, wrap(err)
	}
	return tries, nil
}

// EndAttempt clears (settled) or takes back (forgiven) the last attempt of source/key.
func (s *Store) EndAttempt(ctx context.Context, source, key string, outcome store.AttemptOutcome) error {
	q := `DELETE FROM file_attempts WHERE source = $1 AND key = $2`
	if outcome == store.AttemptForgiven {
		q = `UPDATE file_attempts SET tries = tries - 1 WHERE source = $1 AND key = $2 AND tries > 0`
	}
	return wrap(s.write(ctx, "end attempt "+source+"/"+key, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, q, source, key)
		return err
	}))
}

// CountFiles counts a source's ledger rows by state (the files_source_state index).
func (s *Store) CountFiles(ctx context.Context, source string) (map[store.FileState]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, COUNT(*) FROM files WHERE source = $1 GROUP BY state`, source)
	if err != nil {
		return nil, fmt.Errorf("postgres: count files of %s: %w", source, err)
	}
	defer rows.Close()
	out := map[store.FileState]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("postgres: count files of %s: %w", source, err)
		}
		out[store.FileState(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count files of %s: %w", source, err)
	}
	return out, nil
}

// ListingState reads a source's listing state.
func (s *Store) ListingState(ctx context.Context, source string) (store.ListingState, bool, error) {
	var st store.ListingState
	var marks string
	err := s.pool.QueryRow(ctx, `SELECT scope, last_full, marks::text FROM listing_state WHERE source = $1`, source).Scan(&st.Scope, &st.LastFull, &marks)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ListingState{}, false, nil
	}
	if err == nil {
		err = json.Unmarshal([]byte(marks), &st.Marks)
	}
	if err != nil {
		return store.ListingState{}, false, fmt.Errorf("postgres: listing state of %s: %w", source, err)
	}
	st.LastFull = st.LastFull.UTC()
	return st, true, nil
}

// SaveListingState replaces a source's listing state.
func (s *Store) SaveListingState(ctx context.Context, source string, st store.ListingState) error {
	if st.Marks == nil {
		st.Marks = []store.ListingMark{}
	}
	marks, err := json.Marshal(st.Marks)
	if err != nil {
		return fmt.Errorf("postgres: save listing state of %s: %w", source, err)
	}
	return wrap(s.write(ctx, "save listing state of "+source, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO listing_state (source, scope, last_full, marks) VALUES ($1, $2, $3, $4::json)
			ON CONFLICT (source) DO UPDATE SET scope = excluded.scope, last_full = excluded.last_full, marks = excluded.marks`,
			source, st.Scope, st.LastFull, string(marks))
		return err
	}))
}

// ---- conversations ----

const convColumns = `namespace, agent_id, conversation_id, activity_time, activity_time_ns, object_key,
	object_last_modified, object_last_modified_ns, position, content_hash, source, raw::text`

// CommitFile streams a file's conversations into one transaction, then writes its
// ledger row and usage; see plan.Commit and store.RecordOutcome. The transaction
// starts with the first full batch and takes the commit lock at once.
func (s *Store) CommitFile(ctx context.Context, c store.FileCommit) (store.RecordCounts, error) {
	leave := func() {}
	defer func() { leave() }()
	begin := func(ctx context.Context) (plan.Tx, error) {
		l, err := s.committing.enter(ctx, c.Namespace)
		if err != nil {
			return nil, err
		}
		leave = l
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockCommit, hash32(c.Namespace)); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("lock: %w", err)
		}
		return &commitTx{tx: tx, createStage: s.createStage}, nil
	}
	counts, err := plan.Commit(ctx, begin, c)
	if err != nil {
		return store.RecordCounts{}, wrap(fmt.Errorf("commit file %s/%s: %w", c.File.Source, c.File.Key, err))
	}
	return counts, nil
}

// commitTx adapts a transaction to plan.Tx.
type commitTx struct {
	tx pgx.Tx
	// stored is what the last Stored returned: plan.Commit looks each batch up, then
	// writes it, so Write knows which of its rows exist.
	stored map[plan.Key]store.Conversation
	// createStage creates the stage (see stageTable); staged: done in this transaction.
	createStage string
	staged      bool
}

func (t *commitTx) Stored(ctx context.Context, keys []plan.Key) (map[plan.Key]store.Conversation, error) {
	stored, err := loadStored(ctx, t.tx, keys)
	t.stored = stored
	return stored, err
}

// Write inserts the rows whose identity the batch's lookup did not find and upserts the
// others. No other commit can insert those identities meanwhile: every commit of the
// namespace holds its lock to the end of its transaction.
func (t *commitTx) Write(ctx context.Context, writes []*store.Conversation) error {
	var fresh, existing []*store.Conversation
	for _, c := range writes {
		if _, ok := t.stored[plan.KeyOf(c)]; ok {
			existing = append(existing, c)
		} else {
			fresh = append(fresh, c)
		}
	}
	if err := insertConversations(ctx, t.tx, fresh); err != nil {
		return err
	}
	if len(existing) > 0 && !t.staged {
		if _, err := t.tx.Exec(ctx, t.createStage); err != nil {
			return fmt.Errorf("create the stage: %w", err)
		}
		t.staged = true
	}
	return upsertConversations(ctx, t.tx, existing)
}

// UpsertFile writes the ledger row of a committed file, whose outcome is settled, so
// its processing attempts are cleared in the same transaction.
func (t *commitTx) UpsertFile(ctx context.Context, f store.FileRecord) error {
	if err := upsertFile(ctx, t.tx, f); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM file_attempts WHERE source = $1 AND key = $2`, f.Source, f.Key); err != nil {
		return fmt.Errorf("clear attempts of %s/%s: %w", f.Source, f.Key, err)
	}
	// The lifetime totals move with the commit that stores the conversations.
	if n := f.Counts.New + f.Counts.Updated; n > 0 {
		if _, err := t.tx.Exec(ctx, `INSERT INTO source_totals (source, conversations) VALUES ($1, $2)
			ON CONFLICT (source) DO UPDATE SET conversations = source_totals.conversations + excluded.conversations`, f.Source, n); err != nil {
			return fmt.Errorf("totals of %s: %w", f.Source, err)
		}
	}
	for _, p := range f.PII {
		if p.Records <= 0 {
			continue
		}
		if _, err := t.tx.Exec(ctx, `INSERT INTO source_pii_totals (source, validator, action, records, matches) VALUES ($1, $2, $3, $4, $5)
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

func (t *commitTx) Commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t *commitTx) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// loadStored reads the ordering fields and origin of the stored rows among keys, in
// one query.
func loadStored(ctx context.Context, tx pgx.Tx, keys []plan.Key) (map[plan.Key]store.Conversation, error) {
	namespaces := make([]string, len(keys))
	agents := make([]string, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		namespaces[i], agents[i], ids[i] = k.Namespace, k.AgentID, k.ConversationID
	}
	rows, err := tx.Query(ctx, `SELECT c.namespace, c.agent_id, c.conversation_id, c.activity_time, c.activity_time_ns,
			c.object_last_modified, c.object_last_modified_ns, c.object_key, c.position, c.content_hash, c.source
		FROM conversations c
		JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(namespace, agent_id, conversation_id)
			ON c.namespace = k.namespace AND c.agent_id = k.agent_id AND c.conversation_id = k.conversation_id`,
		namespaces, agents, ids)
	if err != nil {
		return nil, fmt.Errorf("read stored conversations: %w", err)
	}
	defer rows.Close()
	stored := make(map[plan.Key]store.Conversation)
	for rows.Next() {
		var c store.Conversation
		var atNs, lmNs int16
		if err := rows.Scan(&c.Namespace, &c.AgentID, &c.ConversationID, &c.ActivityTime, &atNs, &c.ObjectLastModified, &lmNs,
			&c.ObjectKey, &c.Position, &c.ContentHash, &c.Source); err != nil {
			return nil, fmt.Errorf("read stored conversations: %w", err)
		}
		c.ActivityTime, c.ObjectLastModified = joinTime(c.ActivityTime, atNs), joinTime(c.ObjectLastModified, lmNs)
		stored[plan.KeyOf(&c)] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stored conversations: %w", err)
	}
	return stored, nil
}

// stageTable holds one batch's updates on their way into conversations (COPY cannot
// upsert): COPY fills it, mergeSQL moves its rows into conversations and empties it. It
// is a temporary table of the session (no WAL, the session's own buffers), created if
// absent by the first update of each commit: on a connection's first, and again should a
// pooler hand out another session. ON COMMIT DELETE ROWS leaves it empty between
// transactions whatever happened. raw is JSON, parsed once here (the merge copies the
// value). It needs no CHECKs: its rows' identities are stored ones.
const stageTable = "conversations_stage"

// createStageSQL returns the statement creating the stage. Its raw is compressed as
// conversations.raw is (lz4 since migration 0006, where the server has it): PostgreSQL
// moves a compressed value into another table as it is, so the stage's compression is
// the one stored, and the value is compressed once.
func createStageSQL(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	// attcompression exists from PostgreSQL 14 on; through to_jsonb an older server
	// answers NULL (its default, pglz) instead of failing.
	var method *string
	if err := pool.QueryRow(ctx, `SELECT to_jsonb(a)->>'attcompression' FROM pg_attribute a
		WHERE attrelid = 'conversations'::regclass AND attname = 'raw'`).Scan(&method); err != nil {
		return "", fmt.Errorf("compression of conversations.raw: %w", err)
	}
	compression := ""
	switch {
	case method == nil:
	case *method == "l":
		compression = " COMPRESSION lz4"
	case *method == "p":
		compression = " COMPRESSION pglz"
	}
	return stageDDL(compression), nil
}

func stageDDL(compression string) string {
	return `CREATE TEMP TABLE IF NOT EXISTS ` + stageTable + ` (
		namespace               TEXT     NOT NULL,
		agent_id                TEXT     NOT NULL,
		conversation_id         TEXT     NOT NULL,
		activity_time           TIMESTAMPTZ NOT NULL,
		activity_time_ns        SMALLINT NOT NULL,
		object_key              TEXT     NOT NULL,
		object_last_modified    TIMESTAMPTZ NOT NULL,
		object_last_modified_ns SMALLINT NOT NULL,
		position                BIGINT   NOT NULL,
		content_hash            TEXT     NOT NULL,
		source                  TEXT     NOT NULL,
		raw                     JSON` + compression + ` NOT NULL
	) ON COMMIT DELETE ROWS`
}

var copyColumns = []string{"namespace", "agent_id", "conversation_id", "activity_time", "activity_time_ns", "object_key",
	"object_last_modified", "object_last_modified_ns", "position", "content_hash", "source", "raw"}

// mergeSQL upserts the staged rows whole and empties the stage, in one statement. Which
// rows win was decided before (plan.Build): every staged row is written. (updated_at is
// also the default of the column: a COPY of new rows leaves it to the transaction's
// time, as here.)
const mergeSQL = `WITH staged AS (DELETE FROM ` + stageTable + ` RETURNING *)
	INSERT INTO conversations (namespace, agent_id, conversation_id, activity_time, activity_time_ns, object_key,
		object_last_modified, object_last_modified_ns, position, content_hash, source, raw, updated_at)
	SELECT namespace, agent_id, conversation_id, activity_time, activity_time_ns, object_key,
		object_last_modified, object_last_modified_ns, position, content_hash, source, raw, now()
	FROM staged
	ON CONFLICT (namespace, agent_id, conversation_id) DO UPDATE SET
		activity_time = excluded.activity_time, activity_time_ns = excluded.activity_time_ns,
		object_key = excluded.object_key, object_last_modified = excluded.object_last_modified,
		object_last_modified_ns = excluded.object_last_modified_ns, position = excluded.position,
		content_hash = excluded.content_hash, source = excluded.source, raw = excluded.raw,
		updated_at = excluded.updated_at`

// insertConversations inserts rows no stored row shares an identity with, by one COPY
// straight into conversations: staging and merging them would write each twice.
func insertConversations(ctx context.Context, tx pgx.Tx, fresh []*store.Conversation) error {
	if len(fresh) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"conversations"}, copyColumns, &copyRows{writes: fresh, i: -1})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		// Not the content's doing (so not store.ErrRejected, which a unique violation
		// would be): a row the lookup did not find. Failing the commit lets it run again.
		return fmt.Errorf("insert %d new conversations: a conversation was stored meanwhile: %s", len(fresh), pe.Message)
	}
	if err != nil {
		return fmt.Errorf("insert %d new conversations: %w", len(fresh), locate(err, fresh))
	}
	return nil
}

// upsertConversations replaces stored rows: one COPY into the stage, one merge.
func upsertConversations(ctx context.Context, tx pgx.Tx, existing []*store.Conversation) error {
	if len(existing) == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, copyColumns, &copyRows{writes: existing, i: -1}); err != nil {
		return fmt.Errorf("update %d conversations: %w", len(existing), locate(err, existing))
	}
	if _, err := tx.Exec(ctx, mergeSQL); err != nil {
		return fmt.Errorf("update %d conversations: %w", len(existing), err)
	}
	return nil
}

// copyRows is writes as a pgx.CopyFromSource of copyColumns, row by row into one
// reused slice.
type copyRows struct {
	writes []*store.Conversation
	i      int
	row    [12]any
}

func (r *copyRows) Next() bool {
	r.i++
	return r.i < len(r.writes)
}

func (r *copyRows) Values() ([]any, error) {
	c := r.writes[r.i]
	at, atNs := splitTime(c.ActivityTime)
	lm, lmNs := splitTime(c.ObjectLastModified)
	// raw as []byte: pgx sends a JSON value's bytes as they are.
	r.row = [12]any{c.Namespace, c.AgentID, c.ConversationID, at, atNs, c.ObjectKey, lm, lmNs, c.Position, c.ContentHash, c.Source, c.Raw}
	return r.row[:], nil
}

func (r *copyRows) Err() error { return nil }

// copyLine finds the line in a COPY error's context ("COPY t, line 3, column raw: ...",
// after the context of a type's input function when it has one).
var copyLine = regexp.MustCompile(`(?m)^COPY \S+, line ([0-9]+)`)

// locate names the record of writes a COPY error's line points at (line n is writes[n-1]),
// keeping err (and so its SQLSTATE) wrapped. The server's context is left out: it
// quotes the record's content.
func locate(err error, writes []*store.Conversation) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	m := copyLine.FindStringSubmatch(pe.Where)
	if m == nil {
		return err
	}
	n, convErr := strconv.Atoi(m[1])
	if convErr != nil || n < 1 || n > len(writes) {
		return err
	}
	c := writes[n-1]
	return fmt.Errorf("conversation %s/%s (%s, position %d): %w", c.AgentID, c.ConversationID, c.ObjectKey, c.Position, err)
}

func scanConversation(row pgx.Row) (store.Conversation, error) {
	var c store.Conversation
	var atNs, lmNs int16
	var raw string
	err := row.Scan(&c.Namespace, &c.AgentID, &c.ConversationID, &c.ActivityTime, &atNs, &c.ObjectKey, &c.ObjectLastModified, &lmNs,
		&c.Position, &c.ContentHash, &c.Source, &raw)
	c.ActivityTime, c.ObjectLastModified = joinTime(c.ActivityTime, atNs), joinTime(c.ObjectLastModified, lmNs)
	c.Raw = []byte(raw)
	return c, err
}

// GetConversation finds one conversation by identity.
func (s *Store) GetConversation(ctx context.Context, namespace, agentID, conversationID string) (store.Conversation, bool, error) {
	c, err := scanConversation(s.pool.QueryRow(ctx, `SELECT `+convColumns+` FROM conversations
		WHERE namespace = $1 AND agent_id = $2 AND conversation_id = $3`, namespace, agentID, conversationID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Conversation{}, false, nil
	}
	if err != nil {
		return store.Conversation{}, false, fmt.Errorf("postgres: get conversation %s/%s/%s: %w", namespace, agentID, conversationID, err)
	}
	return c, true, nil
}

// ListConversations lists an agent's conversations in namespace by conversation_id
// (bytewise); limit <= 0 means no limit.
func (s *Store) ListConversations(ctx context.Context, namespace, agentID string, limit int) ([]store.Conversation, error) {
	q := `SELECT ` + convColumns + ` FROM conversations WHERE namespace = $1 AND agent_id = $2 ORDER BY conversation_id`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	out, err := s.queryConversations(ctx, q, namespace, agentID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list conversations of %s/%s: %w", namespace, agentID, err)
	}
	return out, nil
}

// DumpConversations returns every conversation by identity (tests compare dumps).
func (s *Store) DumpConversations(ctx context.Context) ([]store.Conversation, error) {
	out, err := s.queryConversations(ctx, `SELECT `+convColumns+` FROM conversations ORDER BY namespace, agent_id, conversation_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: dump conversations: %w", err)
	}
	return out, nil
}

func (s *Store) queryConversations(ctx context.Context, q string, args ...any) ([]store.Conversation, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Conversation, error) { return scanConversation(r) })
}

// ---- quota ----

// Reserve holds r.Bytes of r.Quota's r.Day when used + reserved + r.Bytes <= r.Limit.
// The (quota, day) advisory lock serializes reservers from the sum to the insert.
// CommitFile and ChargeReservation need not take it: they move bytes from reservations
// to usage in one transaction, which leaves the sum unchanged.
func (s *Store) Reserve(ctx context.Context, r store.Reservation) (int64, error) {
	if r.Bytes < 0 {
		return 0, fmt.Errorf("postgres: reserve %d bytes of %s on %s: negative size", r.Bytes, r.Quota, r.Day)
	}
	var id int64
	err := s.write(ctx, fmt.Sprintf("reserve %d bytes of %s on %s", r.Bytes, r.Quota, r.Day), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockQuota, hash32(r.Quota, r.Day)); err != nil {
			return err
		}
		var held int64
		if err := tx.QueryRow(ctx, `SELECT
			COALESCE((SELECT SUM(bytes) FROM usage WHERE quota = $1 AND day = $2), 0) +
			COALESCE((SELECT SUM(bytes) FROM reservations WHERE quota = $1 AND day = $2), 0)`,
			r.Quota, r.Day).Scan(&held); err != nil {
			return err
		}
		if held+r.Bytes > r.Limit {
			return fmt.Errorf("%w: %d bytes used or reserved, limit %d", store.ErrQuotaExceeded, held, r.Limit)
		}
		return tx.QueryRow(ctx, `INSERT INTO reservations (quota, day, source, bytes, created_at)
			VALUES ($1, $2, $3, $4, now()) RETURNING id`, r.Quota, r.Day, r.Source, r.Bytes).Scan(&id)
	})
	if err != nil {
		return 0, wrap(err)
	}
	return id, nil
}

// Release drops a reservation without charging it; an unknown id is not an error
// (ReleaseAll may have dropped it already).
func (s *Store) Release(ctx context.Context, id int64) error {
	return wrap(s.write(ctx, fmt.Sprintf("release reservation %d", id), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM reservations WHERE id = $1`, id)
		return err
	}))
}

// ChargeReservation converts a reservation to usage.
func (s *Store) ChargeReservation(ctx context.Context, id int64) error {
	return wrap(s.write(ctx, fmt.Sprintf("charge reservation %d", id), func(tx pgx.Tx) error {
		return charge(ctx, tx, id, nil)
	}))
}

// charge deletes reservation id and adds its bytes to usage. When the row is gone (a
// restart's ReleaseAll) the download still happened, so fallback, when it names a
// quota, is charged instead.
func charge(ctx context.Context, tx pgx.Tx, id int64, fallback *store.Reservation) error {
	var r store.Reservation
	err := tx.QueryRow(ctx, `DELETE FROM reservations WHERE id = $1 RETURNING quota, day, source, bytes`, id).
		Scan(&r.Quota, &r.Day, &r.Source, &r.Bytes)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("reservation %d: %w", id, err)
	}
	if r, err = plan.ChargeTarget(id, r, err == nil, fallback); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO usage (quota, day, source, bytes) VALUES ($1, $2, $3, $4)
		ON CONFLICT (quota, day, source) DO UPDATE SET bytes = usage.bytes + excluded.bytes`,
		r.Quota, r.Day, r.Source, r.Bytes)
	if err != nil {
		return fmt.Errorf("charge reservation %d: %w", id, err)
	}
	return nil
}

// ReleaseAll drops every reservation.
func (s *Store) ReleaseAll(ctx context.Context) error {
	return wrap(s.write(ctx, "release all reservations", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM reservations`)
		return err
	}))
}

// SourceTotals returns a source's lifetime totals.
func (s *Store) SourceTotals(ctx context.Context, source string) (store.SourceTotals, error) {
	var t store.SourceTotals
	err := s.pool.QueryRow(ctx, `SELECT conversations FROM source_totals WHERE source = $1`, source).Scan(&t.Conversations)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("postgres: totals of %s: %w", source, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT validator, action, records, matches FROM source_pii_totals WHERE source = $1 ORDER BY validator, action`, source)
	if err != nil {
		return t, fmt.Errorf("postgres: PII totals of %s: %w", source, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p store.PIITotal
		if err := rows.Scan(&p.Validator, &p.Action, &p.Records, &p.Matches); err != nil {
			return t, fmt.Errorf("postgres: PII totals of %s: %w", source, err)
		}
		t.PII = append(t.PII, p)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("postgres: PII totals of %s: %w", source, err)
	}
	return t, nil
}

// Usage returns the bytes charged to quota on day, in total and per source.
func (s *Store) Usage(ctx context.Context, quota, day string) (int64, map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT source, bytes FROM usage WHERE quota = $1 AND day = $2`, quota, day)
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: usage of %s on %s: %w", quota, day, err)
	}
	defer rows.Close()
	total, per, err := plan.SumUsage(rows)
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: usage of %s on %s: %w", quota, day, err)
	}
	return total, per, nil
}

// SourceUsage sums a quota's usage of a day, in total and of one source.
func (s *Store) SourceUsage(ctx context.Context, quota, day, source string) (int64, int64, error) {
	var total, own int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(SUM(bytes), 0)::bigint, COALESCE(SUM(bytes) FILTER (WHERE source = $3), 0)::bigint
		FROM usage WHERE quota = $1 AND day = $2`, quota, day, source).Scan(&total, &own)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: usage of %s on %s: %w", quota, day, err)
	}
	return total, own, nil
}

// wrap prefixes the backend's name and marks errors the content caused (see
// store.ErrRejected).
func wrap(err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("postgres: %w", err)
	if rejected(err) {
		return store.Rejected(err)
	}
	return err
}

// rejected reports whether err was caused by the values written: SQLSTATE classes 22
// (data exception: NUL in text, invalid JSON, a value out of range), 23 (integrity
// constraint: a CHECK) and 54 (program limit exceeded: an index row too large). Other
// errors (connection, shutdown, serialization, disk) are the database's.
func rejected(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
