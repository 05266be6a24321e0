package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// BenchmarkSourceUsage is what a source's reconcile pays to learn today's usage of its
// quota and its own share, with 10,000 sources charged in that quota: every row into a
// per-source map (Usage, what stepUsage called before), or two sums in SQL (SourceUsage).
func BenchmarkSourceUsage(b *testing.B) {
	ctx := context.Background()
	s := open(b)
	const sources, quota, day = 10_000, "ns/default", "2026-03-10"
	for i := range sources {
		id, err := s.Reserve(ctx, store.Reservation{Quota: quota, Day: day, Source: fmt.Sprintf("ns/s%05d", i), Bytes: 100, Limit: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.ChargeReservation(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("usage-map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			total, per, err := s.Usage(ctx, quota, day)
			if err != nil || total != 100*sources || per["ns/s00042"] != 100 {
				b.Fatalf("%d %d %v", total, per["ns/s00042"], err)
			}
		}
	})
	b.Run("source-sum", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			total, own, err := s.SourceUsage(ctx, quota, day, "ns/s00042")
			if err != nil || total != 100*sources || own != 100 {
				b.Fatalf("%d %d %v", total, own, err)
			}
		}
	})
}
