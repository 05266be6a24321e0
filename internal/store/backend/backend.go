// Package backend opens the store backend a DSN names. It is the one package that
// imports every backend, so it cannot be package store itself: the backends import
// store for its contract, and store importing them back would be a cycle.
package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/postgres"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
)

// Open opens the store named by dsn and applies its migrations:
//   - postgres://... or postgresql://...: PostgreSQL;
//   - sqlite:///abs/path.db, sqlite://rel/path.db, sqlite:path.db or a plain path: SQLite.
//
// Any other scheme is an error. Errors never show the DSN's password.
func Open(ctx context.Context, dsn string) (store.Store, error) {
	scheme, rest, hasScheme := strings.Cut(dsn, ":")
	switch {
	case !hasScheme || !isScheme(scheme):
		return openSQLite(ctx, dsn)
	case strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"):
		return postgres.Open(ctx, dsn)
	case strings.EqualFold(scheme, "sqlite") || strings.EqualFold(scheme, "sqlite3") || strings.EqualFold(scheme, "file"):
		return openSQLite(ctx, strings.TrimPrefix(rest, "//"))
	default:
		return nil, fmt.Errorf("store: unsupported DSN scheme %q in %s (want postgres://, postgresql://, sqlite:// or a file path)",
			scheme, postgres.Redact(dsn))
	}
}

func openSQLite(ctx context.Context, path string) (store.Store, error) {
	if path == "" {
		return nil, fmt.Errorf("store: empty SQLite path (want e.g. sqlite:///var/lib/data-import/store.db)")
	}
	return sqlite.Open(ctx, path)
}

// isScheme reports whether s is a URL scheme (RFC 3986: a letter, then letters, digits,
// '+', '-' or '.'), of at least two characters so a Windows drive letter is a path.
func isScheme(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return true
}
