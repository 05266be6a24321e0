package ingest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// memStore is a small in-memory Store for the engine's unit tests: it applies the same
// Newer rule as the real stores, so file-order independence can be checked here.
type memStore struct {
	mu       sync.Mutex
	files    map[string]store.FileRecord
	convs    map[memKey]store.Conversation
	commits  []committed
	released []int64
	fail     error
	// failAt, when positive, makes the stream's failAt-th record fail with fail.
	failAt int
	// onRecord, when set, sees the count of records streamed so far.
	onRecord func(n int)
}

func newMemStore() *memStore {
	return &memStore{files: map[string]store.FileRecord{}, convs: map[memKey]store.Conversation{}}
}

// memKey is a conversation's identity in the store: its namespace and its ids.
type memKey struct {
	Namespace string
	ConversationKey
}

func (m *memStore) LookupFile(_ context.Context, source, key string) (store.FileRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[source+"\x00"+key]
	return f, ok, nil
}

func (m *memStore) LookupFiles(_ context.Context, source string, keys []string) (map[string]store.FileRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]store.FileRecord{}
	for _, k := range keys {
		if f, ok := m.files[source+"\x00"+k]; ok {
			out[k] = f
		}
	}
	return out, nil
}

func (m *memStore) ListFiles(_ context.Context, source string, state store.FileState, _ int) ([]store.FileRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.FileRecord
	for _, f := range m.files {
		if f.Source == source && (state == "" || f.State == state) {
			out = append(out, f)
		}
	}
	return out, nil
}

func (m *memStore) RecordFile(_ context.Context, f store.FileRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[f.Source+"\x00"+f.Key] = f
	return nil
}

// committed is one CommitFile that committed: its ledger row, reservation and records.
type committed struct {
	File          store.FileRecord
	ReservationID int64
	Convs         []store.Conversation
}

// CommitFile applies RecordOutcome record by record to a copy of the conversations,
// which replaces them only when the stream and the commit succeed: a failed stream
// leaves nothing behind, as a rolled-back transaction does.
func (m *memStore) CommitFile(ctx context.Context, c store.FileCommit) (store.RecordCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil && m.failAt <= 0 {
		return store.RecordCounts{}, m.fail
	}
	tx := maps.Clone(m.convs)
	done := committed{File: c.File, ReservationID: c.ReservationID}
	var n store.RecordCounts
	if c.Conversations != nil {
		var failed error
		err := c.Conversations(func(conv store.Conversation) bool {
			done.Convs = append(done.Convs, conv)
			if m.onRecord != nil {
				m.onRecord(len(done.Convs))
			}
			if len(done.Convs) == m.failAt {
				failed = m.fail
				return false
			}
			if c.Namespace == "" {
				failed = errors.New("the commit names no namespace")
				return false
			}
			conv.Namespace = c.Namespace
			id := memKey{c.Namespace, ConversationKey{conv.AgentID, conv.ConversationID}}
			var stored *store.Conversation
			if old, ok := tx[id]; ok {
				stored = &old
			}
			write, o := store.RecordOutcome(&conv, stored)
			n.Add(o)
			if write {
				conv.Raw = slices.Clone(conv.Raw)
				tx[id] = conv
			}
			return ctx.Err() == nil
		})
		if failed != nil {
			return store.RecordCounts{}, failed
		}
		if err != nil {
			return store.RecordCounts{}, errors.Join(err, ctx.Err())
		}
	}
	if c.Complete != nil {
		c.Complete(&done.File)
	}
	done.File.Counts.New, done.File.Counts.Updated, done.File.Counts.Unchanged = n.New, n.Updated, n.Unchanged
	m.convs = tx
	m.commits = append(m.commits, done)
	m.files[c.File.Source+"\x00"+c.File.Key] = done.File
	return done.File.Counts, nil
}

func (m *memStore) DeleteSource(context.Context, string) error { return errors.New("not used") }
func (m *memStore) RangeFiles(context.Context, string, string, string, int) ([]store.FileRecord, error) {
	return nil, errors.New("not used")
}
func (m *memStore) CountFiles(context.Context, string) (map[store.FileState]int64, error) {
	return nil, errors.New("not used")
}
func (m *memStore) ListingState(context.Context, string) (store.ListingState, bool, error) {
	return store.ListingState{}, false, errors.New("not used")
}
func (m *memStore) SaveListingState(context.Context, string, store.ListingState) error {
	return errors.New("not used")
}
func (m *memStore) DeleteFiles(context.Context, string, []string, time.Time) (int, error) {
	return 0, errors.New("not used")
}
func (m *memStore) Reserve(context.Context, store.Reservation) (int64, error) {
	return 0, errors.New("not used")
}
func (m *memStore) Release(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.released = append(m.released, id)
	return nil
}
func (m *memStore) ChargeReservation(context.Context, int64) error { return errors.New("not used") }
func (m *memStore) ReleaseAll(context.Context) error               { return errors.New("not used") }
func (m *memStore) BeginAttempt(context.Context, string, string, string, bool) (int, error) {
	return 0, errors.New("not used")
}
func (m *memStore) EndAttempt(context.Context, string, string, store.AttemptOutcome) error {
	return errors.New("not used")
}
func (m *memStore) Usage(context.Context, string, string) (int64, map[string]int64, error) {
	return 0, nil, errors.New("not used")
}
func (m *memStore) SourceUsage(context.Context, string, string, string) (int64, int64, error) {
	return 0, 0, errors.New("not used")
}
func (m *memStore) GetConversation(_ context.Context, namespace, agentID, conversationID string) (store.Conversation, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[memKey{namespace, ConversationKey{agentID, conversationID}}]
	return c, ok, nil
}
func (m *memStore) ListConversations(context.Context, string, string, int) ([]store.Conversation, error) {
	return nil, errors.New("not used")
}
func (m *memStore) Close() error { return nil }

// dump is the conversations of namespace as identity → (hash, raw), for comparing
// stores. The origin (object key) is left out: an identical record met later is
// "unchanged", so which file an identical record is attributed to depends on the order;
// its content does not.
func (m *memStore) dump(namespace string) map[ConversationKey]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[ConversationKey]string{}
	for _, k := range slices.Collect(maps.Keys(m.convs)) {
		if k.Namespace != namespace {
			continue
		}
		c := m.convs[k]
		out[k.ConversationKey] = c.ContentHash + " " + string(c.Raw)
	}
	return out
}
