package postgres

import (
	"context"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://app:s3cret@db:5432/conv?sslmode=require", "postgres://app:xxxxx@db:5432/conv?sslmode=require"},
		{"postgresql://app@db/conv", "postgresql://app@db/conv"},
		{"postgres://app:p%40ss@db/conv", "postgres://app:xxxxx@db/conv"},
		{"postgres://db/conv?user=app&password=hunter2", "postgres://db/conv?user=app&password=xxxxx"},
		{"postgres://app:pa@ss@db/conv", "postgres://app:xxxxx@db/conv"},
	}
	for _, tt := range tests {
		if got := Redact(tt.dsn); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
}

// A DSN that fails to parse or connect never shows its password.
func TestOpenErrorsHidePassword(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{
		"postgres://app:Sup3r-S3cret@127.0.0.1:notaport/conv",
		"postgres://app:Sup3r-S3cret@127.0.0.1:1/conv?sslmode=disable&connect_timeout=1",
		"postgres://app:Sup3r%2DS3cret@127.0.0.1:1/conv?sslmode=bogus",
		"postgres://127.0.0.1:1/conv?password=Sup3r-S3cret&sslmode=bogus",
	} {
		_, err := Open(ctx, dsn)
		if err == nil {
			t.Fatalf("Open(%s) succeeded", Redact(dsn))
		}
		if strings.Contains(err.Error(), "S3cret") {
			t.Errorf("Open error shows the password: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "postgres: ") {
			t.Errorf("Open error %q does not name the backend", err)
		}
	}
}
