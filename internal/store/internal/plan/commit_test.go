package plan

import (
	"context"
	"strconv"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// batchTx records the size of each batch written.
type batchTx struct{ batches []int }

func (t *batchTx) Stored(context.Context, []Key) (map[Key]store.Conversation, error) {
	return nil, nil
}
func (t *batchTx) Write(_ context.Context, w []*store.Conversation) error {
	t.batches = append(t.batches, len(w))
	return nil
}
func (t *batchTx) UpsertFile(context.Context, store.FileRecord) error      { return nil }
func (t *batchTx) Charge(context.Context, int64, *store.Reservation) error { return nil }
func (t *batchTx) Commit(context.Context) error                            { return nil }
func (t *batchTx) Rollback(context.Context) error                          { return nil }

// A commit holds at most one batch, bounded by BatchSize records and by BatchBytes of
// records: large records are written a few at a time, not 256 at once.
func TestCommitBatchesAreBoundedInBytes(t *testing.T) {
	raw := make([]byte, 1<<20)
	var convs []store.Conversation
	for i := range 10 {
		c := rec("c"+strconv.Itoa(i), "h", 0, "k", int64(i))
		c.Raw = raw
		convs = append(convs, c)
	}
	tx := &batchTx{}
	_, err := Commit(context.Background(), func(context.Context) (Tx, error) { return tx, nil },
		store.FileCommit{Namespace: "ns", Conversations: store.StreamOf(convs...)})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range tx.batches {
		if n*len(raw) > BatchBytes+len(raw) {
			t.Errorf("a batch of %d records of 1 MiB, want at most %d bytes and one record", n, BatchBytes)
		}
		total += n
	}
	if total != len(convs) {
		t.Fatalf("%d records written, want %d", total, len(convs))
	}
}
