// Package plan decides, for both store backends, what one file commit does to the
// stored conversations. Keeping the rule in one pure function is what makes SQLite
// and PostgreSQL agree record for record.
package plan

import (
	"sort"

	"github.com/avon-ai/data-import-operator/internal/ingest"
)

// Key is a conversation's identity.
type Key struct {
	AgentID        string
	ConversationID string
}

// KeyOf returns c's identity.
func KeyOf(c *ingest.Conversation) Key {
	return Key{AgentID: c.AgentID, ConversationID: c.ConversationID}
}

// Less orders keys by agent_id then conversation_id, bytewise (the stores' order).
func (k Key) Less(o Key) bool {
	if k.AgentID != o.AgentID {
		return k.AgentID < o.AgentID
	}
	return k.ConversationID < o.ConversationID
}

// Plan is the outcome of one commit.
type Plan struct {
	// Writes are the rows to upsert, sorted by key.
	Writes []*ingest.Conversation
	// Counts holds New, Updated and Unchanged.
	Counts ingest.RecordCounts
}

// Keys returns the distinct identities in convs, sorted.
func Keys(convs []ingest.Conversation) []Key {
	seen := make(map[Key]struct{}, len(convs))
	keys := make([]Key, 0, len(convs))
	for i := range convs {
		k := KeyOf(&convs[i])
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	return keys
}

// Build compares a commit's conversations with the stored rows of the same identities
// (only the ordering fields and ContentHash of stored are read).
//
// The rule, per identity:
//   - records of one commit sharing an identity are first reduced to the newest
//     (ingest.Newer); each record dropped that way counts as Unchanged;
//   - nothing stored: the record is written, New;
//   - the record is ingest.Newer than the stored one: it is written, Updated, or
//     Unchanged when the content hashes are equal (only the origin — object key,
//     last-modified, position, source — moves to the newer copy);
//   - otherwise the stored row stays and the record counts as Unchanged (an older
//     version is not an update).
//
// Writing identical content when its origin is newer keeps the stored row equal to the
// maximum under ingest.Newer of every record ever committed, whatever the order of
// commits; keeping the first-seen copy instead would let a later, different record win
// or lose depending on which identical copy arrived first.
func Build(convs []ingest.Conversation, stored map[Key]ingest.Conversation) Plan {
	var p Plan
	best := make(map[Key]*ingest.Conversation, len(convs))
	for i := range convs {
		c := &convs[i]
		k := KeyOf(c)
		cur, ok := best[k]
		switch {
		case !ok:
			best[k] = c
		case ingest.Newer(c, cur):
			best[k] = c
			p.Counts.Unchanged++
		default:
			p.Counts.Unchanged++
		}
	}
	for k, c := range best {
		s, ok := stored[k]
		switch {
		case !ok:
			p.Counts.New++
			p.Writes = append(p.Writes, c)
		case ingest.Newer(c, &s):
			if c.ContentHash == s.ContentHash {
				p.Counts.Unchanged++
			} else {
				p.Counts.Updated++
			}
			p.Writes = append(p.Writes, c)
		default:
			p.Counts.Unchanged++
		}
	}
	sort.Slice(p.Writes, func(i, j int) bool { return KeyOf(p.Writes[i]).Less(KeyOf(p.Writes[j])) })
	return p
}
