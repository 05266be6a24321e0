// Package plan decides, for both store backends, what one file commit does to the
// stored conversations. Keeping the rule in one pure function is what makes SQLite
// and PostgreSQL agree record for record.
package plan

import (
	"sort"

	"github.com/avon-ai/data-import-operator/internal/store"
)

// Key is a conversation's identity: the same agent_id and conversation_id in two
// namespaces are two conversations.
type Key struct {
	Namespace      string
	AgentID        string
	ConversationID string
}

// KeyOf returns c's identity.
func KeyOf(c *store.Conversation) Key {
	return Key{Namespace: c.Namespace, AgentID: c.AgentID, ConversationID: c.ConversationID}
}

// Less orders keys by namespace, agent_id then conversation_id, bytewise (the stores'
// order).
func (k Key) Less(o Key) bool {
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	if k.AgentID != o.AgentID {
		return k.AgentID < o.AgentID
	}
	return k.ConversationID < o.ConversationID
}

// Plan is the outcome of one commit.
type Plan struct {
	// Writes are the rows to upsert, sorted by key.
	Writes []*store.Conversation
	// Counts holds New, Updated and Unchanged.
	Counts store.RecordCounts
}

// Keys returns the distinct identities in convs, sorted.
func Keys(convs []store.Conversation) []Key {
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

// Build decides one batch of a commit, record by record in order, with
// store.RecordOutcome against the stored rows of the batch's identities (only the
// ordering fields, origin and ContentHash of stored are read) as earlier records of the
// batch leave them. Writes holds, per identity, the last record written: the rows the
// batch leaves.
func Build(convs []store.Conversation, stored map[Key]store.Conversation) Plan {
	var p Plan
	cur := make(map[Key]*store.Conversation, len(convs))
	for i := range convs {
		c := &convs[i]
		k := KeyOf(c)
		s, ok := cur[k]
		if !ok {
			if row, found := stored[k]; found {
				s = &row
			}
		}
		write, o := store.RecordOutcome(c, s)
		p.Counts.Add(o)
		if write {
			cur[k] = c
		}
	}
	for _, c := range cur {
		p.Writes = append(p.Writes, c)
	}
	sort.Slice(p.Writes, func(i, j int) bool { return KeyOf(p.Writes[i]).Less(KeyOf(p.Writes[j])) })
	return p
}
