package faults

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/discovery"
	"github.com/avon-ai/data-import-operator/internal/store"
	"github.com/avon-ai/data-import-operator/internal/store/backend"
)

// snapshot is what an import left: read through internal/store (and SQL for what the
// Store interface does not expose), compared between a faulty and a fault-free run.
type snapshot struct {
	// conversations by agent/conversation: content hash and origin.
	conversations map[string]string
	// duplicateConversations are identities stored more than once.
	duplicateConversations []string
	// files by key: state, reason, counts and bytes charged.
	files          map[string]string
	duplicateFiles []string
	// usage is what the quota was charged today; ledgerBytes what the ledger says its
	// committed files charged.
	usage, ledgerBytes int64
	reservations       int
	spoolFiles         []string
	// integrity is SQLite's integrity_check ("ok"), empty for PostgreSQL.
	integrity string
	status    v1.FileCounts
	// statusConversations is status.conversationsIngested: not compared, see
	// TestFaultInjection.
	statusConversations int64
}

type dumper interface {
	DumpConversations(ctx context.Context) ([]store.Conversation, error)
}

// takeSnapshot reads the store at dsn, the spool directory and the source's status.
func takeSnapshot(ctx context.Context, dsn, spoolDir string, days []string, src *v1.S3Source) (*snapshot, error) {
	st, err := backend.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	s := &snapshot{conversations: map[string]string{}, files: map[string]string{}}
	convs, err := st.(dumper).DumpConversations(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range convs {
		id := c.Namespace + "/" + c.AgentID + "/" + c.ConversationID
		if _, dup := s.conversations[id]; dup {
			s.duplicateConversations = append(s.duplicateConversations, id)
		}
		s.conversations[id] = fmt.Sprintf("hash=%s origin=%s#%d", c.ContentHash, c.ObjectKey, c.Position)
	}
	rows, err := st.ListFiles(ctx, namespace+"/"+sourceName, "", 1<<20)
	if err != nil {
		return nil, err
	}
	for _, f := range rows {
		if _, dup := s.files[f.Key]; dup {
			s.duplicateFiles = append(s.duplicateFiles, f.Key)
		}
		// New/Updated/Unchanged depend on which of two files sharing a conversation
		// committed first; their sum, the records committed, does not.
		s.files[f.Key] = fmt.Sprintf("state=%s reason=%s valid=%d invalid=%d committed=%d bytes=%d etag=%s",
			f.State, f.Reason, f.Counts.Valid, f.Counts.Invalid, f.Counts.New+f.Counts.Updated+f.Counts.Unchanged, f.Bytes, f.ETag)
		s.ledgerBytes += f.Bytes
	}
	for _, day := range days {
		total, _, err := st.Usage(ctx, namespace+"/"+quotaName, day)
		if err != nil {
			return nil, err
		}
		s.usage += total
	}
	if s.reservations, s.integrity, err = rawChecks(ctx, dsn); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(spoolDir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, e := range entries {
		s.spoolFiles = append(s.spoolFiles, e.Name())
	}
	if src.Status.Files != nil {
		s.status = *src.Status.Files
	}
	s.statusConversations = src.Status.ConversationsIngested
	return s, nil
}

// rawChecks counts reservations (the Store interface only drops them) and, for SQLite,
// runs the integrity check a crash must pass.
func rawChecks(ctx context.Context, dsn string) (int, string, error) {
	const q = `SELECT count(*) FROM reservations`
	var n int
	if path, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			return 0, "", err
		}
		defer db.Close()
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return 0, "", err
		}
		var integrity string
		if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil {
			return 0, "", err
		}
		return n, integrity, nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close(ctx)
	return n, "", conn.QueryRow(ctx, q).Scan(&n)
}

// invariants are what any settled import must satisfy on its own.
func (s *snapshot) invariants() []string {
	var bad []string
	if len(s.duplicateConversations) > 0 {
		bad = append(bad, fmt.Sprintf("conversations stored twice: %v", s.duplicateConversations))
	}
	if len(s.duplicateFiles) > 0 {
		bad = append(bad, fmt.Sprintf("objects in the ledger twice: %v", s.duplicateFiles))
	}
	if s.usage != s.ledgerBytes {
		bad = append(bad, fmt.Sprintf("quota usage %d bytes, but the ledger's committed files charged %d", s.usage, s.ledgerBytes))
	}
	if s.reservations != 0 {
		bad = append(bad, fmt.Sprintf("%d quota reservations left behind", s.reservations))
	}
	if len(s.spoolFiles) > 0 {
		bad = append(bad, fmt.Sprintf("spool files left behind: %v", s.spoolFiles))
	}
	if s.integrity != "" && s.integrity != "ok" {
		bad = append(bad, "SQLite integrity_check: "+s.integrity)
	}
	return bad
}

// diff lists every difference between a run and the fault-free one.
func diff(want, got *snapshot) []string {
	bad := got.invariants()
	bad = append(bad, diffMaps("conversation", want.conversations, got.conversations)...)
	bad = append(bad, diffMaps("ledger row", want.files, got.files)...)
	if want.usage != got.usage {
		bad = append(bad, fmt.Sprintf("quota usage %d bytes, fault-free %d", got.usage, want.usage))
	}
	if want.status != got.status {
		bad = append(bad, fmt.Sprintf("status.files %+v, fault-free %+v", got.status, want.status))
	}
	return bad
}

func diffMaps(what string, want, got map[string]string) []string {
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s %s missing (fault-free: %s)", what, k, want[k]))
		case g != want[k]:
			bad = append(bad, fmt.Sprintf("%s %s: %s, fault-free: %s", what, k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("%s %s not in the fault-free run: %s", what, k, got[k]))
		}
	}
	return bad
}

// today is the quota's window (UTC, the IngestionQuota's default time zone).
func today() string { return time.Now().UTC().Format(time.DateOnly) }

// spoolDirOf is the operator's own directory under --spool-dir.
func spoolDirOf(parent string) string { return filepath.Join(parent, discovery.SpoolSubdir) }
