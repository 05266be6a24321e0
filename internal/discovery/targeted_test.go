package discovery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/quota"
)

// A run of named keys looks each one up and never lists: new keys are ingested, a replayed
// key changes nothing, keys outside the prefix and deleted objects are skipped, and an
// overwritten object is downloaded again. Counts are changes to the totals.
func TestRunKeys(t *testing.T) {
	const bkt = "targeted"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s3.Put(bkt, fmt.Sprintf("c/%d.json", i), conversationFile("agent-1", fmt.Sprintf("conv-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s3.Put(bkt, "other/x.json", conversationFile("agent-1", "other")); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bkt, "c/", quota.Quota{})
	runKeys := func(keys ...string) *resultView {
		t.Helper()
		f.ct.Reset()
		res := f.runner.RunKeys(context.Background(), f.client, f.job, keys)
		if res.Err != nil {
			t.Fatalf("run failed: %v", res.Err)
		}
		if !res.Targeted {
			t.Fatal("not marked Targeted")
		}
		return &resultView{listed: res.Listed, ingested: res.Ingested, failed: res.Failed, downloaded: res.Downloaded, unchanged: res.Unchanged,
			lists: f.ct.Count(bucket.OpListObjectsV2), heads: f.ct.Count(bucket.OpHeadObject), gets: f.ct.Count(bucket.OpGetObject)}
	}
	for _, tc := range []struct {
		name string
		keys []string
		pre  func()
		want resultView
	}{
		{name: "new keys, duplicates, outside the prefix, missing", keys: []string{"c/0.json", "c/1.json", "c/0.json", "other/x.json", "c/gone.json", "c/"},
			want: resultView{listed: 2, ingested: 2, downloaded: 2, heads: 3, gets: 2}},
		{name: "replayed event", keys: []string{"c/0.json", "c/1.json"},
			want: resultView{unchanged: 2, heads: 2}},
		{name: "overwritten object", keys: []string{"c/1.json", "c/2.json"}, pre: func() {
			if _, err := s3.Put(bkt, "c/1.json", conversationFile("agent-1", "conv-1-new")); err != nil {
				t.Fatal(err)
			}
		}, want: resultView{listed: 1, ingested: 1, downloaded: 2, heads: 2, gets: 2}},
		{name: "invalid file counts as failed, not ingested", keys: []string{"c/bad.json"}, pre: func() {
			if _, err := s3.Put(bkt, "c/bad.json", []byte("{")); err != nil {
				t.Fatal(err)
			}
		}, want: resultView{listed: 1, failed: 1, downloaded: 1, heads: 1, gets: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pre != nil {
				tc.pre()
			}
			if got := runKeys(tc.keys...); *got != tc.want {
				t.Fatalf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
	// The ledger agrees with a full discovery: nothing left to do.
	res := f.run(t)
	if res.Downloaded != 0 || res.Ingested != 3 || res.Failed != 1 {
		t.Fatalf("full discovery after targeted runs: %+v", res)
	}
}

type resultView struct {
	listed, ingested, failed, downloaded, unchanged int64
	lists, heads, gets                              int
}

// The quota applies to event-named keys as to listed ones: what does not fit is deferred,
// not downloaded, and a later event for it after the reset ingests it.
func TestRunKeysHonoursTheQuota(t *testing.T) {
	const bkt = "targeted-quota"
	if err := s3.CreateBucket(bkt); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var size int64
	for i := range 2 {
		key := fmt.Sprintf("c/%d.json", i)
		body := conversationFile("agent-1", fmt.Sprintf("conv-%d", i))
		if _, err := s3.Put(bkt, key, body); err != nil {
			t.Fatal(err)
		}
		keys, size = append(keys, key), int64(len(body))
	}
	f := newFixture(t, bkt, "c/", quota.Quota{Key: "ns/small", DailyLimit: size + size/2, MaxFileSize: size + size/2, Location: time.UTC})
	res := f.runner.RunKeys(context.Background(), f.client, f.job, keys)
	if res.Err != nil || res.Ingested != 1 || res.Deferred != 1 || res.Downloaded != 1 || res.NewlyDeferred != 1 {
		t.Fatalf("first run: %+v", res)
	}
	f.now = f.now.Add(24 * time.Hour)
	res = f.runner.RunKeys(context.Background(), f.client, f.job, keys)
	if res.Err != nil || res.Ingested != 1 || res.Deferred != -1 || res.Downloaded != 1 || res.Unchanged != 1 {
		t.Fatalf("after the reset: %+v", res)
	}
}
