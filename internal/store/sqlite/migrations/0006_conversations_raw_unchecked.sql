-- conversations.raw loses its CHECK (json_valid(raw)). The only writer is the ingest
-- engine's commit, and it stores nothing but records its own strict (RFC 8259) parser
-- accepted and compacted; the CHECK parsed every record a second time inside SQLite,
-- about a fifth of a commit's CPU. SQLite cannot drop a CHECK in place, so the table
-- is rebuilt with its rows, in the migration's transaction, as in 0002.
CREATE TABLE conversations_v6 (
    namespace            TEXT    NOT NULL CHECK (namespace <> ''),
    agent_id             TEXT    NOT NULL CHECK (agent_id <> ''),
    conversation_id      TEXT    NOT NULL CHECK (conversation_id <> ''),
    activity_time        TEXT    NOT NULL,
    object_key           TEXT    NOT NULL,
    object_last_modified TEXT    NOT NULL,
    position             INTEGER NOT NULL,
    content_hash         TEXT    NOT NULL,
    source               TEXT    NOT NULL,
    raw                  TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL,
    PRIMARY KEY (namespace, agent_id, conversation_id)
);

INSERT INTO conversations_v6 (namespace, agent_id, conversation_id, activity_time, object_key,
    object_last_modified, position, content_hash, source, raw, updated_at)
SELECT namespace, agent_id, conversation_id, activity_time, object_key, object_last_modified,
    position, content_hash, source, raw, updated_at
FROM conversations;

DROP TABLE conversations;
ALTER TABLE conversations_v6 RENAME TO conversations;
