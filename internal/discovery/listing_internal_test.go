package discovery

import (
	"reflect"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

func TestPlanListing(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	inc := Listing{Incremental: true, FullEvery: 24 * time.Hour, SafetyWindow: time.Hour}
	state := store.ListingState{Scope: "s", LastFull: now.Add(-5 * time.Hour), Marks: []store.ListingMark{
		{At: now.Add(-3 * time.Hour), Key: "c/2026/03/10/09"},
		{At: now.Add(-2 * time.Hour), Key: "c/2026/03/10/10"},
		{At: now.Add(-time.Hour), Key: "c/2026/03/10/11"}, // exactly one window old: usable
		{At: now.Add(-time.Minute), Key: "c/2026/03/10/12"},
	}}
	tests := []struct {
		name       string
		listing    Listing
		state      store.ListingState
		found      bool
		scope      string
		mustSeeAll bool
		want       string // "" = full
	}{
		{"incremental from the newest mark a window old", inc, state, true, "s", false, "c/2026/03/10/11"},
		{"off by default", Listing{}, state, true, "s", false, ""},
		{"no state yet", inc, store.ListingState{}, false, "s", false, ""},
		{"another scope (prefix, filters changed)", inc, state, true, "t", false, ""},
		{"dry run or recheck sees everything", inc, state, true, "s", true, ""},
		{"full listing due", Listing{Incremental: true, FullEvery: 5 * time.Hour, SafetyWindow: time.Hour}, state, true, "s", false, ""},
		{"no mark old enough", Listing{Incremental: true, FullEvery: 24 * time.Hour, SafetyWindow: 4 * time.Hour}, state, true, "s", false, ""},
		{"wide window takes an older mark", Listing{Incremental: true, FullEvery: 24 * time.Hour, SafetyWindow: 150 * time.Minute}, state, true, "s", false, "c/2026/03/10/09"},
		{"never fully listed", inc, store.ListingState{Scope: "s", Marks: state.Marks}, true, "s", false, ""},
		{"an empty mark lists in full", inc, store.ListingState{Scope: "s", LastFull: state.LastFull, Marks: []store.ListingMark{{At: now.Add(-2 * time.Hour)}}}, true, "s", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planListing(tc.listing, tc.state, tc.found, tc.scope, now, tc.mustSeeAll)
			if p.incremental != (tc.want != "") || p.startAfter != tc.want {
				t.Fatalf("plan = incremental %v after %q, want after %q", p.incremental, p.startAfter, tc.want)
			}
		})
	}
}

func TestNextListingState(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	prev := store.ListingState{Scope: "s", LastFull: now.Add(-5 * time.Hour), Marks: []store.ListingMark{
		{At: now.Add(-3 * time.Hour), Key: "a"},
		{At: now.Add(-2 * time.Hour), Key: "b"},
		{At: now.Add(-30 * time.Minute), Key: "c"},
	}}
	tests := []struct {
		name string
		plan listingPlan
		want store.ListingState
	}{
		{"incremental keeps LastFull and the marks still needed", listingPlan{incremental: true, prev: prev, found: true},
			store.ListingState{Scope: "s", LastFull: prev.LastFull, Marks: []store.ListingMark{prev.Marks[1], prev.Marks[2], {At: now, Key: "d"}}}},
		{"full sets LastFull", listingPlan{prev: prev, found: true},
			store.ListingState{Scope: "s", LastFull: now, Marks: []store.ListingMark{prev.Marks[1], prev.Marks[2], {At: now, Key: "d"}}}},
		{"first run", listingPlan{},
			store.ListingState{Scope: "s", LastFull: now, Marks: []store.ListingMark{{At: now, Key: "d"}}}},
		{"another scope's marks are dropped", listingPlan{prev: store.ListingState{Scope: "old", LastFull: prev.LastFull, Marks: prev.Marks}, found: true},
			store.ListingState{Scope: "s", LastFull: now, Marks: []store.ListingMark{{At: now, Key: "d"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextListingState(tc.plan, "s", now, "d", time.Hour); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("next state\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// Bounded however many runs fit in the window.
	st := store.ListingState{Scope: "s", LastFull: now}
	for i := range 200 {
		st = nextListingState(listingPlan{incremental: true, prev: st, found: true}, "s", now.Add(time.Duration(i)*time.Second), "k", time.Hour)
	}
	if len(st.Marks) != maxMarks {
		t.Fatalf("%d marks kept, want at most %d", len(st.Marks), maxMarks)
	}
}

func TestBefore(t *testing.T) {
	for _, key := range []string{"a", "c/2026/03/10/x.json", "c/日本", "é"} {
		b := before(key)
		if b >= key || len(b) >= len(key) || !isPrefix(b, key) {
			t.Errorf("before(%q) = %q", key, b)
		}
	}
}

func isPrefix(p, s string) bool { return len(p) <= len(s) && s[:len(p)] == p }
