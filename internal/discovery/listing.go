package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// Listing says how a source's discoveries list its prefix.
//
// An incremental discovery lists only the keys after a mark: the greatest key a
// completed run proved settled, taken from a run that began at least SafetyWindow ago.
// It is only right for prefixes whose keys sort in upload order (the guide's
// conversations/YYYY/MM/DD/ layout, or names that start with a timestamp): an object
// uploaded with a key that sorts before a key that was already there SafetyWindow
// earlier is missed until the next full listing, which runs FullEvery after the last
// one began, catches it, and alone prunes the ledger.
type Listing struct {
	// Incremental enables incremental listing; false lists the whole prefix every time.
	Incremental bool
	// FullEvery is how long after the last full listing began the next one is due.
	FullEvery time.Duration
	// SafetyWindow is how late (or out of key order) an upload may be and still be
	// found by an incremental listing.
	SafetyWindow time.Duration
}

// Listing modes, as Result.Listing.Mode reports them.
const (
	ModeFull        = "Full"
	ModeIncremental = "Incremental"
)

// ListingResult is how one run listed its prefix.
type ListingResult struct {
	// Mode is ModeFull or ModeIncremental.
	Mode string
	// StartAfter is the key an incremental listing started after.
	StartAfter string
	// Listed is how many objects this run's listing returned (for an incremental run
	// Result.Listed is the number of objects the ledger knows under the prefix).
	Listed int64
	// LastFull is when the last completed full listing began (zero: never).
	LastFull time.Time
}

// maxMarks bounds the marks kept per source (one per run within the safety window).
const maxMarks = 64

// listingPlan is how one run lists.
type listingPlan struct {
	incremental bool
	startAfter  string
	prev        store.ListingState
	found       bool
}

// planListing decides how a run at now lists: incrementally only when the state was
// made by runs of the same scope, a full listing began less than FullEvery ago, and a
// mark at least SafetyWindow old exists. A dry run or a recheck of failed files (both
// must see every object) lists in full.
func planListing(l Listing, prev store.ListingState, found bool, scope string, now time.Time, mustSeeAll bool) listingPlan {
	p := listingPlan{prev: prev, found: found}
	if !l.Incremental || mustSeeAll || !found || prev.Scope != scope || prev.LastFull.IsZero() || !now.Before(prev.LastFull.Add(l.FullEvery)) {
		return p
	}
	var mark *store.ListingMark
	for i := range prev.Marks {
		if m := &prev.Marks[i]; !m.At.After(now.Add(-l.SafetyWindow)) && (mark == nil || m.At.After(mark.At)) {
			mark = m
		}
	}
	if mark == nil || mark.Key == "" {
		return p
	}
	p.incremental, p.startAfter = true, mark.Key
	return p
}

// nextListingState is the state after a completed run that began at started and
// proved every key up to mark settled.
func nextListingState(p listingPlan, scope string, started time.Time, mark string, window time.Duration) store.ListingState {
	next := store.ListingState{Scope: scope}
	if p.found && p.prev.Scope == scope {
		next.LastFull = p.prev.LastFull
		// Keep the marks a later run may still need: those inside the window and the
		// newest one before it.
		cut := started.Add(-window)
		newestBefore := -1
		for i, m := range p.prev.Marks {
			if !m.At.After(cut) && (newestBefore < 0 || m.At.After(p.prev.Marks[newestBefore].At)) {
				newestBefore = i
			}
		}
		for i, m := range p.prev.Marks {
			if m.At.After(cut) || i == newestBefore {
				next.Marks = append(next.Marks, m)
			}
		}
	}
	if !p.incremental {
		next.LastFull = started
	}
	next.Marks = append(next.Marks, store.ListingMark{At: started, Key: mark})
	if len(next.Marks) > maxMarks {
		next.Marks = next.Marks[len(next.Marks)-maxMarks:]
	}
	return next
}

// listingScope identifies what a job lists: a mark of another bucket, prefix, filter or
// file size limit proves nothing about this one. It is a hash: the store keeps it short.
func listingScope(job Job) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %d %q %q %d", job.Bucket, job.Prefix, job.Quota.MaxFileSize, job.Filter.Include, job.Filter.Exclude, job.Filter.MaxFileAge)
	return hex.EncodeToString(h.Sum(nil))
}

// before returns a string that sorts just before key: key without its last character.
// Every key between the two starts with it, so a listing that starts after it lists
// key again and hardly anything else.
func before(key string) string {
	_, size := utf8.DecodeLastRuneInString(key)
	return key[:len(key)-size]
}

// finishListing saves where the next incremental listing may start, after a completed
// run, and for an incremental run takes the state totals from the ledger (the run saw
// only the new keys). A dry run writes no state: it wrote no ledger row either.
func (r *run) finishListing(ctx context.Context, p listingPlan, scope string) error {
	res := r.res
	if !r.job.DryRun && r.ordered {
		mark := r.last // every listed key up to here is settled, unless...
		r.mu.Lock()
		if r.unsettled != "" {
			mark = min(mark, before(r.unsettled)) // ...one must be listed again
		}
		r.mu.Unlock()
		next := nextListingState(p, scope, res.Started, mark, r.job.Listing.SafetyWindow)
		if err := r.Store.SaveListingState(ctx, r.job.Source, next); err != nil {
			return fmt.Errorf("saving the listing state: %w", err)
		}
		res.Listing.LastFull = next.LastFull
	}
	if !p.incremental {
		return nil
	}
	counts, err := r.Store.CountFiles(ctx, r.ledger())
	if err != nil {
		return fmt.Errorf("counting the ledger: %w", err)
	}
	res.Ingested, res.Failed = counts[store.FileIngested], counts[store.FileFailed]
	res.Deferred, res.Ignored = counts[store.FileDeferred], counts[store.FileIgnored]
	res.Listed = res.Ingested + res.Failed + res.Deferred + res.Ignored
	return nil
}
