-- Where incremental discoveries of a source may start listing (see store.ListingState):
-- one row per source, replaced whole after each completed run, so a crash leaves the
-- previous state. marks is a JSON array of {"at": time, "key": text}.
CREATE TABLE listing_state (
    source    TEXT        NOT NULL PRIMARY KEY,
    scope     TEXT        NOT NULL,
    last_full TIMESTAMPTZ NOT NULL,
    marks     JSON        NOT NULL
);
