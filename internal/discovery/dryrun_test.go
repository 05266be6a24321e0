package discovery_test

import (
	"context"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// A dry run keeps its results apart from the real ledger: an unchanged file is not
// downloaded and charged again at every dry run, its counts and recent errors describe
// the dry run's results (not stale real rows), and a real run afterwards still ingests
// everything.
func TestDryRunResultsAreKeptApart(t *testing.T) {
	const bkt = "dry-ledger"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	good := conversationFile("agent-d", "d-1")
	bad := []byte(`[{"conversation_id":"d-2","timestamp":"2025-01-15T14:30:00Z","messages":[]}]`)
	for key, body := range map[string][]byte{"d/good.json": good, "d/bad.json": bad, "d/notes.txt": []byte("x")} {
		if _, err := s3.Put(bkt, key, body); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, bkt, "d/", quota.Quota{})
	ctx := context.Background()
	used := func() int64 {
		t.Helper()
		n, _, err := f.store.Usage(ctx, f.job.Quota.Key, "2026-03-10")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	errorKeys := func(res *discovery.Result) []string {
		var keys []string
		for _, e := range res.RecentErrors {
			keys = append(keys, e.Key)
		}
		return keys
	}
	check := func(step string, res *discovery.Result, gets int, ingested, failed, ignored int64, errs ...string) {
		t.Helper()
		if g := f.ct.Count(bucket.OpGetObject); g != gets || res.Ingested != ingested || res.Failed != failed || res.Ignored != ignored {
			t.Fatalf("%s: %d downloads, %+v; want %d downloads, %d ingested, %d failed, %d ignored", step, g, res, gets, ingested, failed, ignored)
		}
		if got := errorKeys(res); len(got) != len(errs) || len(errs) > 0 && got[0] != errs[0] {
			t.Fatalf("%s: recent errors %v, want %v", step, got, errs)
		}
	}

	f.job.DryRun = true
	check("first dry run", f.run(t), 2, 1, 1, 1, "d/bad.json")
	charged := used()
	check("second dry run", f.run(t), 0, 1, 1, 1, "d/bad.json")
	if used() != charged {
		t.Fatalf("a dry run of unchanged files charged %d more bytes", used()-charged)
	}
	if rows, _ := f.store.ListFiles(ctx, f.job.Source, "", 0); len(rows) != 0 {
		t.Fatalf("dry runs wrote %d rows to the real ledger", len(rows))
	}

	// dryRun off: everything is processed for real.
	f.job.DryRun = false
	check("real run", f.run(t), 2, 1, 1, 1, "d/bad.json")
	if _, ok, _ := f.store.GetConversation(ctx, f.job.Namespace, "agent-d", "d-1"); !ok {
		t.Fatal("the real run after dry runs did not store the conversation")
	}

	// The file is fixed; a dry run reports the fix although the real ledger still holds
	// the old failure.
	if _, err := s3.Put(bkt, "d/bad.json", conversationFile("agent-d", "d-2")); err != nil {
		t.Fatal(err)
	}
	f.job.DryRun = true
	check("dry run after the fix", f.run(t), 1, 2, 0, 1)
	if row, _, _ := f.store.LookupFile(ctx, f.job.Source, "d/bad.json"); row.Reason != ingest.ReasonNoValidRecords && row.Reason != ingest.ReasonInvalidRecords {
		t.Fatalf("the dry run changed the real ledger row: %+v", row)
	}
}
