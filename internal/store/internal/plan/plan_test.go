package plan

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

var t0 = time.Date(2025, 1, 15, 14, 30, 0, 0, time.UTC)

func rec(id, hash string, at time.Duration, key string, pos int64) store.Conversation {
	return store.Conversation{AgentID: "a", ConversationID: id, ContentHash: hash, ActivityTime: t0.Add(at),
		ObjectKey: key, ObjectLastModified: t0, Position: pos}
}

func from(source string, c store.Conversation) store.Conversation {
	c.Source = source
	return c
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name   string
		convs  []store.Conversation
		stored []store.Conversation
		want   store.RecordCounts
		writes []string // "id@key:pos" of the rows written, in key order
	}{
		{"new", []store.Conversation{rec("c1", "h1", 0, "k", 0)}, nil, store.RecordCounts{New: 1}, []string{"c1@k:0"}},
		{"identical, same origin", []store.Conversation{rec("c1", "h1", 0, "k", 0)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Unchanged: 1}, nil},
		{"identical, newer origin moves the origin", []store.Conversation{rec("c1", "h1", 0, "l", 0)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Unchanged: 1}, []string{"c1@l:0"}},
		{"newer activity", []store.Conversation{rec("c1", "h2", time.Second, "a", 0)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Updated: 1}, []string{"c1@a:0"}},
		{"older activity", []store.Conversation{rec("c1", "h2", -time.Second, "z", 0)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Unchanged: 1}, nil},
		// The same key and last-modified from another source: not this object, so compared.
		{"position breaks the tie", []store.Conversation{rec("c1", "h2", 0, "k", 3)},
			[]store.Conversation{from("other/src", rec("c1", "h1", 0, "k", 2))}, store.RecordCounts{Updated: 1}, []string{"c1@k:3"}},
		{"duplicates in one commit reduce to the newest",
			[]store.Conversation{rec("c2", "h1", 0, "k", 0), rec("c1", "h1", 0, "k", 1), rec("c1", "h2", time.Second, "k", 2), rec("c1", "h1", 0, "k", 3)},
			nil, store.RecordCounts{New: 2, Unchanged: 2}, []string{"c1@k:2", "c2@k:0"}},
		// A row from the same object version was counted by an earlier record of the file
		// (an earlier batch), or by an earlier ingestion of this very object.
		{"same object, newer position: written, unchanged", []store.Conversation{rec("c1", "h2", 0, "k", 3)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 2)}, store.RecordCounts{Unchanged: 1}, []string{"c1@k:3"}},
		{"same object, older record: kept, unchanged", []store.Conversation{rec("c1", "h2", -time.Second, "k", 3)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 2)}, store.RecordCounts{Unchanged: 1}, nil},
		{"an update within a batch counts once", []store.Conversation{rec("c1", "h2", time.Second, "l", 0), rec("c1", "h3", 2*time.Second, "l", 1)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Updated: 1, Unchanged: 1}, []string{"c1@l:1"}},
		{"an older record before an update", []store.Conversation{rec("c1", "h0", -time.Second, "l", 0), rec("c1", "h2", time.Second, "l", 1)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Updated: 1, Unchanged: 1}, []string{"c1@l:1"}},
		// The definition that changed with streaming (see store.RecordOutcome): the first
		// record written for an identity decides; reducing the file first gave Updated 1,
		// Unchanged 1 here, and Unchanged 2 in the next case.
		{"identical copy first, then a new version", []store.Conversation{rec("c1", "h1", 0, "l", 0), rec("c1", "h2", time.Second, "l", 1)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Unchanged: 2}, []string{"c1@l:1"}},
		{"a new version, then an identical copy that wins on position", []store.Conversation{rec("c1", "h2", 0, "l", 0), rec("c1", "h1", 0, "l", 1)},
			[]store.Conversation{rec("c1", "h1", 0, "k", 0)}, store.RecordCounts{Updated: 1, Unchanged: 1}, []string{"c1@l:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := map[Key]store.Conversation{}
			for _, s := range tt.stored {
				stored[KeyOf(&s)] = s
			}
			p := Build(tt.convs, stored)
			if p.Counts != tt.want {
				t.Errorf("counts = %+v, want %+v", p.Counts, tt.want)
			}
			var got []string
			for _, w := range p.Writes {
				got = append(got, w.ConversationID+"@"+w.ObjectKey+":"+strconv.FormatInt(w.Position, 10))
			}
			if strings.Join(got, ",") != strings.Join(tt.writes, ",") {
				t.Errorf("writes = %v, want %v", got, tt.writes)
			}
		})
	}
}

func TestChargeTarget(t *testing.T) {
	row := store.Reservation{Quota: "q", Bytes: 1}
	fb := &store.Reservation{Quota: "q", Bytes: 2}
	if r, err := ChargeTarget(1, row, true, fb); err != nil || r != row {
		t.Errorf("found: %+v, %v", r, err)
	}
	if r, err := ChargeTarget(1, row, false, fb); err != nil || r != *fb {
		t.Errorf("fallback: %+v, %v", r, err)
	}
	for _, fb := range []*store.Reservation{nil, {}} {
		_, err := ChargeTarget(7, row, false, fb)
		if err == nil || err.Error() != "reservation 7 not found" {
			t.Errorf("no row, fallback %v: %v, want reservation 7 not found", fb, err)
		}
	}
}

func TestStamp(t *testing.T) {
	tests := []struct {
		name, commit, record string
		want                 string // the record's namespace after stamp; "" for an error
	}{
		{"the commit's namespace is given to the record", "tenant-a", "", "tenant-a"},
		{"a record already in it", "tenant-a", "tenant-a", "tenant-a"},
		{"a record of another namespace", "tenant-a", "tenant-b", ""},
		{"a commit without a namespace", "", "", ""},
		{"a commit without a namespace, a record with one", "", "tenant-b", ""},
	}
	for _, tt := range tests {
		c := store.Conversation{Namespace: tt.record, AgentID: "a", ConversationID: "c"}
		err := stamp(&c, tt.commit)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: stamp succeeded (namespace %q), want an error", tt.name, c.Namespace)
		case tt.want != "" && (err != nil || c.Namespace != tt.want):
			t.Errorf("%s: stamp = %v, namespace %q; want %q", tt.name, err, c.Namespace, tt.want)
		}
	}
}
