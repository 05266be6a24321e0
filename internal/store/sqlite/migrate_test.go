package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/internal/migrate"
)

// openV1 creates a store file with only migration 1 applied, by the code that applies
// every migration, and returns a write handle on it.
func openV1(t *testing.T, path string) *sql.DB { return openAt(t, path, 1) }

// openAt is openV1 with the first n migrations applied.
func openAt(t *testing.T, path string, n int) *sql.DB {
	t.Helper()
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	w, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	if err := (&Store{w: w}).apply(context.Background(), ms[:n]); err != nil {
		t.Fatal(err)
	}
	return w
}

// A store written by the 0001 schema (conversations keyed by agent_id and
// conversation_id) opens with the current code: every row stays, and each conversation
// gets the namespace of the source that wrote it.
func TestMigrateConversationNamespace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	w := openV1(t, path)
	at := time.Date(2025, 1, 15, 14, 30, 0, 123456789, time.UTC)
	// Rows as the 0001 code wrote them.
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
		if _, err := w.ExecContext(ctx, `INSERT INTO conversations (agent_id, conversation_id, activity_time, object_key,
			object_last_modified, position, content_hash, source, raw, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.agent, c.id, fmtTime(at), "k/"+c.id+".json", fmtTime(at.Add(time.Hour)), 7, "hash-"+c.id, c.source,
			`{"conversation_id":"`+c.id+`","z":1,"z":2}`, fmtTime(at)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO files (source, key, etag, size, last_modified, state, reason, message,
		valid_count, invalid_count, new_count, updated_count, unchanged_count, bytes, attempts, first_seen, updated_at)
		VALUES ('tenant-a/bucket-1', 'k/c1.json', 'e1', 42, ?, 'ingested', 'Ingested', 'ok', 1, 2, 3, 4, 5, 42, 2, ?, ?)`,
		fmtTime(at), fmtTime(at), fmtTime(at)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO usage (quota, day, source, bytes) VALUES ('tenant-a/q', '2025-01-15', 'tenant-a/bucket-1', 30)`); err != nil {
		t.Fatal(err)
	}
	var resID int64
	if err := w.QueryRowContext(ctx, `INSERT INTO reservations (quota, day, source, bytes, created_at)
		VALUES ('tenant-a/q', '2025-01-15', 'tenant-a/bucket-1', 60, ?) RETURNING id`, fmtTime(at)).Scan(&resID); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open a 0001 store: %v", err)
	}
	defer s.Close()
	var version int
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != latestVersion(t) {
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
		want := store.Conversation{Namespace: c.wantNamespace, AgentID: c.agent, ConversationID: c.id, ActivityTime: at,
			ContentHash: "hash-" + c.id, Raw: []byte(`{"conversation_id":"` + c.id + `","z":1,"z":2}`),
			ObjectKey: "k/" + c.id + ".json", ObjectLastModified: at.Add(time.Hour), Position: 7, Source: c.source}
		if got.Namespace != want.Namespace || got.Source != want.Source || !got.ActivityTime.Equal(want.ActivityTime) ||
			!got.ObjectLastModified.Equal(want.ObjectLastModified) || got.ObjectKey != want.ObjectKey ||
			got.Position != want.Position || got.ContentHash != want.ContentHash || string(got.Raw) != string(want.Raw) {
			t.Errorf("%s: migrated row = %+v, want %+v", c.source, got, want)
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
	// Lookups by (namespace, agent_id) use the primary key's leading columns, in order.
	var plan strings.Builder
	rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT `+convColumns+` FROM conversations
		WHERE namespace = ? AND agent_id = ? ORDER BY conversation_id`, "tenant-a", "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "; ")
	}
	rows.Close()
	if p := plan.String(); !strings.Contains(p, "USING INDEX sqlite_autoindex_conversations_1 (namespace=? AND agent_id=?)") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("ListConversations plan: %s; want the primary key's index, no sort", p)
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
}

// A store written by the 0005 schema opens with the current code: 0006 rebuilds
// conversations without the CHECK (json_valid(raw)), every row (its raw exactly as it
// was) and the primary key kept.
func TestMigrateRawUnchecked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	w := openAt(t, path, 5)
	at := time.Date(2025, 1, 15, 14, 30, 0, 123456789, time.UTC)
	want := []store.Conversation{
		{Namespace: "tenant-a", AgentID: "agent-1", ConversationID: "c1", ActivityTime: at, ObjectKey: "k/a.json",
			ObjectLastModified: at.Add(time.Hour), Position: 3, ContentHash: "hash-1", Source: "tenant-a/bucket-1",
			Raw: []byte(`{"agent_id":"agent-1","conversation_id":"c1","text":"h\u00e9 \"q\""}`)},
		{Namespace: "tenant-b", AgentID: "agent-1", ConversationID: "c1", ActivityTime: at.Add(time.Minute), ObjectKey: "k/b.jsonl",
			ObjectLastModified: at.Add(2 * time.Hour), Position: 0, ContentHash: "hash-2", Source: "tenant-b/bucket-1",
			Raw: []byte(`{"agent_id":"agent-1","conversation_id":"c1","n":[1,2.50,{}]}`)},
	}
	for _, c := range want {
		if _, err := w.ExecContext(ctx, `INSERT INTO conversations (namespace, agent_id, conversation_id, activity_time, object_key,
			object_last_modified, position, content_hash, source, raw, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Namespace, c.AgentID, c.ConversationID, fmtTime(c.ActivityTime), c.ObjectKey, fmtTime(c.ObjectLastModified),
			c.Position, c.ContentHash, c.Source, string(c.Raw), fmtTime(at)); err != nil {
			t.Fatal(err)
		}
	}
	// The 0005 schema refuses a raw that is not JSON.
	if _, err := w.ExecContext(ctx, `INSERT INTO conversations (namespace, agent_id, conversation_id, activity_time, object_key,
		object_last_modified, position, content_hash, source, raw, updated_at) VALUES ('n', 'a', 'c', '', '', '', 0, '', '', '{', '')`); err == nil {
		t.Fatal("the 0005 schema stored a raw that is not JSON; the test does not start from 0005")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open a 0005 store: %v", err)
	}
	defer s.Close()
	var version int
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != 6 {
		t.Fatalf("schema version = %d, %v; want 6", version, err)
	}
	var schema string
	if err := s.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'conversations'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(schema, "json_valid") || !strings.Contains(schema, "PRIMARY KEY (namespace, agent_id, conversation_id)") {
		t.Errorf("conversations after 0006:\n%s\nwant no json_valid CHECK and the same primary key", schema)
	}
	got, err := s.DumpConversations(ctx)
	if err != nil || len(got) != len(want) {
		t.Fatalf("DumpConversations = %d rows, %v; want %d", len(got), err, len(want))
	}
	for i, c := range want {
		g := got[i]
		if g.Namespace != c.Namespace || g.AgentID != c.AgentID || g.ConversationID != c.ConversationID ||
			!g.ActivityTime.Equal(c.ActivityTime) || !g.ObjectLastModified.Equal(c.ObjectLastModified) ||
			g.ObjectKey != c.ObjectKey || g.Position != c.Position || g.ContentHash != c.ContentHash ||
			g.Source != c.Source || string(g.Raw) != string(c.Raw) {
			t.Errorf("migrated row %d = %+v, want %+v", i, g, c)
		}
	}
	var typ string
	if err := s.r.QueryRowContext(ctx, `SELECT DISTINCT typeof(raw) FROM conversations`).Scan(&typ); err != nil || typ != "text" {
		t.Errorf("typeof(raw) = %q, %v; want text", typ, err)
	}
	// The de-dup lookup finds the migrated rows: the same record again is Unchanged.
	n, err := s.CommitFile(ctx, store.FileCommit{Namespace: "tenant-a",
		File:          store.FileRecord{Source: "tenant-a/bucket-1", Key: "k/a.json", State: store.FileIngested, LastModified: at.Add(time.Hour)},
		Conversations: store.StreamOf(want[0])})
	if err != nil || n.Unchanged != 1 {
		t.Errorf("commit the migrated record again = %+v, %v; want 1 unchanged", n, err)
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
