package plan

import (
	"context"
	"fmt"

	"github.com/avon-ai/data-import-operator/internal/ingest"
)

// Tx is one backend transaction as CommitFile needs it.
type Tx interface {
	// Stored returns the ordering fields and ContentHash of the stored rows among keys.
	Stored(ctx context.Context, keys []Key) (map[Key]ingest.Conversation, error)
	// Write upserts whole rows.
	Write(ctx context.Context, writes []*ingest.Conversation) error
	// UpsertFile writes the ledger row, counting the attempt and keeping first_seen.
	UpsertFile(ctx context.Context, f ingest.FileRecord) error
	// Charge deletes reservation id and adds its bytes to usage.
	Charge(ctx context.Context, id int64, fallback *ingest.Reservation) error
}

// Commit is CommitFile inside tx: conversations by Build's rule, then the ledger row
// with the computed New/Updated/Unchanged counts, then the reservation's usage.
func Commit(ctx context.Context, tx Tx, c ingest.FileCommit) (ingest.RecordCounts, error) {
	stored, err := tx.Stored(ctx, Keys(c.Conversations))
	if err != nil {
		return ingest.RecordCounts{}, err
	}
	p := Build(c.Conversations, stored)
	if err := tx.Write(ctx, p.Writes); err != nil {
		return ingest.RecordCounts{}, err
	}
	counts := c.File.Counts
	counts.New, counts.Updated, counts.Unchanged = p.Counts.New, p.Counts.Updated, p.Counts.Unchanged
	f := c.File
	f.Counts = counts
	if err := tx.UpsertFile(ctx, f); err != nil {
		return ingest.RecordCounts{}, err
	}
	if c.ReservationID != 0 {
		if err := tx.Charge(ctx, c.ReservationID, &c.Reservation); err != nil {
			return ingest.RecordCounts{}, err
		}
	}
	return counts, nil
}

// ChargeTarget picks what a charge adds to usage: the reservation row when it was
// found, else fallback when it names a quota (a restart's ReleaseAll dropped the row,
// but the download happened), else an error.
func ChargeTarget(id int64, row ingest.Reservation, found bool, fallback *ingest.Reservation) (ingest.Reservation, error) {
	switch {
	case found:
		return row, nil
	case fallback != nil && fallback.Quota != "":
		return *fallback, nil
	default:
		return ingest.Reservation{}, fmt.Errorf("reservation %d not found", id)
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
