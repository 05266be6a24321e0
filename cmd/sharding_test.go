package main

import (
	"strings"
	"testing"
)

func TestCheckSharding(t *testing.T) {
	for _, tc := range []struct {
		shards  int
		dsn     string
		wantErr string
	}{
		{0, "sqlite:///var/lib/data-import/store.db", ""},
		{0, "postgres://u@h/db", ""},
		{32, "postgres://u@h/db", ""},
		{4, "POSTGRESQL://u@h/db", ""},
		{32, "sqlite:///var/lib/data-import/store.db", "--shards 32 needs the PostgreSQL store"},
		{2, "/var/lib/data-import/store.db", "the SQLite store is a file one replica opens"},
		{-1, "postgres://u@h/db", "want 0"},
	} {
		err := checkSharding(tc.shards, tc.dsn)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("checkSharding(%d, %q) = %v; want %q", tc.shards, tc.dsn, err, tc.wantErr)
		}
	}
}
