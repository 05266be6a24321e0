-- Commits write conversations by COPY (see writeConversations).
--
-- New raw values are compressed with lz4 instead of pglz, PostgreSQL's default: pglz
-- took about a third of the server's CPU time of a commit, and lz4 compresses the
-- records about as well at several times the speed. Only the column's setting changes
-- (no rewrite, a brief lock): existing values stay pglz, and both read alike. A server
-- built without lz4 (or older than 14, without the clause) keeps pglz.
DO $$
BEGIN
    ALTER TABLE conversations ALTER COLUMN raw SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'conversations.raw keeps the default compression: %', SQLERRM;
END
$$;

-- A new conversation is copied into the table without updated_at, which is then the
-- transaction's time, as the upsert of an existing one sets it.
ALTER TABLE conversations ALTER COLUMN updated_at SET DEFAULT now();
