package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/storetest"
)

// BenchmarkCommitNamespaces commits the same work — benchFiles files of benchPerFile new
// conversations per iteration, all at once, one goroutine per file — from 1, 2 and 4
// namespaces (files dealt round-robin), so the throughputs of one run compare how far
// commits of different namespaces overlap. Commits of one namespace serialize; of
// different namespaces they do not.
//
// pace is the time the stream waits after every 128 records: 0 measures the database
// alone; a pace stands for a file still downloading while its transaction is open,
// which is what a commit's lock is held across in the operator.
//
// The pool is sized so the process-wide bound (half the pool) admits every file.
func BenchmarkCommitNamespaces(b *testing.B) {
	const (
		benchFiles   = 8
		benchPerFile = 512
	)
	body := strings.Repeat("I was charged twice for my subscription this month. ", 4)
	for _, pace := range []time.Duration{0, 20 * time.Millisecond} {
		for _, namespaces := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("pace=%s/namespaces=%d", pace, namespaces), func(b *testing.B) {
				s := openDSN(b, server.NewDatabase(b)+"&pool_max_conns=16")
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					// Building the files (formatting, hashing) is the caller's cost.
					b.StopTimer()
					commits := make([]store.FileCommit, benchFiles)
					for f := range commits {
						ns := fmt.Sprintf("tenant-%d", f%namespaces)
						key := fmt.Sprintf("it%d-f%d.json", i, f)
						convs := make([]store.Conversation, benchPerFile)
						for j := range convs {
							convs[j] = storetest.Conv(fmt.Sprintf("agent-%d", j%7), fmt.Sprintf("%s-%d", key, j), time.Unix(int64(j), 0), body)
						}
						c := storetest.File(ns+"/s", key, time.Unix(0, 0), convs...)
						c.Conversations = paced(c.Convs, pace)
						commits[f] = c.FileCommit
					}
					b.StartTimer()
					var wg sync.WaitGroup
					errs := make(chan error, benchFiles)
					for _, c := range commits {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if _, err := s.CommitFile(context.Background(), c); err != nil {
								errs <- err
							}
						}()
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*benchFiles*benchPerFile)/b.Elapsed().Seconds(), "conversations/s")
			})
		}
	}
}

// paced streams convs, waiting pace after every 128 records.
func paced(convs []store.Conversation, pace time.Duration) store.ConversationStream {
	return func(yield func(store.Conversation) bool) error {
		for i, c := range convs {
			if pace > 0 && i > 0 && i%128 == 0 {
				time.Sleep(pace)
			}
			if !yield(c) {
				return store.ErrStreamStopped
			}
		}
		return nil
	}
}
