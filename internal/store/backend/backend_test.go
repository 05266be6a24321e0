package backend

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	pgtest "github.com/avon-ai/data-import-operator/internal/testsupport/postgres"
)

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct{ dsn, file string }{
		{"sqlite://" + filepath.Join(dir, "a.db"), filepath.Join(dir, "a.db")},
		{filepath.Join(dir, "b.db"), filepath.Join(dir, "b.db")},
		{"sqlite://rel.db", filepath.Join(dir, "rel.db")},
		{"sqlite:c.db", filepath.Join(dir, "c.db")},
		{"d.db", filepath.Join(dir, "d.db")},
	}
	for _, tt := range tests {
		s, err := Open(context.Background(), tt.dsn)
		if err != nil {
			t.Fatalf("Open(%q): %v", tt.dsn, err)
		}
		if _, ok := s.(*sqlite.Store); !ok {
			t.Errorf("Open(%q) = %T, want *sqlite.Store", tt.dsn, s)
		}
		s.Close()
		if _, err := os.Stat(tt.file); err != nil {
			t.Errorf("Open(%q) did not create %s: %v", tt.dsn, tt.file, err)
		}
	}
}

func TestOpenPostgres(t *testing.T) {
	dsn := pgtest.Start(t)
	for _, d := range []string{dsn, strings.Replace(dsn, "postgres://", "postgresql://", 1)} {
		s, err := Open(context.Background(), d)
		if err != nil {
			t.Fatalf("Open(%s): %v", d, err)
		}
		if _, ok := s.(*postgres.Store); !ok {
			t.Errorf("Open(%s) = %T, want *postgres.Store", d, s)
		}
		s.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"mysql://app:Secret1@db/conv", `store: unsupported DSN scheme "mysql" in mysql://app:xxxxx@db/conv`},
		{"sqlite://", "store: empty SQLite path"},
		{"postgres://app:Secret1@127.0.0.1:notaport/conv", "postgres: parse DSN postgres://app:xxxxx@127.0.0.1:notaport/conv"},
	}
	for _, tt := range tests {
		_, err := Open(context.Background(), tt.dsn)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", tt.dsn, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "Secret1") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}
