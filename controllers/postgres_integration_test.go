package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

// postgresManager starts a real PostgreSQL server and a second manager, watching only ns,
// that stores there; both stop when the test ends.
func postgresManager(t *testing.T, ns string) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	stop, err := startManager(ctx, pg, []string{ns}, suiteCeilings)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return pg
}

// The happy path with the PostgreSQL store: a second manager, watching its own namespace,
// writes to a real PostgreSQL server.
func TestHappyPathOnPostgreSQL(t *testing.T) {
	const ns, name, bkt = "postgres", "on-postgres", "postgres"
	ctx := context.Background()
	pg := postgresManager(t, ns)

	createBucket(t, bkt)
	a := jsonArray(t, conversation("pg-agent", "pg-1", "2025-01-15T14:30:00Z", "hello"), conversation("pg-agent", "pg-2", "2025-01-15T14:31:00Z", "there"))
	b := zipOf(t, map[string][]byte{"x.jsonl": jsonLines(t, conversation("pg-agent", "pg-3", "2025-01-15T14:32:00Z", "zipped"))})
	put(t, bkt, "in/a.json", a)
	put(t, bkt, "in/b.zip", b)
	createQuota(t, ns, "default", v1.IngestionQuotaSpec{})
	start := clk.Now()
	newSource(t, ns, name, bkt, "in/", nil)
	src := waitRun(t, ns, name, start)
	wantFiles(t, src, v1.FileCounts{Discovered: 2, Ingested: 2})
	if src.Status.ConversationsIngested != 3 {
		t.Errorf("conversationsIngested = %d, want 3", src.Status.ConversationsIngested)
	}
	c, ok, err := pg.GetConversation(ctx, ns, "pg-agent", "pg-3")
	if err != nil || !ok || !strings.Contains(string(c.Raw), "zipped") {
		t.Fatalf("pg-3 in PostgreSQL: found=%v err=%v raw=%s", ok, err, c.Raw)
	}
	if _, ok, _ := store.GetConversation(ctx, ns, "pg-agent", "pg-1"); ok {
		t.Fatal("the PostgreSQL manager wrote to the suite's SQLite store")
	}
	want := int64(len(a) + len(b))
	eventually(t, "quota usage from PostgreSQL", func() error {
		if q := getQuota(t, ns, "default"); q.Status.UsedBytes != want {
			return fmt.Errorf("used %d, want %d", q.Status.UsedBytes, want)
		}
		return nil
	})
}
