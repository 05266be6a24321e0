-- Conversations: one row per (agent_id, conversation_id). The primary key also serves
-- lookups by agent_id alone (its leading column), so no separate agent index is needed.
-- Times are TEXT in a fixed-width UTC form (2006-01-02T15:04:05.000000000Z), exact to the
-- nanosecond and ordered as text.
CREATE TABLE conversations (
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
    PRIMARY KEY (agent_id, conversation_id)
);

-- The file ledger: one row per object of a source.
CREATE TABLE files (
    source          TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    etag            TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    last_modified   TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('ingested', 'failed', 'deferred', 'ignored')),
    reason          TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    valid_count     INTEGER NOT NULL,
    invalid_count   INTEGER NOT NULL,
    new_count       INTEGER NOT NULL,
    updated_count   INTEGER NOT NULL,
    unchanged_count INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    first_seen      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE INDEX files_source_state ON files (source, state, updated_at);
CREATE INDEX files_source_updated ON files (source, updated_at);

-- Charged bytes per quota, day and source.
CREATE TABLE usage (
    quota  TEXT    NOT NULL,
    day    TEXT    NOT NULL,
    source TEXT    NOT NULL,
    bytes  INTEGER NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (quota, day, source)
);

-- Bytes held for downloads in flight.
CREATE TABLE reservations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    quota      TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    bytes      INTEGER NOT NULL CHECK (bytes >= 0),
    created_at TEXT    NOT NULL
);
CREATE INDEX reservations_quota_day ON reservations (quota, day);
CREATE INDEX reservations_source ON reservations (source);
