package plan

import (
	"context"
	"fmt"

	"github.com/avon-ai/data-import-operator/internal/failpoint"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// Tx is one backend transaction as CommitFile needs it.
type Tx interface {
	// Stored returns the ordering fields, origin and ContentHash of the stored rows among
	// keys, rows written earlier in this transaction included.
	Stored(ctx context.Context, keys []Key) (map[Key]store.Conversation, error)
	// Write upserts whole rows.
	Write(ctx context.Context, writes []*store.Conversation) error
	// UpsertFile writes the ledger row, counting the attempt and keeping first_seen.
	UpsertFile(ctx context.Context, f store.FileRecord) error
	// Charge deletes reservation id and adds its bytes to usage.
	Charge(ctx context.Context, id int64, fallback *store.Reservation) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// BatchSize is how many records one lookup and one multi-row upsert carry: per-statement
// overhead dominates single-row statements, and a commit holds at most one batch.
const BatchSize = 256

// BatchBytes bounds the records of one batch too: a batch is written once its records
// hold this many bytes, so a file of large records (up to the engine's 8 MB each) keeps
// a few of them in memory, not BatchSize.
const BatchBytes = 4 << 20

// Commit is CommitFile: it consumes c.Conversations in batches of BatchSize, each looked
// up, decided by Build and written in the transaction, then writes the ledger row with
// the computed New/Updated/Unchanged counts and charges the reservation. Any error,
// the stream's included, rolls everything back.
//
// begin runs only when the first batch is full or the stream has ended, so a file of
// fewer than BatchSize records, or one that fails early, is parsed before the backend's
// write lock is taken (or without taking it at all).
func Commit(ctx context.Context, begin func(context.Context) (Tx, error), c store.FileCommit) (store.RecordCounts, error) {
	var tx Tx
	committed := false
	defer func() {
		// A panic (in the stream or the backend) must not leave the write lock held.
		if tx != nil && !committed {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	counts, err := commit(ctx, begin, &tx, c)
	if err != nil {
		return store.RecordCounts{}, err
	}
	failpoint.Inject(failpoint.Commit, c.File.Key)
	committed = true // whatever Commit returns, the transaction is over
	if err := tx.Commit(ctx); err != nil {
		return store.RecordCounts{}, fmt.Errorf("commit: %w", err)
	}
	return counts, nil
}

func commit(ctx context.Context, begin func(context.Context) (Tx, error), txp *Tx, c store.FileCommit) (store.RecordCounts, error) {
	var n store.RecordCounts
	batch := make([]store.Conversation, 0, BatchSize)
	batchBytes := 0
	flush := func() error {
		if *txp == nil {
			tx, err := begin(ctx)
			if err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			*txp = tx
		}
		if len(batch) == 0 {
			return nil
		}
		stored, err := (*txp).Stored(ctx, Keys(batch))
		if err != nil {
			return err
		}
		p := Build(batch, stored)
		if err := (*txp).Write(ctx, p.Writes); err != nil {
			return err
		}
		n.New, n.Updated, n.Unchanged = n.New+p.Counts.New, n.Updated+p.Counts.Updated, n.Unchanged+p.Counts.Unchanged
		batch, batchBytes = batch[:0], 0
		return nil
	}
	if c.Conversations != nil {
		var flushErr error
		err := c.Conversations(func(conv store.Conversation) bool {
			if flushErr = stamp(&conv, c.Namespace); flushErr != nil {
				return false
			}
			batch = append(batch, conv)
			if batchBytes += len(conv.Raw); len(batch) == BatchSize || batchBytes >= BatchBytes {
				flushErr = flush()
			}
			return flushErr == nil
		})
		if flushErr != nil {
			return n, flushErr
		}
		if err != nil {
			return n, fmt.Errorf("read the file: %w", err)
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	f := c.File
	if c.Complete != nil {
		c.Complete(&f)
	}
	f.Counts.New, f.Counts.Updated, f.Counts.Unchanged = n.New, n.Updated, n.Unchanged
	if err := (*txp).UpsertFile(ctx, f); err != nil {
		return n, err
	}
	if c.ReservationID != 0 {
		if err := (*txp).Charge(ctx, c.ReservationID, &c.Reservation); err != nil {
			return n, err
		}
	}
	return f.Counts, nil
}

// stamp puts conv in the commit's namespace, the only one it may be stored in: a record
// that names another namespace is refused, not moved.
func stamp(conv *store.Conversation, namespace string) error {
	switch {
	case namespace == "":
		return fmt.Errorf("conversation %s/%s: the commit names no namespace", conv.AgentID, conv.ConversationID)
	case conv.Namespace != "" && conv.Namespace != namespace:
		return fmt.Errorf("conversation %s/%s: namespace %q in a commit of namespace %q",
			conv.AgentID, conv.ConversationID, conv.Namespace, namespace)
	}
	conv.Namespace = namespace
	return nil
}

// ChargeTarget picks what a charge adds to usage: the reservation row when it was
// found, else fallback when it names a quota (a restart's ReleaseAll dropped the row,
// but the download happened), else an error.
func ChargeTarget(id int64, row store.Reservation, found bool, fallback *store.Reservation) (store.Reservation, error) {
	switch {
	case found:
		return row, nil
	case fallback != nil && fallback.Quota != "":
		return *fallback, nil
	default:
		return store.Reservation{}, fmt.Errorf("reservation %d not found", id)
	}
}

// Rows is what *sql.Rows and pgx.Rows share.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// SumUsage reads (source, bytes) rows into a total and a per-source map.
func SumUsage(rows Rows) (int64, map[string]int64, error) {
	var total int64
	per := map[string]int64{}
	for rows.Next() {
		var src string
		var n int64
		if err := rows.Scan(&src, &n); err != nil {
			return 0, nil, err
		}
		per[src] += n
		total += n
	}
	return total, per, rows.Err()
}
