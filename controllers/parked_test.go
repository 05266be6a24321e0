package controllers_test

import (
	"context"
	"testing"
	"time"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
)

// A parked file is not downloaded by scheduled runs; the refresh annotation retries it.
func TestRefreshRetriesParkedFiles(t *testing.T) {
	const ns, name, bkt = "refresh", "parked", "refresh-parked"
	createBucket(t, bkt)
	body := jsonArray(t, conversation("agent-7", "p-1", "2025-01-15T14:30:00Z", "x"))
	etag, err := s3.Put(bkt, "p/a.json", body)
	if err != nil {
		t.Fatal(err)
	}
	at := clk.Now()
	// The file was parked by earlier attempts (as the discovery tests prove it is).
	if err := store.RecordFile(context.Background(), storeapi.FileRecord{
		Source: ns + "/" + name, Key: "p/a.json", ETag: etag, Size: int64(len(body)), LastModified: at,
		State: storeapi.FileFailed, Reason: ingest.ReasonParked, Message: "p/a.json: parked after 3 failed attempts", FirstSeen: at, UpdatedAt: at,
	}); err != nil {
		t.Fatal(err)
	}
	newSource(t, ns, name, bkt, "p/", nil)
	src := waitRun(t, ns, name, at)
	if gets := counts.of(bkt).Count(bucket.OpGetObject); gets != 0 {
		t.Fatalf("a scheduled run downloaded a parked file %d times", gets)
	}
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Failed: 1})

	clk.Step(61 * time.Second) // past the refresh cooldown
	refreshed := clk.Now()
	setAnnotation(t, ns, name, v1.RefreshAnnotation, "retry-parked")
	src = waitRun(t, ns, name, refreshed)
	wantFiles(t, src, v1.FileCounts{Discovered: 1, Ingested: 1})
	if gets := counts.of(bkt).Count(bucket.OpGetObject); gets != 1 {
		t.Fatalf("the refresh downloaded the parked file %d times, want 1", gets)
	}
}
