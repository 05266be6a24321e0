package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

// statConcurrency bounds the HeadObject requests of one targeted run in flight: they are
// small, and a burst of events must not open a connection per key.
const statConcurrency = 8

// RunKeys processes the named keys of the job's prefix without listing it: each key is
// looked up (HeadObject) for its ETag and size, then classified against the ledger and
// downloaded exactly as a listed object would be, so the ledger, the ETag rules and the
// quota decide as they do for a discovery. Keys outside the prefix, folder markers and
// objects that no longer exist are skipped; nothing is pruned. The client must implement
// bucket.Stater.
//
// The Result is Targeted: Listed counts keys new to the ledger, and the state counts are
// the changes this run made to the source's totals. Err is set when a lookup failed for
// another reason than a missing object (the caller falls back to a full discovery).
func (r *Runner) RunKeys(ctx context.Context, client bucket.Client, job Job, keys []string) *Result {
	res := &Result{Started: r.Now(), Targeted: true}
	stater, ok := client.(bucket.Stater)
	if !ok {
		res.Err = errors.New("the bucket client cannot look up single objects")
		res.Finished = r.Now()
		return res
	}
	engine := *r.Engine
	engine.Limits.MaxFileBytes = job.Quota.MaxFileSize
	run := &run{Runner: r, engine: &engine, job: job, res: res, client: client}

	objs, statErr := statKeys(ctx, stater, job.Prefix, keys)

	work, downloaded := run.downloaders(ctx)
	var before Result // the ledger states of the keys seen before this run
	var classifyErr error
	for page := range slices.Chunk(objs, bucket.PageSize) {
		if classifyErr = run.classifyKnown(ctx, page, work, &before); classifyErr != nil {
			break
		}
	}
	close(work)
	downloaded()

	res.Err = errors.Join(statErr, classifyErr, run.storeErr())
	res.Listed -= before.Listed
	res.Ingested -= before.Ingested
	res.Failed -= before.Failed
	res.Deferred -= before.Deferred
	res.Ignored -= before.Ignored
	run.finish(ctx)
	return res
}

// classifyKnown is classifyPage for looked-up objects, noting the ledger state each had
// before, so the run can report changes instead of totals.
func (r *run) classifyKnown(ctx context.Context, page []bucket.Object, queue chan<- work, before *Result) error {
	keys := make([]string, len(page))
	for i, obj := range page {
		keys[i] = obj.Key
	}
	ledger, err := r.Store.LookupFiles(ctx, r.ledger(), keys)
	if err != nil {
		return storeFailed(fmt.Errorf("looking up %d event-named objects in the ledger: %w", len(keys), err))
	}
	for _, obj := range page {
		prev, found := ledger[obj.Key]
		if r.skip(obj, prev, found) {
			continue // events name candidates: include, exclude and maxFileAge still decide
		}
		if found {
			before.Listed++
			countState(before, prev.State)
		}
		if err := r.classify(ctx, obj, prev, found, queue); err != nil {
			return err
		}
	}
	return nil
}

// statKeys looks up the distinct keys under prefix, in key order. A missing object is
// skipped (deleted since the event); the first other failure is returned with the
// objects found.
func statKeys(ctx context.Context, stater bucket.Stater, prefix string, keys []string) ([]bucket.Object, error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	keys = slices.DeleteFunc(keys, func(k string) bool { return !strings.HasPrefix(k, prefix) || strings.HasSuffix(k, "/") })

	objs := make([]bucket.Object, len(keys))
	found := make([]bool, len(keys))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range min(statConcurrency, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				obj, err := stater.Stat(ctx, keys[i])
				switch {
				case err == nil:
					objs[i], found[i] = obj, true
				case bucket.ReasonOf(err) == bucket.ReasonObjectNotFound:
				default:
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range keys {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	out := objs[:0]
	for i, obj := range objs {
		if found[i] {
			out = append(out, obj)
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}
