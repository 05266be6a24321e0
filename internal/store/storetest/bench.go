package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// benchConversations is the size of one benchmarked file: a large daily export.
const benchConversations = 2000

// benchFile builds a file of n seed-shaped conversations (about 1.7 KB each) whose
// activity is shifted by shift.
func benchFile(key string, n int, shift time.Duration) Commit {
	msg := strings.Repeat("I was charged twice for my subscription this month. ", 30)
	convs := make([]store.Conversation, n)
	for i := range convs {
		convs[i] = Conv(fmt.Sprintf("agent-%d", i%7), fmt.Sprintf("conv-%06d", i), day0.Add(shift), msg)
	}
	return File(source, key, day0.Add(shift), convs...)
}

// BenchmarkCommitFile measures CommitFile of a 2000-conversation file when every record
// is new, when every record is unchanged (a re-upload) and when every record is updated.
// open returns a new empty store for each sub-benchmark.
func BenchmarkCommitFile(b *testing.B, open func(tb testing.TB) store.Store) {
	run := func(b *testing.B, name string, prepare func(s store.Store), next func(i int) Commit) {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			prepare(s)
			f := next(0)
			var size int64
			for _, c := range f.Convs {
				size += int64(len(c.Raw))
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Building the file (formatting, hashing) is the caller's cost, not the store's.
				b.StopTimer()
				f := next(i)
				b.StartTimer()
				if _, err := s.CommitFile(ctx, f.FileCommit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchConversations)/b.Elapsed().Seconds(), "conversations/s")
		})
	}
	none := func(store.Store) {}
	// New: each iteration a fresh set of identities (keys differ by file).
	run(b, "new", none, func(i int) Commit {
		f := benchFile(fmt.Sprintf("new-%d.json", i), benchConversations, 0)
		for j := range f.Convs {
			f.Convs[j].ConversationID = fmt.Sprintf("%d-%s", i, f.Convs[j].ConversationID)
		}
		return f
	})
	base := benchFile("base.json", benchConversations, 0)
	seed := func(s store.Store) {
		if _, err := s.CommitFile(ctx, base.FileCommit); err != nil {
			b.Fatal(err)
		}
	}
	run(b, "unchanged", seed, func(int) Commit { return base })
	run(b, "updated", seed, func(i int) Commit {
		return benchFile(fmt.Sprintf("upd-%d.json", i), benchConversations, time.Duration(i+1)*time.Second)
	})
}
