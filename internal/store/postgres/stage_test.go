package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/storetest"
)

// openOneConn opens a store whose commits all run on one server session, so the stage
// table one commit leaves behind is the one the next commit finds.
func openOneConn(t *testing.T) *Store {
	return openDSN(t, server.NewDatabase(t)+"&pool_max_conns=1")
}

// stageRowsLeft counts the stage's rows as the pool's session sees them; -1: the
// session has no stage.
func stageRowsLeft(t *testing.T, s *Store) int {
	t.Helper()
	ctx := context.Background()
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('pg_temp.`+stageTable+`') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		return -1
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+stageTable).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// manyConvs is n conversations of agent-2, c0000…, at day0 + shift.
func manyConvs(n int, shift time.Duration, body string) []store.Conversation {
	day0 := time.Date(2025, 1, 15, 14, 30, 0, 0, time.UTC)
	out := make([]store.Conversation, n)
	for i := range out {
		out[i] = storetest.Conv("agent-2", fmt.Sprintf("c%04d", i), day0.Add(shift), body)
	}
	return out
}

// A record PostgreSQL refuses in the middle of a COPY (here in the second batch, after
// the first was written), whether new (copied into conversations) or an update (copied
// into the stage), fails the commit as store.ErrRejected, naming the record, and leaves
// nothing of the file: no conversation, no ledger row. The next commit on the same
// session succeeds.
func TestCommitRejectedMidCopy(t *testing.T) {
	ctx := context.Background()
	const at = 300 // past the first batch of plan.BatchSize
	lm := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		bad  func(c *store.Conversation)
		says string
		// newOnly: the bad record changes its identity, which then is new.
		newOnly bool
	}{
		{"NUL in raw", func(c *store.Conversation) { c.Raw = []byte("{\"a\":\"x\x00y\"}") }, "0x00", false},
		{"raw is not JSON", func(c *store.Conversation) { c.Raw = []byte(`{"conversation_id":`) }, "json", false},
		{"empty conversation_id", func(c *store.Conversation) { c.ConversationID = "" }, "check constraint", true},
	} {
		for _, update := range []bool{false, true} {
			if update && tc.newOnly {
				continue
			}
			t.Run(fmt.Sprintf("%s/update=%v", tc.name, update), func(t *testing.T) {
				s := openOneConn(t)
				var before []store.Conversation
				if update {
					old := storetest.File("tenant-a/bucket-1", "old.jsonl", lm, manyConvs(600, -time.Hour, "old")...)
					if n, err := s.CommitFile(ctx, old.FileCommit); err != nil || n.New != 600 {
						t.Fatalf("old.jsonl = %+v, %v", n, err)
					}
					before = storetest.Expected([]storetest.Commit{old})
				}
				convs := manyConvs(600, 0, "x")
				tc.bad(&convs[at])
				f := storetest.File("tenant-a/bucket-1", "bad.jsonl", lm, convs...)
				_, err := s.CommitFile(ctx, f.FileCommit)
				if !errors.Is(err, store.ErrRejected) {
					t.Fatalf("CommitFile = %v, want store.ErrRejected", err)
				}
				for _, want := range []string{"bad.jsonl", fmt.Sprintf("position %d", at), "/" + f.Convs[at].ConversationID + " ", tc.says} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				got, err := s.DumpConversations(ctx)
				if err != nil || len(got) != len(before) {
					t.Fatalf("after the rejected commit: %d conversations stored, %v; want %d", len(got), err, len(before))
				}
				for i := range got {
					if got[i].ObjectKey != "old.jsonl" || string(got[i].Raw) != string(before[i].Raw) {
						t.Fatalf("after the rejected commit: conversation %d is %s@%d %s", i, got[i].ObjectKey, got[i].Position, got[i].Raw)
					}
				}
				if _, ok, err := s.LookupFile(ctx, "tenant-a/bucket-1", "bad.jsonl"); ok || err != nil {
					t.Errorf("after the rejected commit: ledger row %v, %v; want none", ok, err)
				}

				good := storetest.File("tenant-a/bucket-1", "good.jsonl", lm, manyConvs(300, time.Minute, "y")...)
				if _, err := s.CommitFile(ctx, good.FileCommit); err != nil {
					t.Fatalf("the next commit: %v", err)
				}
				if got, err := s.DumpConversations(ctx); err != nil || len(got) != max(300, len(before)) || got[0].ObjectKey != "good.jsonl" {
					t.Errorf("after the next commit: %d conversations, %v", len(got), err)
				}
			})
		}
	}
}

// A row the batch's lookup did not see (which the namespace lock rules out) fails the
// insert without store.ErrRejected: the content is not at fault, and the file may be
// committed again.
func TestInsertOfAStoredConversationIsNotRejected(t *testing.T) {
	ctx := context.Background()
	s := openOneConn(t)
	f := storetest.File("tenant-a/bucket-1", "a.jsonl", time.Unix(0, 0).UTC(), manyConvs(3, 0, "x")...)
	if _, err := s.CommitFile(ctx, f.FileCommit); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	ct := &commitTx{tx: tx} // no lookup: the rows count as new
	err = ct.Write(ctx, []*store.Conversation{&f.Convs[1]})
	if err == nil || errors.Is(wrap(err), store.ErrRejected) || !strings.Contains(err.Error(), "stored meanwhile") {
		t.Fatalf("Write of a stored row as new = %v, want an error not marked rejected", err)
	}
}

// Files that update, keep and add rows over several batches, on one session: each
// commit's counts and the stored rows follow store.Newer; new rows never go through the
// stage, and the stage is empty between commits.
func TestCommitUpdatesExistingRows(t *testing.T) {
	ctx := context.Background()
	s := openOneConn(t)
	lm := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	a := storetest.File("tenant-a/bucket-1", "a.jsonl", lm, manyConvs(600, 0, "v1")...)
	if n, err := s.CommitFile(ctx, a.FileCommit); err != nil || n != (store.RecordCounts{Valid: 600, New: 600}) {
		t.Fatalf("a.jsonl = %+v, %v; want 600 new", n, err)
	}
	if n := stageRowsLeft(t, s); n != -1 {
		t.Errorf("after a commit of new conversations the session has a stage (%d rows)", n)
	}

	// b: c0000-c0199 newer, c0200-c0399 the same records, c0400-c0499 older, and 100
	// conversations a does not have; the same object key, so only content and time differ.
	newer, older := manyConvs(600, time.Hour, "v2"), manyConvs(600, -time.Hour, "v0")
	var convs []store.Conversation
	convs = append(convs, newer[:200]...)
	convs = append(convs, a.Convs[200:400]...)
	convs = append(convs, older[400:500]...)
	for i := range 100 {
		convs = append(convs, storetest.Conv("agent-3", fmt.Sprintf("n%04d", i), lm, "new"))
	}
	b := storetest.File("tenant-a/bucket-1", "b.jsonl", lm.Add(time.Hour), convs...)
	if n, err := s.CommitFile(ctx, b.FileCommit); err != nil || n != (store.RecordCounts{Valid: 600, New: 100, Updated: 200, Unchanged: 300}) {
		t.Fatalf("b.jsonl = %+v, %v; want 100 new, 200 updated, 300 unchanged", n, err)
	}
	got, err := s.DumpConversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := storetest.Expected([]storetest.Commit{a, b})
	if len(got) != len(want) {
		t.Fatalf("%d conversations stored, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.AgentID != w.AgentID || g.ConversationID != w.ConversationID || g.ContentHash != w.ContentHash ||
			string(g.Raw) != string(w.Raw) || g.ObjectKey != w.ObjectKey || g.Position != w.Position ||
			!g.ActivityTime.Equal(w.ActivityTime) || !g.ObjectLastModified.Equal(w.ObjectLastModified) {
			t.Errorf("conversation %d: got %s/%s %s %s@%d, want %s/%s %s %s@%d", i, g.AgentID, g.ConversationID, g.ContentHash[:8], g.ObjectKey, g.Position,
				w.AgentID, w.ConversationID, w.ContentHash[:8], w.ObjectKey, w.Position)
		}
	}
	if n := stageRowsLeft(t, s); n != 0 {
		t.Errorf("after a commit of updates the stage holds %d rows (-1: none)", n)
	}
	// The same object again: nothing moves.
	if n, err := s.CommitFile(ctx, b.FileCommit); err != nil || n != (store.RecordCounts{Valid: 600, Unchanged: 600}) {
		t.Fatalf("b.jsonl again = %+v, %v; want 600 unchanged", n, err)
	}
}
