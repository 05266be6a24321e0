package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// Engine reads, validates, de-duplicates and commits objects. It is safe for concurrent
// use: each Process call has its own buffers.
type Engine struct {
	// Store receives the CommitFile of each processed file (two for a failed one: the
	// rolled-back stream, then the ledger row); it may be nil for dry runs.
	Store store.Store
	// Limits bound each file; zero fields take the defaults.
	Limits Limits
	// TempDir holds ZIP objects spooled for random access ("" means os.TempDir()).
	TempDir string
}

// New returns an Engine with the default limits.
func New(st store.Store) *Engine { return &Engine{Store: st} }

// Options are the per-call settings of Process.
type Options struct {
	// Policy is what an invalid record does to its file ("" means SkipFile).
	Policy InvalidRecordPolicy
	// DryRun validates and reports but commits nothing (the Store is not called).
	DryRun bool
	// Agents, when non-nil, is the allow-list of agent_id values ("the agent exists").
	Agents map[string]struct{}
	// Validators are the PII validators to apply (nil: none); see pii.go.
	Validators *Validators
	// ReservationID and Reservation are passed to CommitFile: the quota held for this
	// download becomes usage in the same transaction as the file's data (or, for a
	// failed file, as its ledger row).
	ReservationID int64
	Reservation   store.Reservation
	// Attempts is recorded in the ledger row.
	Attempts int
	// Now stamps the ledger row; zero means time.Now().
	Now time.Time
}

// ConversationKey is a conversation's identity within its namespace (one file's records
// all belong to the file's namespace).
type ConversationKey struct {
	AgentID        string `json:"agent_id"`
	ConversationID string `json:"conversation_id"`
}

// RecordError is one problem, located as precisely as the input allows.
type RecordError struct {
	// Key is the object key (or file name).
	Key string `json:"key"`
	// Entry is the archive entry, if the object is an archive.
	Entry string `json:"entry,omitempty"`
	// Line is the 1-based JSONL line (0 when not a JSONL record).
	Line int64 `json:"line,omitempty"`
	// Index is the 0-based position in a JSON array (-1 when not an array element).
	Index int64 `json:"index"`
	// Path is the JSON path inside the record ("" for the record itself).
	Path string `json:"path,omitempty"`
	// Problem says what is wrong with the value and what was expected.
	Problem string `json:"problem"`
}

// Location is where the error is, e.g. "a.zip!2025/a.jsonl:17" or "a.json[3]".
func (e RecordError) Location() string {
	var b strings.Builder
	b.WriteString(e.Key)
	if e.Entry != "" {
		b.WriteString("!")
		b.WriteString(Shorten(e.Entry, maxNameRunes))
	}
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.FormatInt(e.Line, 10))
	}
	if e.Index >= 0 {
		b.WriteString(index(int(e.Index)))
	}
	return b.String()
}

func (e RecordError) Error() string {
	if e.Path == "" {
		return e.Location() + ": " + e.Problem
	}
	return e.Location() + ": " + Shorten(e.Path, maxNameRunes) + ": " + e.Problem
}

// Result is the outcome of one file. Bad content is a Result with State FileFailed, never
// an error.
type Result struct {
	Key    string          `json:"key"`
	Format Format          `json:"format,omitempty"`
	State  store.FileState `json:"state"`
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`
	// Message is for humans: the file-level problem or the first record errors.
	Message string             `json:"message"`
	Counts  store.RecordCounts `json:"counts"`
	// Errors are the first MaxErrorsPerFile problems; MoreErrors counts the rest.
	Errors     []RecordError `json:"errors,omitempty"`
	MoreErrors int           `json:"more_errors,omitempty"`
	// PII counts, per validator that matched, what the PII validators found (records
	// rejected, redacted or flagged). A failed file's counts cover the records read.
	PII []PIICount `json:"pii,omitempty"`
	// PIIFindings locate the first MaxErrorsPerFile Redact and Flag matches (record and
	// JSON path, validator, count; never the text); MorePIIFindings counts the rest.
	// Reject matches are in Errors.
	PIIFindings     []RecordError `json:"pii_findings,omitempty"`
	MorePIIFindings int           `json:"more_pii_findings,omitempty"`
	// Ignored lists archive entries not processed, each with why.
	Ignored []string `json:"ignored,omitempty"`
	// Pairs are, in a dry run, the distinct identities that would be written. A commit
	// leaves them empty: it streams the file and keeps nothing per identity.
	Pairs []ConversationKey `json:"pairs,omitempty"`
	// Bytes is how many bytes were read from the body.
	Bytes int64 `json:"bytes"`
}

// Valid reports whether the file would be (or was) ingested.
func (r *Result) Valid() bool { return r.State == store.FileIngested }

// fileError fails a whole file: its content cannot be read as records.
type fileError struct {
	reason string
	entry  string
	msg    string
}

func (e *fileError) Error() string { return e.msg }

func failf(reason, format string, args ...any) *fileError {
	return &fileError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// CommitError is a failure of the store while it committed (or recorded) a file, as
// opposed to a failure to read the file's body. errors.Is(err, store.ErrRejected) tells
// whether the file's content caused it.
type CommitError struct {
	Key string
	Err error
}

func (e *CommitError) Error() string { return "commit " + e.Key + ": " + e.Err.Error() }
func (e *CommitError) Unwrap() error { return e.Err }

// errTooLarge marks a body longer than MaxFileBytes.
var errTooLarge = errors.New("file too large")

// body counts and bounds what is read from the caller's stream, and remembers the
// stream's own error so a failed download is told apart from bad content.
type body struct {
	r     io.Reader
	n     int64
	limit int64
	err   error
}

func (b *body) Read(p []byte) (int, error) {
	if b.n > b.limit {
		return 0, errTooLarge
	}
	if rem := b.limit + 1 - b.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		return n, errTooLarge
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Process reads one object, validates its records and (unless opts.DryRun) commits the
// outcome in one Store.CommitFile transaction: the conversations of an ingested file,
// streamed into the store while the object is still being read, its ledger row and the
// quota reservation. A file that turns out to fail (an invalid record under SkipFile, a
// file-level problem, no valid record) rolls that transaction back; its ledger row is
// then committed alone, with the reservation, by a second CommitFile.
//
// The returned error is for infrastructure failures only (the body could not be read,
// the store failed, ctx ended); nothing of the file is committed then, and the Result
// holds what was learned so far, with Reason DownloadFailed when the body failed.
// Invalid content is reported in the Result.
func (e *Engine) Process(ctx context.Context, ref ObjectRef, r io.Reader, opts Options) (Result, error) {
	lim := e.Limits.withDefaults()
	if opts.Policy == "" {
		opts.Policy = SkipFile
	}
	format, ext, ok := FormatOf(ref.Key)
	res := Result{Key: ref.Key, Format: format}
	if !ok {
		res.State, res.Reason, res.Message = store.FileIgnored, ReasonUnsupportedFormat, ref.Key+": "+unsupportedMessage(ext)
		res.Format = ""
		if opts.DryRun || e.Store == nil {
			return res, nil
		}
		// Nothing was downloaded, so nothing is charged.
		if opts.ReservationID != 0 {
			if err := e.Store.Release(ctx, opts.ReservationID); err != nil {
				return res, &CommitError{Key: ref.Key, Err: fmt.Errorf("release reservation %d: %w", opts.ReservationID, err)}
			}
		}
		if err := e.Store.RecordFile(ctx, e.ledgerRow(ref, opts, &res)); err != nil {
			return res, &CommitError{Key: ref.Key, Err: err}
		}
		return res, nil
	}
	b := &body{r: r, limit: lim.MaxFileBytes}
	read := func(c *collector) error {
		if ref.Size > lim.MaxFileBytes {
			return errTooLarge
		}
		switch format {
		case FormatZip:
			return c.readZip(b, e.TempDir)
		case FormatTarGz:
			return c.readTarGz(b)
		}
		return c.readStream(b, format, "")
	}
	if opts.DryRun {
		// Validation only: no transaction, and the caller's goroutine does all the work.
		c := newCollector(ctx, ref, opts, lim, nil)
		err := conclude(c, b, read(c), &res)
		return res, err
	}
	if e.Store == nil {
		return res, errors.New("ingest: no store configured (use DryRun)")
	}
	return e.commit(ctx, ref, opts, lim, b, read, res)
}

// errFileFailed ends the stream of a file whose content failed: its transaction rolls
// back and the failure is committed with the ledger row alone.
var errFileFailed = errors.New("ingest: the file failed; nothing of it is committed")

// commit parses on a goroutine feeding the store's transaction (see pipe).
func (e *Engine) commit(ctx context.Context, ref ObjectRef, opts Options, lim Limits, b *body, read func(*collector) error, res Result) (Result, error) {
	p := newPipe()
	c := newCollector(ctx, ref, opts, lim, p)
	p.run(func() error { return read(c) })
	// Whatever happens to the store call (a panic included), the parser is released;
	// halt is idempotent and returns at once when parsing already ended.
	defer p.halt()
	var concluded bool
	var readErr error
	finish := func() error {
		p.wait()
		concluded = true
		readErr = conclude(c, b, p.err, &res)
		return readErr
	}
	stream := func(yield func(store.Conversation) bool) error {
		for batch := range p.out {
			for _, conv := range batch {
				if !yield(conv) {
					return store.ErrStreamStopped
				}
			}
		}
		if p.doomed {
			return errFileFailed
		}
		if err := finish(); err != nil {
			return err
		}
		if res.State != store.FileIngested {
			return errFileFailed
		}
		return nil
	}
	commit := store.FileCommit{
		Namespace:     ref.Namespace,
		File:          e.ledgerRow(ref, opts, &res),
		Conversations: stream,
		Complete:      func(f *store.FileRecord) { *f = e.ledgerRow(ref, opts, &res) },
		ReservationID: opts.ReservationID, Reservation: opts.Reservation,
	}
	counts, err := e.Store.CommitFile(ctx, commit)
	if !concluded {
		// The stream ended early. A doomed file sends nothing more, so its parser runs to
		// the end and the Result is complete; otherwise the store failed or stopped
		// reading, and the parser must not wait for it.
		p.halt()
		finish()
		if err == nil {
			err = errors.New("the store returned before reading the whole file")
		}
	}
	switch {
	case readErr != nil && !errors.Is(readErr, errStopped):
		// The body failed or ctx ended: nothing was committed.
		return res, fmt.Errorf("read %s: %w", ref.Key, readErr)
	case err == nil:
		res.Counts.New, res.Counts.Updated, res.Counts.Unchanged = counts.New, counts.Updated, counts.Unchanged
		return res, nil
	case !errors.Is(err, errFileFailed):
		return res, &CommitError{Key: ref.Key, Err: err}
	}
	// As before streaming: a failed file records its ledger row and is charged.
	commit = store.FileCommit{Namespace: ref.Namespace, File: e.ledgerRow(ref, opts, &res), ReservationID: opts.ReservationID, Reservation: opts.Reservation}
	if _, err := e.Store.CommitFile(ctx, commit); err != nil {
		return res, &CommitError{Key: ref.Key, Err: err}
	}
	return res, nil
}

// conclude classifies how reading ended and decides the file's Result. It returns an
// error only for infrastructure failures: the body failed, or ctx ended.
func conclude(c *collector, b *body, err error, res *Result) error {
	res.Bytes = b.n
	var fe *fileError
	switch {
	case errors.Is(err, errTooLarge):
		c.fatal(failf(ReasonFileTooLarge, "the file is larger than the %s limit", quota.FormatBytes(c.lim.MaxFileBytes)))
	case b.err != nil:
		res.State, res.Reason, res.Message = store.FileFailed, ReasonDownloadFailed, c.ref.Key+": reading the object failed"
		return fmt.Errorf("read %s: %w", c.ref.Key, b.err)
	case errors.As(err, &fe):
		c.fatal(fe)
	case err != nil:
		return err
	}
	c.finish(res)
	res.Message = Shorten(res.Message, MaxMessageRunes)
	return nil
}

func (e *Engine) ledgerRow(ref ObjectRef, opts Options, res *Result) store.FileRecord {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	return store.FileRecord{
		Source: ref.Source, Key: ref.Key, ETag: ref.ETag, Size: ref.Size, LastModified: ref.LastModified,
		State: res.State, Reason: res.Reason, Message: Shorten(res.Message, MaxMessageRunes), Counts: res.Counts,
		Bytes: res.Bytes, Attempts: opts.Attempts, FirstSeen: now, UpdatedAt: now,
		PII: piiTotals(res),
	}
}

// piiTotals are what a file adds to its source's lifetime PII counts: everything its
// validators found when it was stored, only the rejections when it failed (nothing of a
// failed file was stored, so it redacted or flagged nothing).
func piiTotals(res *Result) []store.PIITotal {
	var out []store.PIITotal
	for _, c := range res.PII {
		if res.State != store.FileIngested && c.Action != ActionReject {
			continue
		}
		out = append(out, store.PIITotal{Validator: c.Validator, Action: string(c.Action), Records: c.Records, Matches: c.Matches})
	}
	return out
}
