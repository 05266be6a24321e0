package storetest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// Two tenants' S3Sources, with the same name in each namespace.
const (
	sourceA = "tenant-a/bucket-1"
	sourceB = "tenant-b/bucket-1"
)

// testNamespaces: a conversation's identity includes its namespace. Records with the
// same agent_id and conversation_id in two namespaces are two conversations, and
// "latest valid record wins" is decided within a namespace only: a later record of
// tenant A never replaces tenant B's.
func testNamespaces(t *testing.T, s store.Store) {
	lm := day0.Add(time.Hour)
	v1 := Conv("agent-1", "c1", day0, "B's original")
	older := Conv("agent-1", "c1", day0.Add(-time.Hour), "B's older copy")
	attack := Conv("agent-1", "c1", day0.Add(24*time.Hour), "A claims B's conversation")
	v2 := Conv("agent-1", "c1", day0.Add(time.Minute), "B's edit")
	same := Conv("agent-1", "c2", day0, "identical in both")

	b1 := File(sourceB, "b1.json", lm, v1, same)
	a1 := File(sourceA, "a1.json", lm.Add(time.Hour), attack)
	a2 := File(sourceA, "a2.json", lm, same)
	b2 := File(sourceB, "b2.json", lm.Add(48*time.Hour), older)
	b3 := File(sourceB, "b3.json", lm.Add(time.Hour), v2)
	// Each step commits one file into the same store; want is the whole store afterwards.
	steps := []struct {
		name   string
		file   Commit
		counts store.RecordCounts
		want   []store.Conversation
	}{
		{"B stores its conversations", b1, counts(2, 0, 0), Expected([]Commit{b1})},
		{"A's later record with B's ids is new in A and leaves B's", a1, counts(1, 0, 0),
			[]store.Conversation{a1.Convs[0], b1.Convs[0], b1.Convs[1]}},
		{"A's copy identical to B's is new in A, not unchanged", a2, counts(1, 0, 0),
			[]store.Conversation{a1.Convs[0], a2.Convs[0], b1.Convs[0], b1.Convs[1]}},
		{"B's older record loses to B's row, not to A's", b2, counts(0, 0, 1),
			[]store.Conversation{a1.Convs[0], a2.Convs[0], b1.Convs[0], b1.Convs[1]}},
		{"B's later record replaces B's row only, though A's is later still", b3, counts(0, 1, 0),
			[]store.Conversation{a1.Convs[0], a2.Convs[0], b3.Convs[0], b1.Convs[1]}},
	}
	for _, st := range steps {
		got := commit(t, s, st.file)
		want := st.counts
		want.Valid = int64(len(st.file.Convs))
		if got != want {
			t.Errorf("%s: counts = %+v, want %+v", st.name, got, want)
		}
		assertConversations(t, dump(t, s), st.want)
	}
}

// testNamespacesNeverCross: reads name a namespace and see nothing of another.
func testNamespacesNeverCross(t *testing.T, s store.Store) {
	a := File(sourceA, "a.json", day0, Conv("agent-1", "c1", day0, "a1"), Conv("agent-1", "c2", day0, "a2"))
	b := File(sourceB, "b.json", day0, Conv("agent-1", "c1", day0, "b1"), Conv("agent-1", "c3", day0, "b3"))
	commit(t, s, a)
	commit(t, s, b)

	gets := []struct {
		name          string
		namespace, id string
		want          *store.Conversation
	}{
		{"A's own", "tenant-a", "c1", &a.Convs[0]},
		{"B's own, same ids", "tenant-b", "c1", &b.Convs[0]},
		{"B's only conversation, asked in A", "tenant-a", "c3", nil},
		{"A's only conversation, asked in B", "tenant-b", "c2", nil},
		{"a namespace prefix", "tenant", "c1", nil},
		{"no namespace", "", "c1", nil},
	}
	for _, g := range gets {
		got, ok, err := s.GetConversation(ctx, g.namespace, "agent-1", g.id)
		switch {
		case err != nil:
			t.Errorf("%s: GetConversation: %v", g.name, err)
		case g.want == nil && ok:
			t.Errorf("%s: GetConversation(%q, agent-1, %s) found %s, want nothing", g.name, g.namespace, g.id, describe(got))
		case g.want != nil && !ok:
			t.Errorf("%s: GetConversation(%q, agent-1, %s) found nothing", g.name, g.namespace, g.id)
		case g.want != nil:
			assertConversations(t, []store.Conversation{got}, []store.Conversation{*g.want})
		}
	}

	lists := []struct {
		name, namespace string
		want            []string // "namespace/conversation_id"
	}{
		{"A", "tenant-a", []string{"tenant-a/c1", "tenant-a/c2"}},
		{"B", "tenant-b", []string{"tenant-b/c1", "tenant-b/c3"}},
		{"a namespace prefix", "tenant", []string{}},
		{"no namespace", "", []string{}},
	}
	for _, l := range lists {
		got, err := s.ListConversations(ctx, l.namespace, "agent-1", 0)
		if err != nil {
			t.Errorf("%s: ListConversations: %v", l.name, err)
			continue
		}
		ids := []string{}
		for _, c := range got {
			ids = append(ids, c.Namespace+"/"+c.ConversationID)
		}
		if !reflect.DeepEqual(ids, l.want) {
			t.Errorf("%s: ListConversations(%q, agent-1) = %v, want %v", l.name, l.namespace, ids, l.want)
		}
	}
}

// testCommitNamespace: the commit's namespace is where its conversations go. A commit
// that names none, or a record that names another, commits nothing; a ledger-only
// commit (a failed file) needs none.
func testCommitNamespace(t *testing.T, s store.Store) {
	tests := []struct {
		name    string
		commit  func() Commit
		wantErr string
	}{
		{"no namespace", func() Commit {
			f := File(sourceA, "none.json", day0, Conv("agent-1", "c1", day0, "x"))
			f.Namespace = ""
			return f
		}, "names no namespace"},
		{"a record of another namespace", func() Commit {
			f := File(sourceA, "other.json", day0, Conv("agent-1", "c1", day0, "x"), Conv("agent-1", "c2", day0, "y"))
			f.Convs[1].Namespace = "tenant-b"
			return f
		}, `namespace "tenant-b" in a commit of namespace "tenant-a"`},
		{"ledger row only, no namespace", func() Commit {
			f := File(sourceA, "failed.json", day0)
			f.Namespace, f.Conversations = "", nil
			f.File.State = store.FileFailed
			return f
		}, ""},
	}
	for _, tt := range tests {
		f := tt.commit()
		_, err := s.CommitFile(ctx, f.FileCommit)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: CommitFile: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: CommitFile = %v, want an error containing %q", tt.name, err, tt.wantErr)
		case tt.wantErr != "":
			if _, ok, err := s.LookupFile(ctx, sourceA, f.File.Key); ok || err != nil {
				t.Errorf("%s: ledger row present (%v, %v) after a refused commit", tt.name, ok, err)
			}
		}
	}
	if d := dump(t, s); len(d) != 0 {
		t.Errorf("%d conversations stored by refused commits", len(d))
	}
}
