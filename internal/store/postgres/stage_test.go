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

// stageRowsLeft counts the stage's rows as the pool's session sees them.
func stageRowsLeft(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+stageTable).Scan(&n); err != nil {
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
// the first was merged) fails the commit as store.ErrRejected, naming the record, and
// leaves nothing of the file: no conversation, no ledger row. The next commit on the same
// session succeeds.
func TestCommitRejectedMidCopy(t *testing.T) {
	ctx := context.Background()
	const at = 300 // past the first batch of plan.BatchSize
	for _, tc := range []struct {
		name string
		bad  func(c *store.Conversation)
		says string
	}{
		{"NUL in raw", func(c *store.Conversation) { c.Raw = []byte("{\"a\":\"x\x00y\"}") }, "0x00"},
		{"raw is not JSON", func(c *store.Conversation) { c.Raw = []byte(`{"conversation_id":`) }, "json"},
		{"empty conversation_id", func(c *store.Conversation) { c.ConversationID = "" }, "check constraint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openOneConn(t)
			convs := manyConvs(600, 0, "x")
			tc.bad(&convs[at])
			f := storetest.File("tenant-a/bucket-1", "bad.jsonl", time.Unix(0, 0).UTC(), convs...)
			_, err := s.CommitFile(ctx, f.FileCommit)
			if !errors.Is(err, store.ErrRejected) {
				t.Fatalf("CommitFile = %v, want store.ErrRejected", err)
			}
			for _, want := range []string{"bad.jsonl", fmt.Sprintf("position %d", at), "/" + f.Convs[at].ConversationID + " ", tc.says} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if got, err := s.DumpConversations(ctx); err != nil || len(got) != 0 {
				t.Errorf("after the rejected commit: %d conversations stored, %v; want none", len(got), err)
			}
			if _, ok, err := s.LookupFile(ctx, "tenant-a/bucket-1", "bad.jsonl"); ok || err != nil {
				t.Errorf("after the rejected commit: ledger row %v, %v; want none", ok, err)
			}

			good := storetest.File("tenant-a/bucket-1", "good.jsonl", time.Unix(0, 0).UTC(), manyConvs(300, 0, "y")...)
			if n, err := s.CommitFile(ctx, good.FileCommit); err != nil || n.New != 300 {
				t.Fatalf("the next commit = %+v, %v; want 300 new", n, err)
			}
			if got, err := s.DumpConversations(ctx); err != nil || len(got) != 300 {
				t.Errorf("after the next commit: %d conversations, %v; want 300", len(got), err)
			}
		})
	}
}

// Files that update, keep and add rows over several batches, on one session: each
// commit's counts and the stored rows follow store.Newer, and the stage is empty between
// commits.
func TestCommitUpdatesExistingRows(t *testing.T) {
	ctx := context.Background()
	s := openOneConn(t)
	lm := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	a := storetest.File("tenant-a/bucket-1", "a.jsonl", lm, manyConvs(600, 0, "v1")...)
	if n, err := s.CommitFile(ctx, a.FileCommit); err != nil || n != (store.RecordCounts{Valid: 600, New: 600}) {
		t.Fatalf("a.jsonl = %+v, %v; want 600 new", n, err)
	}
	if n := stageRowsLeft(t, s); n != 0 {
		t.Errorf("after a commit the stage holds %d rows", n)
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
		t.Errorf("after a commit the stage holds %d rows", n)
	}
	// The same object again: nothing moves.
	if n, err := s.CommitFile(ctx, b.FileCommit); err != nil || n != (store.RecordCounts{Valid: 600, Unchanged: 600}) {
		t.Fatalf("b.jsonl again = %+v, %v; want 600 unchanged", n, err)
	}
}
