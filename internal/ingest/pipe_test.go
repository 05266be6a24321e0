package ingest

import (
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// The records waiting for the store are bounded in bytes, not only in count: large
// records travel a few per batch, so the queue holds at most pipeDepth batches of about
// pipeBatchBytes.
func TestPipeBatchesAreBoundedInBytes(t *testing.T) {
	p := newPipe()
	raw := make([]byte, 1<<20)
	perBatch := pipeBatchBytes / len(raw)
	// Fill the queue with no consumer: pipeDepth full batches fit without blocking.
	for range pipeDepth * perBatch {
		if err := p.send(store.Conversation{Raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.out) != pipeDepth {
		t.Fatalf("%d batches queued after %d records of 1 MiB, want %d: a batch waits for %d records whatever their size",
			len(p.out), pipeDepth*perBatch, pipeDepth, pipeBatch)
	}
	for range pipeDepth {
		if b := <-p.out; len(b)*len(raw) > pipeBatchBytes {
			t.Errorf("a batch of %d MiB, want at most %d bytes", len(b), pipeBatchBytes)
		}
	}
	if MaxQueuedRecordBytes != (pipeDepth+2)*(pipeBatchBytes+DefaultMaxRecordBytes) {
		t.Errorf("MaxQueuedRecordBytes = %d does not match the pipe's bounds", MaxQueuedRecordBytes)
	}
}
