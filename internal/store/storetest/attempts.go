package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// testAttempts: attempts count per object version, before processing; a commit clears
// them, a forgiven attempt does not count, another version or fresh starts at 1, and
// deleting the source forgets them.
func testAttempts(t *testing.T, s store.Store) {
	begin := func(key, etag string, fresh bool, want int) {
		t.Helper()
		got, err := s.BeginAttempt(ctx, source, key, etag, fresh)
		if err != nil || got != want {
			t.Fatalf("BeginAttempt(%s, %s, fresh=%v) = %d, %v; want %d", key, etag, fresh, got, err, want)
		}
	}
	end := func(key string, o store.AttemptOutcome) {
		t.Helper()
		if err := s.EndAttempt(ctx, source, key, o); err != nil {
			t.Fatalf("EndAttempt(%s, %d): %v", key, o, err)
		}
	}
	begin("a.json", "e1", false, 1)
	begin("a.json", "e1", false, 2)
	begin("a.json", "e1", false, 3)
	end("a.json", store.AttemptForgiven)
	begin("a.json", "e1", false, 3)
	begin("a.json", "e2", false, 1) // a new version
	begin("a.json", "e2", false, 2)
	begin("a.json", "e2", true, 1) // a user asked to retry
	end("a.json", store.AttemptSettled)
	begin("a.json", "e2", false, 1)
	end("b.json", store.AttemptForgiven) // no row: nothing to do
	end("b.json", store.AttemptSettled)

	// A commit of the object settles it.
	begin("c.json", "etag-c.json", false, 1)
	begin("c.json", "etag-c.json", false, 2)
	commit(t, s, File(source, "c.json", day0, Conv("agent-1", "c-1", day0, "x")))
	begin("c.json", "etag-c.json", false, 1)

	if err := s.DeleteSource(ctx, source); err != nil {
		t.Fatal(err)
	}
	begin("a.json", "e2", false, 1)
}

// testRejected: a write the content makes impossible (here an empty agent_id, which
// both schemas refuse) is marked store.ErrRejected, rolls back whole, and the store
// stays usable; errors of a store that is gone are not marked.
func testRejected(t *testing.T, s store.Store) {
	bad := File(source, "bad.json", day0, Conv("agent-1", "ok-1", day0, "x"), Conv("", "empty-agent", day0, "y"))
	_, err := s.CommitFile(ctx, bad.FileCommit)
	if !errors.Is(err, store.ErrRejected) {
		t.Fatalf("CommitFile with an empty agent_id: %v, want store.ErrRejected", err)
	}
	if _, ok, _ := s.GetConversation(ctx, namespace, "agent-1", "ok-1"); ok {
		t.Fatal("a rejected commit stored part of its file")
	}
	commit(t, s, File(source, "good.json", day0, Conv("agent-1", "ok-2", day0, "x")))

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.CommitFile(ctx, File(source, "late.json", day0, Conv("agent-1", "ok-3", day0, "x")).FileCommit)
	if err == nil || errors.Is(err, store.ErrRejected) {
		t.Fatalf("CommitFile on a closed store: %v, want an error not marked rejected", err)
	}
	if !strings.Contains(err.Error(), "late.json") {
		t.Errorf("error %q does not name the file", err)
	}
}
