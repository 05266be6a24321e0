package discovery

import (
	"fmt"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// Filter selects the listed objects a discovery considers. Patterns are doublestar
// globs (github.com/bmatcuk/doublestar/v4): '*' matches within one path segment, '**'
// across segments ("**/*.json" also matches "a.json"), '?', '[a-z]' and '{a,b}' as in a
// shell. They match the key relative to the job's prefix.
type Filter struct {
	// Include, when not empty, keeps only keys matching one of its patterns.
	Include []string
	// Exclude drops keys matching one of its patterns (after Include).
	Exclude []string
	// MaxFileAge, when positive, skips objects last modified longer ago than this
	// before the run began, unless the ledger already holds their settled version.
	MaxFileAge time.Duration
}

// ValidatePatterns returns an error naming the first pattern of field that is not a
// valid glob, e.g. an unclosed '[' or '{'.
func ValidatePatterns(field string, patterns []string) error {
	for i, p := range patterns {
		if p == "" || !doublestar.ValidatePattern(p) {
			return fmt.Errorf("%s[%d] %q is not a valid glob pattern (doublestar syntax: *, **, ?, [a-z], {a,b}; check for an unclosed '[' or '{' or a trailing '\\')", field, i, p)
		}
	}
	return nil
}

// selects says whether the filters keep a key (relative to the prefix).
func (f Filter) selects(rel string) bool {
	if len(f.Include) > 0 && !matchAny(f.Include, rel) {
		return false
	}
	return !matchAny(f.Exclude, rel)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		// Patterns are validated before a job is built; an invalid one matches nothing.
		if ok, err := doublestar.Match(p, name); ok && err == nil {
			return true
		}
	}
	return false
}

// skip says whether a listed object is left alone by the filters, and counts it.
// Folder markers are classify's to ignore.
func (r *run) skip(obj bucket.Object, prev store.FileRecord, found bool) bool {
	f := r.job.Filter
	if strings.HasSuffix(obj.Key, "/") {
		return false
	}
	if !f.selects(strings.TrimPrefix(obj.Key, r.job.Prefix)) {
		r.tally(func(res *Result) { res.Excluded++ })
		return true
	}
	if f.MaxFileAge > 0 && obj.LastModified.Before(r.res.Started.Add(-f.MaxFileAge)) &&
		!r.unchanged(obj, prev, found) {
		// Too old to download; a version already settled still counts in its state.
		r.tally(func(res *Result) { res.TooOld++ })
		return true
	}
	return false
}
