package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/internal/migrate"
	"github.com/avon-ai/data-import-operator/internal/store/storetest"
)

func open(tb testing.TB) store.Store {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "store.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

// Two handles on one file (two processes' worth) share the write lock.
func TestReserveTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	a, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	storetest.ReserveConcurrent(t, a, b)
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "store.db")
	for i := 0; i < 3; i++ {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		var n, max int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		if n != len(ms) || max != len(ms) {
			t.Errorf("open %d: schema_migrations has %d rows up to version %d, want %d rows, version %d", i, n, max, len(ms), len(ms))
		}
		var mode string
		if err := s.r.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		// The writer's commit pragmas (see writerPragmas) are in effect.
		var cache, temp int
		if err := s.w.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil || cache != -16384 {
			t.Errorf("writer cache_size = %d, %v; want -16384", cache, err)
		}
		if err := s.w.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&temp); err != nil || temp != 2 {
			t.Errorf("writer temp_store = %d, %v; want 2 (memory)", temp, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for _, p := range []string{"", "/tmp/x.db?mode=ro", filepath.Join(t.TempDir(), "missing-dir", "x.db")} {
		if s, err := Open(context.Background(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
}

func BenchmarkCommitFile(b *testing.B) {
	storetest.BenchmarkCommitFile(b, open)
}

// File commits are checkpointed into the database file by the checkpointer, not by the
// commit: right after a commit of more than checkpointBytes its pages are in the WAL
// (the writer's own automatic checkpoint is far above), and the database file grows to
// hold them soon after, while the store stays open.
func TestCheckpointAfterCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	raw := []byte(`{"text":"` + strings.Repeat("x", 4000) + `"}`)
	var convs []store.Conversation
	for i := range checkpointBytes/len(raw) + 64 {
		convs = append(convs, store.Conversation{AgentID: "a", ConversationID: fmt.Sprintf("c%05d", i),
			ActivityTime: time.Unix(0, 0), ContentHash: "h", Raw: raw, ObjectKey: "k.json", Source: "ns/s"})
	}
	n, err := s.CommitFile(ctx, store.FileCommit{Namespace: "ns",
		File:          store.FileRecord{Source: "ns/s", Key: "k.json", State: store.FileIngested, LastModified: time.Unix(0, 0)},
		Conversations: store.StreamOf(convs...)})
	if err != nil || n.New != int64(len(convs)) {
		t.Fatalf("CommitFile = %+v, %v", n, err)
	}
	// Liveness, not speed: the checkpoint runs beside the caller, so wait for it.
	deadline := time.Now().Add(time.Minute)
	for size() < checkpointBytes {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (was %d) a minute after committing %d bytes: no checkpoint", size(), before, len(convs)*len(raw))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every row is readable after the checkpoint, on the read pool.
	if all, err := s.DumpConversations(ctx); err != nil || len(all) != len(convs) {
		t.Errorf("DumpConversations = %d rows, %v; want %d", len(all), err, len(convs))
	}
}

// Raw is bound as bytes and stored as text: SQL on the column (json_extract, LIKE)
// sees the record's JSON text, as before, and an empty Raw stays an empty string.
func TestRawStoredAsText(t *testing.T) {
	ctx := context.Background()
	s := open(t).(*Store)
	raw := `{"conversation_id":"c1","text":"héllo \u2028 \"q\" 😀"}`
	convs := []store.Conversation{
		{AgentID: "a", ConversationID: "c1", ContentHash: "h1", Raw: []byte(raw), ObjectKey: "k.json", Source: "ns/s"},
		{AgentID: "a", ConversationID: "c2", ContentHash: "h2", ObjectKey: "k.json", Source: "ns/s"},
	}
	if _, err := s.CommitFile(ctx, store.FileCommit{Namespace: "ns",
		File:          store.FileRecord{Source: "ns/s", Key: "k.json", State: store.FileIngested},
		Conversations: store.StreamOf(convs...)}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"c1": raw, "c2": ""} {
		var typ, got string
		if err := s.r.QueryRowContext(ctx, `SELECT typeof(raw), raw FROM conversations WHERE conversation_id = ?`, id).Scan(&typ, &got); err != nil {
			t.Fatal(err)
		}
		if typ != "text" || got != want {
			t.Errorf("%s: raw is %s %q, want text %q", id, typ, got, want)
		}
	}
	var text string
	if err := s.r.QueryRowContext(ctx, `SELECT json_extract(raw, '$.text') FROM conversations WHERE conversation_id = 'c1'`).Scan(&text); err != nil || text != "héllo \u2028 \"q\" 😀" {
		t.Errorf("json_extract(raw, '$.text') = %q, %v", text, err)
	}
}
