package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	storeapi "github.com/avon-ai/data-import-operator/internal/store"
)

// A status patch cannot exceed the API server's request size because of file contents:
// ten failed files with 1024-byte keys and megabyte messages (written straight into the
// ledger, worse than anything the engine writes) reach status.recentFileErrors
// truncated to the CRD's bounds, and the real API server accepts the patch.
func TestRecentFileErrorsStayBounded(t *testing.T) {
	const ns, name, bkt = "errors", "huge-errors", "huge-errors"
	createBucket(t, bkt) // empty: nothing is pruned, the ledger rows stay
	at := clk.Now()
	for i := range v1.MaxRecentFileErrors {
		key := fmt.Sprintf("p/%02d-", i) + strings.Repeat("k", 1024-5)
		field := strings.Repeat("f", 100_000)
		msg := fmt.Sprintf("%s: %s: %s", key, strings.Repeat("user_data."+field, 10), strings.Repeat("é\x00", 200_000))
		err := store.RecordFile(context.Background(), storeapi.FileRecord{
			Source: ns + "/" + name, Key: key, ETag: "e", Size: 1, LastModified: at,
			State: storeapi.FileFailed, Reason: ingest.ReasonInvalidRecords, Message: msg, FirstSeen: at, UpdatedAt: at,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	newSource(t, ns, name, bkt, "p/", nil)
	src := waitRun(t, ns, name, at)
	if len(src.Status.RecentFileErrors) != v1.MaxRecentFileErrors {
		t.Fatalf("%d recentFileErrors, want %d", len(src.Status.RecentFileErrors), v1.MaxRecentFileErrors)
	}
	for _, e := range src.Status.RecentFileErrors {
		if n := utf8.RuneCountInString(e.Message); n > v1.MaxFileErrorMessageLength || !strings.HasSuffix(e.Message, "…") {
			t.Errorf("message of %d runes (limit %d), ends %q", n, v1.MaxFileErrorMessageLength, e.Message[len(e.Message)-10:])
		}
		if strings.ContainsRune(e.Message, 0) {
			t.Errorf("message holds a NUL")
		}
		if utf8.RuneCountInString(e.Key) > v1.MaxFileErrorKeyLength {
			t.Errorf("key of %d runes", utf8.RuneCountInString(e.Key))
		}
	}
	body, err := json.Marshal(src.Status)
	if err != nil {
		t.Fatal(err)
	}
	// The API server refuses requests over 3 MiB and etcd objects over 1.5 MiB.
	if len(body) > 100_000 {
		t.Fatalf("status is %d bytes with ten worst-case errors, want far under the 1.5 MiB limit", len(body))
	}
	t.Logf("status with ten worst-case file errors: %d bytes", len(body))
}
