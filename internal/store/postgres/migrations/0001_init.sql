-- Text that takes part in ordering is COLLATE "C" so PostgreSQL orders bytewise, like
-- Go's string comparison and SQLite.
--
-- Conversations: one row per (agent_id, conversation_id); the primary key also serves
-- lookups by agent_id alone (its leading column). timestamptz keeps microseconds; the
-- *_ns columns keep the remaining nanoseconds (0..999) so a stored record compares
-- exactly as the Go value it came from. raw is JSON, not JSONB: JSON keeps the record
-- byte for byte as the customer sent it (JSONB would reorder keys and drop duplicates).
CREATE TABLE conversations (
    agent_id                TEXT COLLATE "C" NOT NULL CHECK (agent_id <> ''),
    conversation_id         TEXT COLLATE "C" NOT NULL CHECK (conversation_id <> ''),
    activity_time           TIMESTAMPTZ      NOT NULL,
    activity_time_ns        SMALLINT         NOT NULL,
    object_key              TEXT COLLATE "C" NOT NULL,
    object_last_modified    TIMESTAMPTZ      NOT NULL,
    object_last_modified_ns SMALLINT         NOT NULL,
    position                BIGINT           NOT NULL,
    content_hash            TEXT COLLATE "C" NOT NULL,
    source                  TEXT             NOT NULL,
    raw                     JSON             NOT NULL,
    updated_at              TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);

-- The file ledger: one row per object of a source.
CREATE TABLE files (
    source          TEXT COLLATE "C" NOT NULL,
    key             TEXT COLLATE "C" NOT NULL,
    etag            TEXT        NOT NULL,
    size            BIGINT      NOT NULL,
    last_modified   TIMESTAMPTZ NOT NULL,
    state           TEXT        NOT NULL CHECK (state IN ('ingested', 'failed', 'deferred', 'ignored')),
    reason          TEXT        NOT NULL,
    message         TEXT        NOT NULL,
    valid_count     BIGINT      NOT NULL,
    invalid_count   BIGINT      NOT NULL,
    new_count       BIGINT      NOT NULL,
    updated_count   BIGINT      NOT NULL,
    unchanged_count BIGINT      NOT NULL,
    bytes           BIGINT      NOT NULL,
    attempts        INTEGER     NOT NULL,
    first_seen      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE INDEX files_source_state ON files (source, state, updated_at);
CREATE INDEX files_source_updated ON files (source, updated_at);

-- Charged bytes per quota, day and source.
CREATE TABLE usage (
    quota  TEXT   NOT NULL,
    day    TEXT   NOT NULL,
    source TEXT   NOT NULL,
    bytes  BIGINT NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (quota, day, source)
);

-- Bytes held for downloads in flight.
CREATE TABLE reservations (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    quota      TEXT        NOT NULL,
    day        TEXT        NOT NULL,
    source     TEXT        NOT NULL,
    bytes      BIGINT      NOT NULL CHECK (bytes >= 0),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX reservations_quota_day ON reservations (quota, day);
CREATE INDEX reservations_source ON reservations (source);
