package ingest

import (
	"errors"
	"sync"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// Pipelining: a file being committed is parsed on its own goroutine while the store
// writes on the caller's, so validation and database inserts overlap on two cores. The
// records travel in batches (one channel operation per batch, not per record) through
// a channel of pipeDepth batches, which, with the batch being filled and the one the
// store is taking records from (into its own batch, which shares their bytes), is all of
// the file a commit holds in memory. A batch is sent at pipeBatch records or once its
// records reach pipeBatchBytes, so large records do not multiply the bound.
const (
	pipeBatch      = 256
	pipeBatchBytes = 4 << 20
	pipeDepth      = 2
)

// MaxQueuedRecordBytes bounds the bytes of one file's records waiting for the store
// while it is committed (about 49 MB): pipeDepth+2 batches, each under pipeBatchBytes
// plus the record that filled it (at most DefaultMaxRecordBytes). Typical records (a few
// kB) keep it at a few MB. The readers add the record being parsed (up to three copies of
// MaxRecordBytes: the line, the compacted record and its tape).
const MaxQueuedRecordBytes = (pipeDepth + 2) * (pipeBatchBytes + DefaultMaxRecordBytes)

// errStopped ends a parse whose consumer went away (the store failed or gave up).
var errStopped = errors.New("ingest: the store stopped reading the file")

// pipe carries one file's conversations from its parsing goroutine to the store.
type pipe struct {
	out  chan []store.Conversation
	stop chan struct{} // closed when the consumer gives up
	done chan struct{} // closed when the parsing goroutine has returned
	// err is the parse's error; doomed says out was closed early because the file
	// will fail (an invalid record under SkipFile). Both are read after out or done close.
	err    error
	doomed bool

	batch      []store.Conversation
	batchBytes int
	closed     bool
	stopOnce   sync.Once
}

func newPipe() *pipe {
	return &pipe{out: make(chan []store.Conversation, pipeDepth), stop: make(chan struct{}), done: make(chan struct{})}
}

// run parses on a new goroutine; parse's error is kept for the consumer.
func (p *pipe) run(parse func() error) {
	go func() {
		defer close(p.done)
		err := parse()
		if err == nil {
			err = p.flush()
		}
		p.err = err
		p.close()
	}()
}

// send queues one conversation; it fails with errStopped when the consumer went away.
func (p *pipe) send(c store.Conversation) error {
	if p.closed {
		return nil
	}
	if p.batch == nil {
		p.batch = make([]store.Conversation, 0, pipeBatch)
	}
	p.batch = append(p.batch, c)
	p.batchBytes += len(c.Raw)
	if len(p.batch) < pipeBatch && p.batchBytes < pipeBatchBytes {
		return nil
	}
	return p.flush()
}

func (p *pipe) flush() error {
	if p.closed || len(p.batch) == 0 {
		return nil
	}
	select {
	case p.out <- p.batch:
		p.batch, p.batchBytes = nil, 0
		return nil
	case <-p.stop:
		return errStopped
	}
}

// doom ends the stream early: the file will fail, so nothing more is sent and the
// store can roll back while the rest of the file is still checked.
func (p *pipe) doom() {
	if !p.closed {
		p.doomed = true
		p.batch, p.batchBytes = nil, 0
		p.close()
	}
}

func (p *pipe) close() {
	if !p.closed {
		p.closed = true
		close(p.out)
	}
}

// halt tells the parser to stop sending and waits for it to return.
func (p *pipe) halt() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wait()
}

func (p *pipe) wait() { <-p.done }
