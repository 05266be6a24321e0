package plan

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/ingest"
)

var t0 = time.Date(2025, 1, 15, 14, 30, 0, 0, time.UTC)

func rec(id, hash string, at time.Duration, key string, pos int64) ingest.Conversation {
	return ingest.Conversation{AgentID: "a", ConversationID: id, ContentHash: hash, ActivityTime: t0.Add(at),
		ObjectKey: key, ObjectLastModified: t0, Position: pos}
}

func from(source string, c ingest.Conversation) ingest.Conversation {
	c.Source = source
	return c
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name   string
		convs  []ingest.Conversation
		stored []ingest.Conversation
		want   ingest.RecordCounts
		writes []string // "id@key:pos" of the rows written, in key order
	}{
		{"new", []ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, nil, ingest.RecordCounts{New: 1}, []string{"c1@k:0"}},
		{"identical, same origin", []ingest.Conversation{rec("c1", "h1", 0, "k", 0)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Unchanged: 1}, nil},
		{"identical, newer origin moves the origin", []ingest.Conversation{rec("c1", "h1", 0, "l", 0)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Unchanged: 1}, []string{"c1@l:0"}},
		{"newer activity", []ingest.Conversation{rec("c1", "h2", time.Second, "a", 0)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Updated: 1}, []string{"c1@a:0"}},
		{"older activity", []ingest.Conversation{rec("c1", "h2", -time.Second, "z", 0)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Unchanged: 1}, nil},
		// The same key and last-modified from another source: not this object, so compared.
		{"position breaks the tie", []ingest.Conversation{rec("c1", "h2", 0, "k", 3)},
			[]ingest.Conversation{from("other/src", rec("c1", "h1", 0, "k", 2))}, ingest.RecordCounts{Updated: 1}, []string{"c1@k:3"}},
		{"duplicates in one commit reduce to the newest",
			[]ingest.Conversation{rec("c2", "h1", 0, "k", 0), rec("c1", "h1", 0, "k", 1), rec("c1", "h2", time.Second, "k", 2), rec("c1", "h1", 0, "k", 3)},
			nil, ingest.RecordCounts{New: 2, Unchanged: 2}, []string{"c1@k:2", "c2@k:0"}},
		// A row from the same object version was counted by an earlier record of the file
		// (an earlier batch), or by an earlier ingestion of this very object.
		{"same object, newer position: written, unchanged", []ingest.Conversation{rec("c1", "h2", 0, "k", 3)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 2)}, ingest.RecordCounts{Unchanged: 1}, []string{"c1@k:3"}},
		{"same object, older record: kept, unchanged", []ingest.Conversation{rec("c1", "h2", -time.Second, "k", 3)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 2)}, ingest.RecordCounts{Unchanged: 1}, nil},
		{"an update within a batch counts once", []ingest.Conversation{rec("c1", "h2", time.Second, "l", 0), rec("c1", "h3", 2*time.Second, "l", 1)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Updated: 1, Unchanged: 1}, []string{"c1@l:1"}},
		{"an older record before an update", []ingest.Conversation{rec("c1", "h0", -time.Second, "l", 0), rec("c1", "h2", time.Second, "l", 1)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Updated: 1, Unchanged: 1}, []string{"c1@l:1"}},
		// The definition that changed with streaming (see ingest.RecordOutcome): the first
		// record written for an identity decides; reducing the file first gave Updated 1,
		// Unchanged 1 here, and Unchanged 2 in the next case.
		{"identical copy first, then a new version", []ingest.Conversation{rec("c1", "h1", 0, "l", 0), rec("c1", "h2", time.Second, "l", 1)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Unchanged: 2}, []string{"c1@l:1"}},
		{"a new version, then an identical copy that wins on position", []ingest.Conversation{rec("c1", "h2", 0, "l", 0), rec("c1", "h1", 0, "l", 1)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 0)}, ingest.RecordCounts{Updated: 1, Unchanged: 1}, []string{"c1@l:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := map[Key]ingest.Conversation{}
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
	row := ingest.Reservation{Quota: "q", Bytes: 1}
	fb := &ingest.Reservation{Quota: "q", Bytes: 2}
	if r, err := ChargeTarget(1, row, true, fb); err != nil || r != row {
		t.Errorf("found: %+v, %v", r, err)
	}
	if r, err := ChargeTarget(1, row, false, fb); err != nil || r != *fb {
		t.Errorf("fallback: %+v, %v", r, err)
	}
	for _, fb := range []*ingest.Reservation{nil, {}} {
		_, err := ChargeTarget(7, row, false, fb)
		if err == nil || err.Error() != "reservation 7 not found" {
			t.Errorf("no row, fallback %v: %v, want reservation 7 not found", fb, err)
		}
	}
}
