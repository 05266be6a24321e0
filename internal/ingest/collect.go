package ingest

import (
	"context"
	"fmt"
	"strings"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// collector turns one file's records into conversations, errors and counts.
type collector struct {
	ctx  context.Context
	ref  ObjectRef
	opts Options
	lim  Limits

	p parser
	v validator
	// pii applies the source's PII validators (nil when none are configured).
	pii *piiScanner
	h   hasher
	rec record

	errs []RecordError
	more int
	// findings locate Redact and Flag matches, capped like errs.
	findings     []RecordError
	moreFindings int
	fatalErr     *fileError
	counts       store.RecordCounts
	// sink receives the valid records of a file being committed (nil in a dry run).
	sink *pipe
	// A dry run lists the distinct identities instead, and counts in-file duplicates as
	// Unchanged; a commit leaves both to the store, so it holds no per-identity state.
	seen  map[ConversationKey]struct{}
	pairs []ConversationKey
	// position numbers records across the file (entry-major in archives).
	position int64
	// arena backs Raw of many records with few allocations.
	arena   []byte
	ignored []string
}

// arenaChunk is the allocation unit of Raw bytes.
const arenaChunk = 1 << 20

// ctxCheckEvery is how many records pass between context checks.
const ctxCheckEvery = 256

func newCollector(ctx context.Context, ref ObjectRef, opts Options, lim Limits, sink *pipe) *collector {
	c := &collector{ctx: ctx, ref: ref, opts: opts, lim: lim, sink: sink}
	if sink == nil {
		c.seen = map[ConversationKey]struct{}{}
	}
	c.p.maxDepth = lim.MaxDepth
	c.v.agents = opts.Agents
	if opts.Validators.Len() > 0 {
		c.v.scrub = opts.Validators.Scrub
		c.pii = newPIIScanner(opts.Validators, lim.MaxDepth)
	}
	return c
}

// where locates a record: its entry and either its JSONL line or its array index.
type where struct {
	entry string
	line  int64
	index int64
}

func (c *collector) addError(at where, path, problem string) {
	if len(c.errs) >= MaxErrorsPerFile {
		c.more++
		return
	}
	if c.pii != nil {
		path, problem = c.opts.Validators.Scrub(path), c.opts.Validators.Scrub(problem)
	}
	c.errs = append(c.errs, RecordError{Key: c.ref.Key, Entry: at.entry, Line: at.line, Index: at.index, Path: path, Problem: problem})
}

// record validates one record's bytes and keeps it when valid. It returns ctx's error
// when the context ended.
func (c *collector) record(src []byte, at where) error {
	pos := c.position
	c.position++
	if pos%ctxCheckEvery == 0 {
		if err := c.ctx.Err(); err != nil {
			return err
		}
	}
	if err := c.p.parse(src); err != nil {
		c.invalid()
		c.addError(at, "", err.Error())
		return nil
	}
	c.rec = record{raw: c.p.out, tape: c.p.tape}
	if !c.v.validate(&c.rec) {
		c.invalid()
		for _, fe := range c.v.errs {
			c.addError(at, fe.path, fe.problem)
		}
		return nil
	}
	if c.pii != nil {
		// After validation, before hashing: a redacted record is what is hashed, stored
		// and compared for de-duplication.
		c.pii.errPaths, c.pii.findPaths = MaxErrorsPerFile-len(c.errs), MaxErrorsPerFile-len(c.findings)
		red, ok := c.pii.scan(&c.rec)
		if !ok {
			c.invalid()
			for _, fe := range c.pii.errs {
				c.addError(at, fe.path, fe.problem)
			}
			return nil
		}
		c.rec = *red
		for _, fe := range c.pii.finds {
			if len(c.findings) >= MaxErrorsPerFile {
				c.moreFindings++
				continue
			}
			// A path names keys, and a key can be personal data too.
			c.findings = append(c.findings, RecordError{Key: c.ref.Key, Entry: at.entry, Line: at.line, Index: at.index,
				Path: c.opts.Validators.Scrub(fe.path), Problem: fe.problem})
		}
	}
	hash, ok := c.h.sum(&c.rec)
	if !ok {
		c.invalid()
		key := c.rec.str(c.h.dup)
		c.addError(at, c.rec.pathTo(c.h.dup), fmt.Sprintf("duplicate key %s (want each key once per object)", quoteShort(key)))
		return nil
	}
	c.counts.Valid++
	if c.opts.Policy == SkipFile && c.counts.Invalid > 0 {
		// The file will commit nothing: keep counting, stop keeping.
		return nil
	}
	info := c.v.info
	conv := store.Conversation{
		AgentID: info.agentID, ConversationID: info.conversationID,
		ActivityTime: info.activity, ContentHash: hash,
		ObjectKey: c.ref.Key, ObjectLastModified: c.ref.LastModified,
		Position: pos, Source: c.ref.Source,
	}
	if c.sink != nil {
		// The store compares it with what it holds, earlier records of this file included.
		conv.Raw = c.keep(c.rec.raw)
		return c.sink.send(conv)
	}
	id := ConversationKey{AgentID: conv.AgentID, ConversationID: conv.ConversationID}
	if _, dup := c.seen[id]; dup {
		c.counts.Unchanged++
		return nil
	}
	c.seen[id] = struct{}{}
	c.pairs = append(c.pairs, id)
	return nil
}

// invalid counts an invalid record. Under SkipFile the file will commit nothing, so a
// commit's stream ends here and the store rolls back while the rest is still checked.
func (c *collector) invalid() {
	c.counts.Invalid++
	if c.opts.Policy == SkipFile && c.sink != nil {
		c.sink.doom()
	}
}

// keep copies raw into the arena; Raw slices share chunks but never overlap.
func (c *collector) keep(raw []byte) []byte {
	if len(raw) > arenaChunk/4 {
		return append([]byte(nil), raw...)
	}
	if cap(c.arena)-len(c.arena) < len(raw) {
		c.arena = make([]byte, 0, arenaChunk)
	}
	start := len(c.arena)
	c.arena = append(c.arena, raw...)
	return c.arena[start:len(c.arena):len(c.arena)]
}

func (c *collector) ignore(entry, why string) {
	c.ignored = append(c.ignored, entry+": "+why)
}

// fatal fails the whole file; the first file-level error wins.
func (c *collector) fatal(fe *fileError) {
	if c.fatalErr == nil {
		c.fatalErr = fe
	}
}

// finish decides the file's state and message.
func (c *collector) finish(res *Result) {
	res.Errors, res.MoreErrors, res.Ignored = c.errs, c.more, c.ignored
	res.Counts.Valid, res.Counts.Invalid = c.counts.Valid, c.counts.Invalid
	if c.pii != nil {
		res.PII = c.pii.fileCounts()
		res.PIIFindings, res.MorePIIFindings = c.findings, c.moreFindings
	}
	loc := c.ref.Key
	switch {
	case c.fatalErr != nil:
		if c.fatalErr.entry != "" {
			loc += "!" + Shorten(c.fatalErr.entry, maxNameRunes)
		}
		res.State, res.Reason, res.Message = store.FileFailed, c.fatalErr.reason, loc+": "+c.fatalErr.msg
		// The file was not read as records, so it has no record counts.
		res.Counts = store.RecordCounts{}
		return
	case c.counts.Invalid > 0 && c.opts.Policy == SkipFile:
		res.State, res.Reason = store.FileFailed, ReasonInvalidRecords
		res.Message = fmt.Sprintf("%s: %d of %d records invalid, nothing committed (policy SkipFile): %s",
			loc, c.counts.Invalid, c.counts.Invalid+c.counts.Valid, c.firstErrors())
		return
	case c.counts.Valid == 0:
		res.State, res.Reason = store.FileFailed, ReasonNoValidRecords
		if c.counts.Invalid > 0 {
			res.Message = fmt.Sprintf("%s: none of %d records is valid: %s", loc, c.counts.Invalid, c.firstErrors())
		} else {
			res.Message = loc + ": the file holds no conversations"
		}
		if len(c.ignored) > 0 {
			res.Message += fmt.Sprintf(" (%d archive entries ignored)", len(c.ignored))
		}
		return
	}
	res.State, res.Reason = store.FileIngested, ReasonIngested
	res.Pairs = c.pairs
	res.Counts.Unchanged = c.counts.Unchanged
	res.Message = fmt.Sprintf("%s: %d valid records", loc, c.counts.Valid)
	if c.counts.Invalid > 0 {
		res.Message += fmt.Sprintf(", %d invalid skipped (policy SkipRecord): %s", c.counts.Invalid, c.firstErrors())
	}
	if c.counts.Unchanged > 0 {
		res.Message += fmt.Sprintf(", %d duplicates within the file", c.counts.Unchanged)
	}
	if len(c.ignored) > 0 {
		res.Message += fmt.Sprintf(", %d archive entries ignored", len(c.ignored))
	}
	if pii := SummarizePII(res.PII); pii != "" {
		res.Message += "; " + pii
	}
}

// shownInMessage is how many errors a Result's Message quotes.
const shownInMessage = 3

func (c *collector) firstErrors() string {
	var parts []string
	for i, e := range c.errs {
		if i == shownInMessage {
			break
		}
		parts = append(parts, e.Error())
	}
	s := strings.Join(parts, "; ")
	if rest := len(c.errs) + c.more - len(parts); rest > 0 {
		s += fmt.Sprintf("; and %d more", rest)
	}
	return s
}
