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
		{"position breaks the tie", []ingest.Conversation{rec("c1", "h2", 0, "k", 3)},
			[]ingest.Conversation{rec("c1", "h1", 0, "k", 2)}, ingest.RecordCounts{Updated: 1}, []string{"c1@k:3"}},
		{"duplicates in one commit reduce to the newest",
			[]ingest.Conversation{rec("c2", "h1", 0, "k", 0), rec("c1", "h1", 0, "k", 1), rec("c1", "h2", time.Second, "k", 2), rec("c1", "h1", 0, "k", 3)},
			nil, ingest.RecordCounts{New: 2, Unchanged: 2}, []string{"c1@k:2", "c2@k:0"}},
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
