-- Processing attempts per object, counted before an attempt starts: a file that kills
-- the process while it is processed (out of memory, a crash) leaves its count behind,
-- so after the manager's --max-file-attempts it is parked instead of killing it again.
-- etag is the version counted; another version starts again at 1. A committed file
-- (ingested, or failed by its content) clears its row.
CREATE TABLE file_attempts (
    source     TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    etag       TEXT        NOT NULL,
    tries      INTEGER     NOT NULL CHECK (tries >= 0),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, key)
);
