-- Lifetime totals per source, added to in the same transaction as each file commit, so
-- they agree with the ledger after a crash (a killed run's commits are counted; its
-- uncommitted files are not). conversations counts the records a commit stored as new or
-- updated.
--
-- Existing sources start from what their ledger rows hold now (a re-ingested object's
-- earlier counts were replaced in its row, so this can be less than the old status said).
CREATE TABLE source_totals (
    source        TEXT    PRIMARY KEY,
    conversations BIGINT  NOT NULL DEFAULT 0 CHECK (conversations >= 0)
);

INSERT INTO source_totals (source, conversations)
SELECT source, SUM(new_count + updated_count) FROM files GROUP BY source;

-- What each validator counted in committed files, per action: status.pii. Starts empty
-- (the ledger never kept it).
CREATE TABLE source_pii_totals (
    source    TEXT   NOT NULL,
    validator TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    records   BIGINT NOT NULL DEFAULT 0 CHECK (records >= 0),
    matches   BIGINT NOT NULL DEFAULT 0 CHECK (matches >= 0),
    PRIMARY KEY (source, validator, action)
);
