package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/internal/migrate"
)

// A database written by the 0001 schema (conversations keyed by agent_id and
// conversation_id) opens with the current code: every row stays, and each conversation
// gets the namespace of the source that wrote it.
func TestMigrateConversationNamespace(t *testing.T) {
	ctx := context.Background()
	dsn := server.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	// Only migration 1, applied by the code that applies every migration.
	if err := (&Store{pool: pool}).apply(ctx, ms[:1]); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 15, 14, 30, 0, 123456789, time.UTC)
	atUs, atNs := splitTime(at)
	lmUs, lmNs := splitTime(at.Add(time.Hour))
	convs := []struct {
		source, agent, id, wantNamespace string
	}{
		{"tenant-a/bucket-1", "agent-1", "c1", "tenant-a"},
		{"tenant-a/bucket-2", "agent-1", "c2", "tenant-a"},
		{"tenant-b/bucket-1", "agent-2", "c1", "tenant-b"},
		{"hand-written", "agent-3", "c1", "default"},
		{"/leading-slash", "agent-4", "c1", "default"},
	}
	for _, c := range convs {
		if _, err := pool.Exec(ctx, `INSERT INTO conversations (agent_id, conversation_id, activity_time, activity_time_ns,
			object_key, object_last_modified, object_last_modified_ns, position, content_hash, source, raw, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 7, $8, $9, $10::json, now())`,
			c.agent, c.id, atUs, atNs, "k/"+c.id+".json", lmUs, lmNs, "hash-"+c.id, c.source,
			`{"conversation_id":"`+c.id+`","z":1,"z":2}`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO files (source, key, etag, size, last_modified, state, reason, message,
		valid_count, invalid_count, new_count, updated_count, unchanged_count, bytes, attempts, first_seen, updated_at)
		VALUES ('tenant-a/bucket-1', 'k/c1.json', 'e1', 42, $1, 'ingested', 'Ingested', 'ok', 1, 2, 3, 4, 5, 42, 2, $1, $1)`, at); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usage (quota, day, source, bytes) VALUES ('tenant-a/q', '2025-01-15', 'tenant-a/bucket-1', 30)`); err != nil {
		t.Fatal(err)
	}
	var resID int64
	if err := pool.QueryRow(ctx, `INSERT INTO reservations (quota, day, source, bytes, created_at)
		VALUES ('tenant-a/q', '2025-01-15', 'tenant-a/bucket-1', 60, now()) RETURNING id`).Scan(&resID); err != nil {
		t.Fatal(err)
	}
	pool.Close()

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open a 0001 database: %v", err)
	}
	defer s.Close()
	var version int
	if err := s.pool.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != latestVersion(t) {
		t.Fatalf("schema version = %d, %v; want %d", version, err, latestVersion(t))
	}
	// 0003 starts each source's lifetime totals from its ledger rows (new 3 + updated 4).
	if tot, err := s.SourceTotals(ctx, "tenant-a/bucket-1"); err != nil || tot.Conversations != 7 {
		t.Errorf("SourceTotals after 0003 = %+v, %v; want 7 conversations", tot, err)
	}
	for _, c := range convs {
		got, ok, err := s.GetConversation(ctx, c.wantNamespace, c.agent, c.id)
		if err != nil || !ok {
			t.Errorf("%s: GetConversation(%s, %s, %s) = %v, %v", c.source, c.wantNamespace, c.agent, c.id, ok, err)
			continue
		}
		if got.Namespace != c.wantNamespace || got.Source != c.source || !got.ActivityTime.Equal(at) ||
			!got.ObjectLastModified.Equal(at.Add(time.Hour)) || got.ObjectKey != "k/"+c.id+".json" || got.Position != 7 ||
			got.ContentHash != "hash-"+c.id || string(got.Raw) != `{"conversation_id":"`+c.id+`","z":1,"z":2}` {
			t.Errorf("%s: migrated row = %+v", c.source, got)
		}
	}
	all, err := s.DumpConversations(ctx)
	if err != nil || len(all) != len(convs) {
		t.Errorf("DumpConversations = %d rows, %v; want %d", len(all), err, len(convs))
	}
	f, ok, err := s.LookupFile(ctx, "tenant-a/bucket-1", "k/c1.json")
	if err != nil || !ok || f.Counts != (store.RecordCounts{Valid: 1, Invalid: 2, New: 3, Updated: 4, Unchanged: 5}) || f.Attempts != 2 || f.Bytes != 42 {
		t.Errorf("ledger row = %+v, %v, %v", f, ok, err)
	}
	// The outstanding reservation is still held: 30 used + 60 held + 11 > 100.
	r := store.Reservation{Quota: "tenant-a/q", Day: "2025-01-15", Source: "tenant-a/bucket-1", Bytes: 11, Limit: 100}
	if _, err := s.Reserve(ctx, r); err == nil {
		t.Error("Reserve ignored the migrated reservation")
	}
	if err := s.ChargeReservation(ctx, resID); err != nil {
		t.Errorf("ChargeReservation(migrated %d): %v", resID, err)
	}
	if total, _, err := s.Usage(ctx, "tenant-a/q", "2025-01-15"); err != nil || total != 90 {
		t.Errorf("Usage = %d, %v; want 30 migrated + 60 charged", total, err)
	}
	// The new identity holds: tenant-b may now store agent-1/c1 beside tenant-a's.
	n, err := s.CommitFile(ctx, store.FileCommit{Namespace: "tenant-b",
		File: store.FileRecord{Source: "tenant-b/bucket-1", Key: "b.json", State: store.FileIngested},
		Conversations: store.StreamOf(store.Conversation{AgentID: "agent-1", ConversationID: "c1", ActivityTime: at.Add(time.Hour),
			ContentHash: "b", Raw: []byte(`{}`), ObjectKey: "b.json", Source: "tenant-b/bucket-1"})})
	if err != nil || n.New != 1 {
		t.Errorf("commit agent-1/c1 in tenant-b = %+v, %v; want 1 new", n, err)
	}
	if got, _, _ := s.GetConversation(ctx, "tenant-a", "agent-1", "c1"); got.ContentHash != "hash-c1" {
		t.Errorf("tenant-a's migrated agent-1/c1 was replaced: %+v", got)
	}
	// Lookups by (namespace, agent_id) use the primary key's leading columns.
	var idx string
	if err := s.pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'conversations_pkey'`).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	if want := "(namespace, agent_id, conversation_id)"; !strings.Contains(idx, want) {
		t.Errorf("primary key index = %s, want it on %s", idx, want)
	}
}

// latestVersion is the version of the newest embedded migration.
func latestVersion(t *testing.T) int {
	t.Helper()
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return ms[len(ms)-1].Version
}

// A database at 0005 opens with 0006: its stored values stay as they were (pglz, read
// back byte for byte), and values written from then on are compressed with lz4, whether
// inserted (copied into conversations) or updated (through the stage); updated_at
// defaults to the transaction's time.
func TestMigrateRawLZ4(t *testing.T) {
	ctx := context.Background()
	dsn := server.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Store{pool: pool}).apply(ctx, ms[:5]); err != nil {
		t.Fatal(err)
	}
	// Compressible and past the 2 kB at which PostgreSQL compresses a row's values.
	raw := func(id, version string) string {
		return `{"conversation_id":"` + id + `","v":"` + version + `","body":"` + strings.Repeat("I was charged twice. ", 400) + `"}`
	}
	at := time.Date(2025, 1, 15, 14, 30, 0, 0, time.UTC)
	for _, id := range []string{"kept", "updated"} {
		if _, err := pool.Exec(ctx, `INSERT INTO conversations (namespace, agent_id, conversation_id, activity_time, activity_time_ns,
			object_key, object_last_modified, object_last_modified_ns, position, content_hash, source, raw, updated_at)
			VALUES ('tenant-a', 'agent-1', $1, $2, 0, 'k/old.json', $2, 0, 0, 'h-old', 'tenant-a/b', $3::json, now())`,
			id, at, raw(id, "old")); err != nil {
			t.Fatal(err)
		}
	}
	pool.Close()

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open a 0005 database: %v", err)
	}
	defer s.Close()
	var method string
	if err := s.pool.QueryRow(ctx, `SELECT attcompression::text FROM pg_attribute
		WHERE attrelid = 'conversations'::regclass AND attname = 'raw'`).Scan(&method); err != nil || method != "l" {
		t.Fatalf("conversations.raw compression = %q, %v; want l (lz4)", method, err)
	}
	var convs []store.Conversation
	for _, id := range []string{"new", "updated"} {
		convs = append(convs, store.Conversation{AgentID: "agent-1", ConversationID: id, ActivityTime: at.Add(time.Hour), ContentHash: "h-new",
			Raw: []byte(raw(id, "new")), ObjectKey: "k/new.json", ObjectLastModified: at, Source: "tenant-a/b"})
	}
	n, err := s.CommitFile(ctx, store.FileCommit{Namespace: "tenant-a",
		File:          store.FileRecord{Source: "tenant-a/b", Key: "k/new.json", State: store.FileIngested},
		Conversations: store.StreamOf(convs...)})
	if err != nil || n.New != 1 || n.Updated != 1 {
		t.Fatalf("commit = %+v, %v; want 1 new, 1 updated", n, err)
	}
	for id, want := range map[string]struct{ version, method string }{"kept": {"old", "pglz"}, "updated": {"new", "lz4"}, "new": {"new", "lz4"}} {
		got, ok, err := s.GetConversation(ctx, "tenant-a", "agent-1", id)
		if err != nil || !ok || string(got.Raw) != raw(id, want.version) {
			t.Errorf("%s: GetConversation = %v, %v, raw intact %v", id, ok, err, string(got.Raw) == raw(id, want.version))
		}
		var method string
		var fresh bool
		if err := s.pool.QueryRow(ctx, `SELECT pg_column_compression(raw), updated_at > now() - interval '1 minute'
			FROM conversations WHERE conversation_id = $1`, id).Scan(&method, &fresh); err != nil || method != want.method || !fresh {
			t.Errorf("%s: raw compressed with %q, updated now %v, %v; want %s", id, method, fresh, err, want.method)
		}
	}
}
