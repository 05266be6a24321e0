// Package discovery runs one discovery of a bucket prefix: list it page by page, decide for
// each object whether it is new, updated or unchanged against the file ledger, hold quota
// for each download, and hand the bytes to the ingest engine. It knows nothing of
// Kubernetes; the S3Source controller starts runs and folds their Result into status.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/failpoint"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// Job is one discovery of one source.
type Job struct {
	// Namespace is the S3Source's namespace: the tenant that owns the conversations the
	// job stores.
	Namespace string
	// Source is "namespace/name": the owner of the ledger rows.
	Source string
	Bucket string
	Prefix string
	Quota  quota.Quota
	Policy ingest.InvalidRecordPolicy
	// DryRun validates without storing conversations. Its results go to a ledger of their
	// own (DryRunLedger), apart from the real one: an unchanged file is not downloaded
	// (and charged) again at every dry run, the counts and recent errors describe the dry
	// run's results, and a real run still processes everything. Downloads are held
	// against and charged to the quota: they happened.
	DryRun bool
	Agents map[string]struct{}
	// Validators are the source's compiled PII validators (nil: none).
	Validators *ingest.Validators
	// RecheckFailed re-processes files that failed validation although unchanged, because
	// the rules changed (agent allow-list, invalid-record policy).
	RecheckFailed bool
	// RetryParked processes parked files again, their attempts counted from zero: a user
	// asked for this run (the refresh annotation).
	RetryParked bool
	// Listing says whether discoveries list the whole prefix or only what is new.
	Listing Listing
	// Filter selects the listed objects to consider (include/exclude globs, age).
	Filter Filter
}

// Result is what one run learned. Err is set when the listing itself failed (the bucket
// is unreachable or denied); file-level problems are counted, not returned.
type Result struct {
	Started  time.Time
	Finished time.Time
	Err      error

	// Listed objects under the prefix (folder markers excluded).
	Listed int64
	// States of every listed object after the run (from this run or the ledger).
	Ingested, Failed, Deferred, Ignored int64
	// What this run did.
	Downloaded int64
	// DownloadedFailed are downloads whose content failed (invalid, unsafe, ...).
	DownloadedFailed int64
	Unchanged        int64
	BytesDownloaded  int64
	NewlyFailed      int64
	NewlyDeferred    int64
	// Pruned ledger rows: objects this listing proved gone from the bucket.
	Pruned int64
	// Listing is how this run listed the prefix.
	Listing ListingResult
	// Excluded objects did not pass the filter's globs; TooOld were last modified before
	// its MaxFileAge. Neither is downloaded nor counted in Listed or the states.
	Excluded, TooOld int64
	// Filter is the filter this run applied.
	Filter        Filter
	Conversations store.RecordCounts
	// PII sums, per validator that matched in this run's downloads, what it found (one
	// entry per validator, in the configured order).
	PII []ingest.PIICount
	// FilesRedacted and FilesFlagged count this run's ingested files in which a Redact
	// or a Flag validator matched.
	FilesRedacted, FilesFlagged int64
	// RecentErrors are the source's newest failed files from the ledger, newest first.
	RecentErrors []store.FileRecord
	// Targeted marks a run of named keys (RunKeys): Listed and the state counts are then
	// changes to the source's totals, not totals.
	Targeted bool
}

// ErrStore marks a Result.Err caused by the store (unreachable, failing), not by the
// bucket: the run is retried and no file is blamed. Test with errors.Is.
var ErrStore = errors.New("the store failed")

// storeFailed marks err as the store's (see ErrStore); its message is err's.
func storeFailed(err error) error {
	if err == nil || errors.Is(err, ErrStore) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return storeError{err}
}

type storeError struct{ err error }

func (e storeError) Error() string        { return e.err.Error() }
func (e storeError) Unwrap() error        { return e.err }
func (e storeError) Is(target error) bool { return target == ErrStore }

// DryRunLedger is the ledger source that holds the dry-run results of source: its rows
// never stand for files a real run processed. Deleting a source deletes both.
func DryRunLedger(source string) string { return source + "#dry-run" }

// MaxRecentErrors bounds Result.RecentErrors.
const MaxRecentErrors = 10

// DefaultMaxFileAttempts is how many attempts to process one version of a file may fail
// for a reason retrying does not fix (the store refused it, or the manager died while
// processing it) before the file is parked.
const DefaultMaxFileAttempts = 3

// Runner runs discoveries. One Runner serves every source of a manager; FileSlots bounds
// the downloads in flight across all of them, because each holds up to one object's
// bytes (ZIPs spool to disk) and a store transaction.
type Runner struct {
	Store  store.Store
	Engine *ingest.Engine
	Now    func() time.Time
	// PerRun is the most downloads one run has in flight.
	PerRun int
	// MaxFileAttempts parks a file after this many failed attempts (0 means
	// DefaultMaxFileAttempts); see BeginAttempt in package store.
	MaxFileAttempts int
	slots           chan struct{}

	// unreleased are reservations whose Release failed: their bytes count against the
	// quota until a Release succeeds, so every run tries them again first.
	releaseMu  sync.Mutex
	unreleased map[int64]struct{}
}

// A failed Release holds the reservation's bytes against the quota for the rest of the
// day, so it is tried again at once releaseRetries times, waiting releaseBackoff and
// then twice as long each time; if it still fails, every later run tries again.
const (
	releaseRetries = 3
	releaseBackoff = 50 * time.Millisecond
)

// release drops reservation id, retrying; a reservation it could not drop is kept for
// the next run.
func (r *Runner) release(ctx context.Context, id int64) error {
	wait := releaseBackoff
	err := r.Store.Release(ctx, id)
	for i := 0; err != nil && i < releaseRetries; i++ {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		wait *= 2
		err = r.Store.Release(ctx, id)
	}
	if err != nil {
		r.releaseMu.Lock()
		if r.unreleased == nil {
			r.unreleased = map[int64]struct{}{}
		}
		r.unreleased[id] = struct{}{}
		r.releaseMu.Unlock()
	}
	return err
}

// releaseLeftovers tries again the Releases that failed in earlier runs.
func (r *Runner) releaseLeftovers(ctx context.Context) {
	r.releaseMu.Lock()
	ids := make([]int64, 0, len(r.unreleased))
	for id := range r.unreleased {
		ids = append(ids, id)
	}
	r.releaseMu.Unlock()
	for _, id := range ids {
		if r.Store.Release(ctx, id) == nil {
			r.releaseMu.Lock()
			delete(r.unreleased, id)
			r.releaseMu.Unlock()
		}
	}
}

func (r *Runner) maxAttempts() int {
	if r.MaxFileAttempts > 0 {
		return r.MaxFileAttempts
	}
	return DefaultMaxFileAttempts
}

// NewRunner returns a Runner with at most files downloads in flight in total and perRun
// per source.
func NewRunner(store store.Store, engine *ingest.Engine, now func() time.Time, files, perRun int) *Runner {
	if files < 1 {
		files = 1
	}
	if perRun < 1 || perRun > files {
		perRun = files
	}
	return &Runner{Store: store, Engine: engine, Now: now, PerRun: perRun, slots: make(chan struct{}, files)}
}

// Run lists the job's prefix and processes what is new or updated. It returns when every
// download it started has committed or rolled back.
func (r *Runner) Run(ctx context.Context, client bucket.Client, job Job) *Result {
	res := &Result{Started: r.Now(), Filter: job.Filter}
	r.releaseLeftovers(ctx)
	// The engine refuses bodies over the quota's file size, not a fixed default, so a
	// file the quota allows is never downloaded only to fail as too large.
	engine := *r.Engine
	engine.Limits.MaxFileBytes = job.Quota.MaxFileSize
	scope := listingScope(job)
	prevState, found, err := r.Store.ListingState(ctx, job.Source)
	if err != nil {
		res.Err = storeFailed(fmt.Errorf("reading the listing state: %w", err))
		res.Finished = r.Now()
		return res
	}
	plan := planListing(job.Listing, prevState, found, scope, res.Started, job.DryRun || job.RecheckFailed)
	// An incremental listing sees only part of the key space: it proves nothing gone.
	run := &run{Runner: r, engine: &engine, job: job, res: res, client: client, prune: !plan.incremental, ordered: true, last: plan.startAfter}

	work, downloaded := run.downloaders(ctx)
	// Listing and classifying overlap: the next page is fetched while this one is looked
	// up in the ledger, so a no-change discovery costs about one listing, not the sum.
	pages := make(chan []bucket.Object, 1)
	classified := make(chan error, 1)
	listCtx, stopListing := context.WithCancel(ctx)
	defer stopListing()
	go func() {
		var err error
		for page := range pages {
			if err != nil {
				continue // keep draining
			}
			if err = run.classifyPage(ctx, page, work); err != nil {
				stopListing() // a ledger failure ends the run
			}
		}
		classified <- err
	}()
	listErr := client.List(listCtx, job.Prefix, func(page []bucket.Object) error {
		select {
		case pages <- page:
			return nil
		case <-listCtx.Done():
			return listCtx.Err()
		}
	}, bucket.StartAfter(plan.startAfter))
	close(pages)
	if err := <-classified; err != nil {
		listErr = err // the listing only stopped because of it
	}
	close(work)
	downloaded()

	res.Err = errors.Join(listErr, run.storeErr())
	// An empty listing (a prefix typo, a bucket emptied by mistake) must not forget the
	// ledger: fixing the prefix would download and charge everything again. So the rows
	// after the last listed key go only after a listing that saw objects and completed.
	if res.Err == nil && run.seen > 0 && run.prune {
		if err := run.pruneRange(ctx, run.last, ""); err != nil {
			res.Err = storeFailed(err)
		}
	}
	res.Listing = ListingResult{Mode: ModeFull, Listed: res.Listed, LastFull: prevState.LastFull}
	if plan.incremental {
		res.Listing.Mode, res.Listing.StartAfter = ModeIncremental, plan.startAfter
	}
	if res.Err == nil {
		if err := run.finishListing(ctx, plan, scope); err != nil {
			res.Err = storeFailed(err)
		}
	}
	run.finish(ctx)
	return res
}

// finish completes the Result of any kind of run: the source's newest failed files, the
// PII counts in the validators' order, and the end time.
func (r *run) finish(ctx context.Context) {
	res := r.res
	if recent, err := r.Store.ListFiles(context.WithoutCancel(ctx), r.ledger(), store.FileFailed, MaxRecentErrors); err == nil {
		res.RecentErrors = recent
	} else if res.Err == nil {
		res.Err = storeFailed(fmt.Errorf("listing failed files: %w", err))
	}
	// Files finish in any order; report validators in the order they are configured.
	slices.SortStableFunc(res.PII, func(a, b ingest.PIICount) int {
		return r.job.Validators.Order(a.Validator) - r.job.Validators.Order(b.Validator)
	})
	res.Finished = r.Now()
}

// downloaders starts the run's PerRun download workers: they take work until it is
// closed; wait returns once every download they started committed or rolled back.
func (r *run) downloaders(ctx context.Context) (chan<- work, func()) {
	queue := make(chan work)
	var wg sync.WaitGroup
	for range r.PerRun {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range queue {
				r.download(ctx, w)
			}
		}()
	}
	return queue, wg.Wait
}

type work struct {
	obj      bucket.Object
	attempts int
	// prev is the object's ledger row (Key empty when it has none).
	prev store.FileRecord
}

type run struct {
	*Runner
	engine *ingest.Engine
	job    Job
	res    *Result
	client bucket.Client

	// The listing's position, read and written only by the goroutine that classifies
	// pages: last is the greatest key listed so far and seen counts the objects listed.
	// prune is false for an incremental listing, and cleared with ordered when the
	// listing turns out not to be in key order.
	last    string
	seen    int64
	prune   bool
	ordered bool

	mu       sync.Mutex
	firstErr error
	// unsettled is the smallest key this run left to be retried (deferred, download
	// failed): the next incremental listing must start before it.
	unsettled string
}

func (r *run) tally(f func(*Result)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.res)
}

// fail keeps the first infrastructure error (the store), which fails the run.
func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstErr == nil {
		r.firstErr = storeFailed(err)
	}
}

func (r *run) storeErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstErr
}

func (r *run) ref(obj bucket.Object) ingest.ObjectRef {
	return ingest.ObjectRef{Namespace: r.job.Namespace, Source: r.job.Source, Bucket: r.job.Bucket, Key: obj.Key, ETag: obj.ETag, Size: obj.Size, LastModified: obj.LastModified}
}

func (r *run) location(key string) string { return "s3://" + r.job.Bucket + "/" + key }

// ledger is the source of the ledger rows this run reads and writes.
func (r *run) ledger() string {
	if r.job.DryRun {
		return DryRunLedger(r.job.Source)
	}
	return r.job.Source
}

// classifyPage reads the ledger rows of a listed page's key range, classifies each
// listed object, and prunes the rows of the range that were not listed: objects gone
// from the bucket. S3 lists keys in byte order, so page after page the ranges
// (previous page's last key, this page's last key] cover the whole key space, and a
// discovery holds one page and its rows, never every key of the prefix. In the steady
// state the range read costs what the lookup of the page's keys would.
func (r *run) classifyPage(ctx context.Context, page []bucket.Object, queue chan<- work) error {
	after, through := r.last, page[len(page)-1].Key
	if !inKeyOrder(page, after) {
		// Not S3's order (a non-conforming server): nothing can be proved gone, and no
		// mark can say where to start listing.
		r.prune, r.ordered = false, false
	}
	r.last = max(r.last, through)
	for _, obj := range page {
		if !strings.HasSuffix(obj.Key, "/") {
			r.seen++
		}
	}
	var ledger map[string]store.FileRecord
	var err error
	if r.prune {
		ledger, err = r.ledgerRange(ctx, page, after, through)
	} else {
		keys := make([]string, len(page))
		for i, obj := range page {
			keys[i] = obj.Key
		}
		ledger, err = r.Store.LookupFiles(ctx, r.ledger(), keys)
	}
	if err != nil {
		return storeFailed(fmt.Errorf("looking up %d listed objects in the ledger: %w", len(page), err))
	}
	for _, obj := range page {
		prev, found := ledger[obj.Key]
		if r.skip(obj, prev, found) {
			continue
		}
		if err := r.classify(ctx, obj, prev, found, queue); err != nil {
			return err
		}
	}
	return nil
}

// inKeyOrder says whether page is strictly ascending and after after.
func inKeyOrder(page []bucket.Object, after string) bool {
	prev := after // keys are never empty, so "" sorts before the first
	for _, obj := range page {
		if obj.Key <= prev {
			return false
		}
		prev = obj.Key
	}
	return true
}

// rangeBatch bounds the ledger rows read at once: a page's rows, plus those of objects
// deleted from the bucket between two listed keys (any number), read in batches.
const rangeBatch = 2 * bucket.PageSize

// ledgerRange returns the ledger rows of the listed page, read by its key range
// (after, through], and deletes the range's rows that were not listed.
func (r *run) ledgerRange(ctx context.Context, page []bucket.Object, after, through string) (map[string]store.FileRecord, error) {
	listed := make(map[string]struct{}, len(page))
	for _, obj := range page {
		listed[obj.Key] = struct{}{}
	}
	ledger := make(map[string]store.FileRecord, len(page))
	err := r.scanRange(ctx, after, through, func(rows []store.FileRecord) []string {
		var gone []string
		for _, f := range rows {
			if _, ok := listed[f.Key]; ok {
				ledger[f.Key] = f
			} else {
				gone = append(gone, f.Key)
			}
		}
		return gone
	})
	return ledger, err
}

// pruneRange deletes every ledger row in (after, through] (through "": to the end).
func (r *run) pruneRange(ctx context.Context, after, through string) error {
	return r.scanRange(ctx, after, through, func(rows []store.FileRecord) []string {
		gone := make([]string, len(rows))
		for i, f := range rows {
			gone[i] = f.Key
		}
		return gone
	})
}

// scanRange reads the ledger rows of (after, through] in batches and deletes the keys
// each batch's fn returns. Rows written since the run started are never deleted (the
// store's age guard): a concurrent targeted run may have just recorded them.
func (r *run) scanRange(ctx context.Context, after, through string, fn func([]store.FileRecord) []string) error {
	for {
		rows, err := r.Store.RangeFiles(ctx, r.ledger(), after, through, rangeBatch)
		if err != nil {
			return err
		}
		if gone := fn(rows); len(gone) > 0 {
			n, err := r.Store.DeleteFiles(ctx, r.ledger(), gone, r.res.Started)
			if err != nil {
				return fmt.Errorf("pruning the ledger: %w", err)
			}
			r.tally(func(res *Result) { res.Pruned += int64(n) })
		}
		if len(rows) < rangeBatch {
			return nil
		}
		after = rows[len(rows)-1].Key
	}
}

// classify decides what one listed object needs: nothing (unchanged), a ledger row
// (ignored, too large, deferred) or a download. Only downloads leave this goroutine.
func (r *run) classify(ctx context.Context, obj bucket.Object, prev store.FileRecord, found bool, queue chan<- work) error {
	if strings.HasSuffix(obj.Key, "/") {
		return nil // a folder marker, not a file
	}
	r.tally(func(res *Result) { res.Listed++ })

	if r.unchanged(obj, prev, found) {
		r.tally(func(res *Result) { res.Unchanged++; countState(res, prev.State) })
		return nil
	}
	attempts := prev.Attempts + 1
	if _, _, ok := ingest.FormatOf(obj.Key); !ok {
		// The engine writes the ignored row, naming the extension; nothing is downloaded.
		out, err := r.engine.Process(ctx, r.ref(obj), strings.NewReader(""), ingest.Options{DryRun: r.job.DryRun, Attempts: attempts, Now: r.Now()})
		if err != nil {
			return storeFailed(err) // nothing was read: only the store can fail
		}
		if r.job.DryRun {
			// The engine wrote nothing: the row goes to the dry-run ledger.
			return r.record(ctx, obj, out.State, out.Reason, out.Message, attempts)
		}
		r.tally(func(res *Result) { countState(res, out.State) })
		return nil
	}
	if obj.Size > r.job.Quota.MaxFileSize {
		msg := fmt.Sprintf("%s: the object is %s, larger than the %s maximum file size of IngestionQuota %s; it was not downloaded",
			r.location(obj.Key), quota.FormatBytes(obj.Size), quota.FormatBytes(r.job.Quota.MaxFileSize), r.job.Quota.Key)
		return r.record(ctx, obj, store.FileFailed, ingest.ReasonFileTooLarge, msg, attempts)
	}
	select {
	case queue <- work{obj: obj, attempts: attempts, prev: prev}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unchanged says whether the ledger already holds this version of the object, settled:
// nothing to do for it.
func (r *run) unchanged(obj bucket.Object, prev store.FileRecord, found bool) bool {
	return found && prev.ETag == obj.ETag && prev.Size == obj.Size && r.settled(prev)
}

// settled says whether a ledger row for the same object version needs no more work.
// Deferred rows wait for quota and transient download failures are retried; a file too
// large is retried only once the limit has grown past it.
func (r *run) settled(prev store.FileRecord) bool {
	switch {
	case prev.State == store.FileDeferred:
		return false
	case prev.State == store.FileFailed && (prev.Reason == ingest.ReasonDownloadFailed || prev.Reason == ingest.ReasonStoreRejected):
		return false
	case prev.State == store.FileFailed && prev.Reason == ingest.ReasonFileTooLarge:
		return prev.Size > r.job.Quota.MaxFileSize
	case prev.State == store.FileFailed && prev.Reason == ingest.ReasonParked:
		// A new version (another ETag) is never settled; this one waits for a user.
		return !r.job.RetryParked
	case prev.State == store.FileFailed && r.job.RecheckFailed:
		return false
	}
	return true
}

func (r *run) record(ctx context.Context, obj bucket.Object, state store.FileState, reason, msg string, attempts int) error {
	now := r.Now()
	row := store.FileRecord{
		Source: r.ledger(), Key: obj.Key, ETag: obj.ETag, Size: obj.Size, LastModified: obj.LastModified,
		State: state, Reason: reason, Message: ingest.Shorten(msg, ingest.MaxMessageRunes), Attempts: attempts, FirstSeen: now, UpdatedAt: now,
	}
	if err := r.Store.RecordFile(ctx, row); err != nil {
		return storeFailed(fmt.Errorf("recording %s: %w", obj.Key, err))
	}
	r.tally(func(res *Result) {
		if !r.settled(row) && (r.unsettled == "" || obj.Key < r.unsettled) {
			r.unsettled = obj.Key
		}
		countState(res, state)
		switch state {
		case store.FileFailed:
			res.NewlyFailed++
		case store.FileDeferred:
			res.NewlyDeferred++
		}
	})
	return nil
}

// download holds quota for the object, streams it through the engine and commits. The
// reservation becomes usage in the engine's commit; any path that does not commit
// releases it, so only downloaded-and-processed bytes are ever charged.
func (r *run) download(ctx context.Context, w work) {
	obj := w.obj
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-r.slots }()
	cleanup := context.WithoutCancel(ctx)

	// The attempt is counted before anything can go wrong, so a file that kills the
	// process while it is processed is parked after MaxFileAttempts restarts instead of
	// killing every one. A dry run commits nothing, so it counts nothing.
	tries := 0
	if !r.job.DryRun {
		fresh := w.prev.Reason == ingest.ReasonParked && w.prev.ETag == obj.ETag && r.job.RetryParked
		n, err := r.Store.BeginAttempt(ctx, r.job.Source, obj.Key, obj.ETag, fresh)
		if err != nil {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("counting an attempt of %s: %w", obj.Key, err))
			}
			return
		}
		tries = n
		if tries > r.maxAttempts() {
			r.park(cleanup, obj, w, tries-1, "each attempt stopped before it finished: the manager stopped or crashed while processing the file (e.g. out of memory)")
			return
		}
	}
	// forgive takes back the attempt when it failed for a reason that is not the file's.
	forgive := func() {
		if tries > 0 {
			if err := r.Store.EndAttempt(cleanup, r.job.Source, obj.Key, store.AttemptForgiven); err != nil {
				r.fail(fmt.Errorf("ending an attempt of %s: %w", obj.Key, err))
			}
		}
	}

	// The window is taken per download: a run across midnight charges each file to the
	// day it was downloaded on.
	day, _ := r.job.Quota.Window(r.Now())
	reservation := store.Reservation{Quota: r.job.Quota.Key, Day: day, Source: r.job.Source, Bytes: obj.Size, Limit: r.job.Quota.DailyLimit}
	var id int64
	{
		var err error
		id, err = r.Store.Reserve(ctx, reservation)
		if errors.Is(err, store.ErrQuotaExceeded) {
			_, resetsAt := r.job.Quota.Window(r.Now())
			msg := fmt.Sprintf("%s: %s does not fit in what is left of today's %s quota (IngestionQuota %s); it will be ingested after the reset at %s",
				r.location(obj.Key), quota.FormatBytes(obj.Size), quota.FormatBytes(r.job.Quota.DailyLimit), r.job.Quota.Key, resetsAt.UTC().Format(time.RFC3339))
			forgive()
			if err := r.record(ctx, obj, store.FileDeferred, ingest.ReasonQuotaExceeded, msg, w.attempts-1); err != nil {
				r.fail(err)
			}
			return
		}
		if err != nil {
			forgive()
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("reserving quota for %s: %w", obj.Key, err))
			}
			return
		}
	}
	release := func() {
		if id != 0 {
			if err := r.Runner.release(cleanup, id); err != nil {
				r.fail(fmt.Errorf("releasing quota for %s (retried at the next run): %w", obj.Key, err))
			}
		}
	}

	body, _, err := r.client.Open(ctx, obj.Key, bucket.IfMatch(obj.ETag))
	if err != nil {
		release()
		forgive()
		if ctx.Err() == nil {
			r.downloadFailed(cleanup, obj, err, w.attempts)
		}
		return
	}
	spooled, err := r.spool(failpoint.Reader(failpoint.Download, obj.Key, body), obj)
	body.Close()
	if err != nil {
		release()
		forgive()
		if ctx.Err() == nil {
			r.downloadFailed(cleanup, obj, err, w.attempts)
		}
		return
	}
	defer spooled.Close()
	out, err := r.engine.Process(ctx, r.ref(obj), spooled, ingest.Options{
		Policy: r.job.Policy, DryRun: r.job.DryRun, Agents: r.job.Agents, Validators: r.job.Validators,
		ReservationID: id, Reservation: reservation, Attempts: w.attempts, Now: r.Now(),
	})
	if err != nil {
		// Nothing was committed: the transaction rolled back with the reservation in it.
		release()
		var ce *ingest.CommitError
		switch {
		case ctx.Err() != nil:
			forgive()
		case errors.Is(err, store.ErrRejected):
			// The file's content: the attempt counts.
			if tries >= r.maxAttempts() {
				r.park(cleanup, obj, w, tries, fmt.Sprintf("the store refused the file's records: %s", err))
			} else {
				r.storeRejected(cleanup, obj, err, w.attempts)
			}
		case errors.As(err, &ce):
			// The store is unavailable: the run fails and is retried; the file is not to blame.
			forgive()
			r.fail(fmt.Errorf("committing %s: %w", obj.Key, err))
		default:
			forgive()
			r.downloadFailed(cleanup, obj, err, w.attempts)
		}
		return
	}
	if r.job.DryRun {
		// Nothing was committed, so the hold on the quota becomes usage here, and the
		// result goes to the dry-run ledger.
		if err := r.Store.ChargeReservation(cleanup, id); err != nil {
			r.fail(fmt.Errorf("charging quota for %s: %w", obj.Key, err))
		}
		now := r.Now()
		row := store.FileRecord{
			Source: r.ledger(), Key: obj.Key, ETag: obj.ETag, Size: obj.Size, LastModified: obj.LastModified,
			State: out.State, Reason: out.Reason, Message: ingest.Shorten(out.Message, ingest.MaxMessageRunes), Counts: out.Counts,
			Bytes: out.Bytes, Attempts: w.attempts, FirstSeen: now, UpdatedAt: now,
		}
		if err := r.Store.RecordFile(cleanup, row); err != nil {
			r.fail(fmt.Errorf("recording the dry run of %s: %w", obj.Key, err))
		}
	}
	r.tally(func(res *Result) {
		countState(res, out.State)
		res.Downloaded++
		res.BytesDownloaded += out.Bytes
		res.Conversations.Valid += out.Counts.Valid
		res.Conversations.Invalid += out.Counts.Invalid
		res.Conversations.New += out.Counts.New
		res.Conversations.Updated += out.Counts.Updated
		res.Conversations.Unchanged += out.Counts.Unchanged
		if out.State == store.FileFailed {
			res.NewlyFailed++
			res.DownloadedFailed++
		}
		res.addPII(out)
	})
}

// addPII folds one file's PII counts into the run's.
func (res *Result) addPII(out ingest.Result) {
	var redacted, flagged bool
	for _, c := range out.PII {
		if out.State != store.FileIngested && c.Action != ingest.ActionReject {
			// Nothing of a failed file was stored: it redacted or flagged nothing.
			continue
		}
		if out.State == store.FileIngested {
			redacted = redacted || c.Action == ingest.ActionRedact
			flagged = flagged || c.Action == ingest.ActionFlag
		}
		i := slices.IndexFunc(res.PII, func(p ingest.PIICount) bool { return p.Validator == c.Validator })
		if i < 0 {
			res.PII = append(res.PII, c)
			continue
		}
		res.PII[i].Matches += c.Matches
		res.PII[i].Records += c.Records
	}
	if redacted {
		res.FilesRedacted++
	}
	if flagged {
		res.FilesFlagged++
	}
}

// spool downloads the object to a temporary file before it is parsed. The store holds its
// write lock while a file streams in, and a slow or stalled download must not hold it:
// from disk, a file commits at parse speed. At most MaxFileSize+1 bytes are written (the
// engine fails a longer file as too large); the file is removed when closed.
func (r *run) spool(body io.Reader, obj bucket.Object) (*spoolFile, error) {
	f, err := os.CreateTemp(r.engine.TempDir, spoolPattern)
	if err != nil {
		return nil, fmt.Errorf("spooling %s: %w", obj.Key, err)
	}
	sf := &spoolFile{File: f}
	if _, err := io.Copy(f, io.LimitReader(body, r.job.Quota.MaxFileSize+1)); err != nil {
		sf.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		sf.Close()
		return nil, fmt.Errorf("spooling %s: %w", obj.Key, err)
	}
	return sf, nil
}

// spoolFile is a temporary file removed on Close.
type spoolFile struct{ *os.File }

func (f *spoolFile) Close() error {
	err := f.File.Close()
	if rmErr := os.Remove(f.Name()); err == nil {
		err = rmErr
	}
	return err
}

// downloadFailed records a read that failed part-way (or could not start); the file is
// retried at the next discovery. The message is the bucket package's, which is sanitized.
func (r *run) downloadFailed(ctx context.Context, obj bucket.Object, err error, attempts int) {
	reason := ingest.ReasonDownloadFailed
	msg := fmt.Sprintf("%s: download failed, retried at the next discovery: %s", r.location(obj.Key), safeMessage(err))
	if rerr := r.record(ctx, obj, store.FileFailed, reason, msg, attempts); rerr != nil {
		r.fail(rerr)
	}
}

// park records a file that failed attempts times in a row for reasons retrying does not
// fix: it is not downloaded again until its ETag changes or a user asks (RetryParked).
func (r *run) park(ctx context.Context, obj bucket.Object, w work, attempts int, last string) {
	msg := fmt.Sprintf("%s: parked after %d failed attempts to process this version; %s. It is not downloaded again until the object changes (a new ETag) or a refresh is requested (the %s annotation)",
		r.location(obj.Key), attempts, last, refreshAnnotation)
	if rerr := r.record(ctx, obj, store.FileFailed, ingest.ReasonParked, msg, w.attempts); rerr != nil {
		r.fail(rerr)
	}
}

// refreshAnnotation is the S3Source annotation that asks for a run (api/v1alpha1's
// RefreshAnnotation; this package imports nothing of Kubernetes).
const refreshAnnotation = "dataimport.avon.ai/refresh-requested-at"

// storeRejected records a file the store refused to write: a value the database cannot
// hold got past validation. The message quotes the store's error (which names no
// credential) so the value can be found.
func (r *run) storeRejected(ctx context.Context, obj bucket.Object, err error, attempts int) {
	msg := fmt.Sprintf("%s: the store refused the file's records: %s", r.location(obj.Key), err)
	if rerr := r.record(ctx, obj, store.FileFailed, ingest.ReasonStoreRejected, msg, attempts); rerr != nil {
		r.fail(rerr)
	}
}

// safeMessage keeps only the sanitized message of a bucket error; other errors (the store)
// carry no secrets but are reduced to their text.
func safeMessage(err error) string {
	var be *bucket.Error
	if errors.As(err, &be) {
		return be.Reason + ": " + be.Message
	}
	return err.Error()
}

func countState(res *Result, s store.FileState) {
	switch s {
	case store.FileIngested:
		res.Ingested++
	case store.FileFailed:
		res.Failed++
	case store.FileDeferred:
		res.Deferred++
	case store.FileIgnored:
		res.Ignored++
	}
}
