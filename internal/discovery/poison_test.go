package discovery_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/ingest"
	"github.com/avon-ai/data-import-operator/internal/quota"
	"github.com/avon-ai/data-import-operator/internal/store"
)

// commitFails is a store whose CommitFile fails with err (an in-process fake for the
// error path; the real rejections are proven against both databases in storetest).
type commitFails struct {
	store.Store
	err error
}

func (s *commitFails) CommitFile(ctx context.Context, c store.FileCommit) (store.RecordCounts, error) {
	if s.err != nil {
		return store.RecordCounts{}, s.err
	}
	return s.Store.CommitFile(ctx, c)
}

// A store error while committing a file is not a download failure: an unavailable store
// fails the run and blames no file; a store that rejects the content fails the file with
// StoreRejected.
func TestStoreErrorIsNotDownloadFailed(t *testing.T) {
	const bkt = "store-error"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Put(bkt, "s/a.json", conversationFile("agent-s", "s-1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		err        error
		wantRunErr bool
		wantReason string // "" : no ledger row
	}{
		{"store unavailable", errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true, ""},
		{"content rejected", store.Rejected(errors.New("unsupported Unicode escape sequence (SQLSTATE 22P05)")), false, ingest.ReasonStoreRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, bkt, "s/", quota.Quota{})
			fake := &commitFails{Store: f.store, err: tt.err}
			f.runner = discovery.NewRunner(fake, ingest.New(fake), f.runner.Now, 1, 1)
			res := f.runner.Run(context.Background(), f.client, f.job)
			if (res.Err != nil) != tt.wantRunErr {
				t.Fatalf("run error %v, want error: %v", res.Err, tt.wantRunErr)
			}
			rows, err := f.store.ListFiles(context.Background(), f.job.Source, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantReason == "" && len(rows) != 0:
				t.Fatalf("ledger %+v, want no row: the file is not to blame", rows)
			case tt.wantReason != "" && (len(rows) != 1 || rows[0].Reason != tt.wantReason || !strings.Contains(rows[0].Message, "SQLSTATE 22P05")):
				t.Fatalf("ledger %+v, want one %s row quoting the store's error", rows, tt.wantReason)
			}
			for _, r := range rows {
				if r.Reason == ingest.ReasonDownloadFailed {
					t.Errorf("%s recorded as %s", r.Key, r.Reason)
				}
			}
			if used, _, err := f.store.Usage(context.Background(), f.job.Quota.Key, "2026-03-10"); err != nil || used != 0 && tt.wantRunErr {
				t.Errorf("usage %d (%v) after a commit the store never made", used, err)
			}
		})
	}
}
