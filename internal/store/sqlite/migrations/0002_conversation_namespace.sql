-- A conversation's identity becomes (namespace, agent_id, conversation_id): each
-- namespace is a customer, and one customer's record must never replace another's.
-- SQLite cannot change a primary key in place, so the table is rebuilt, in the
-- migration's transaction. The new primary key also serves lookups by (namespace,
-- agent_id), its leading columns.
--
-- Existing rows take the namespace of the source that wrote them: the part of source
-- ("namespace/name" for an S3Source) before the first '/'. The operator never wrote a
-- source without one; a row that has none anyway (written by hand) goes to "default",
-- where the data-import CLI looks without -n.
CREATE TABLE conversations_v2 (
    namespace            TEXT    NOT NULL CHECK (namespace <> ''),
    agent_id             TEXT    NOT NULL CHECK (agent_id <> ''),
    conversation_id      TEXT    NOT NULL CHECK (conversation_id <> ''),
    activity_time        TEXT    NOT NULL,
    object_key           TEXT    NOT NULL,
    object_last_modified TEXT    NOT NULL,
    position             INTEGER NOT NULL,
    content_hash         TEXT    NOT NULL,
    source               TEXT    NOT NULL,
    raw                  TEXT    NOT NULL CHECK (json_valid(raw)),
    updated_at           TEXT    NOT NULL,
    PRIMARY KEY (namespace, agent_id, conversation_id)
);

INSERT INTO conversations_v2 (namespace, agent_id, conversation_id, activity_time, object_key,
    object_last_modified, position, content_hash, source, raw, updated_at)
SELECT CASE WHEN instr(source, '/') > 1 THEN substr(source, 1, instr(source, '/') - 1) ELSE 'default' END,
    agent_id, conversation_id, activity_time, object_key, object_last_modified, position, content_hash,
    source, raw, updated_at
FROM conversations;

DROP TABLE conversations;
ALTER TABLE conversations_v2 RENAME TO conversations;
