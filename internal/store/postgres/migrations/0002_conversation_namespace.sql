-- A conversation's identity becomes (namespace, agent_id, conversation_id): each
-- namespace is a customer, and one customer's record must never replace another's. The
-- new primary key also serves lookups by (namespace, agent_id), its leading columns.
--
-- Existing rows take the namespace of the source that wrote them: the part of source
-- ("namespace/name" for an S3Source) before the first '/'. The operator never wrote a
-- source without one; a row that has none anyway (written by hand) goes to "default",
-- where the data-import CLI looks without -n. The whole file runs in one transaction,
-- which holds the table exclusively while it rebuilds the primary key. During a rolling
-- upgrade, commits of a manager still on the old version fail (their ON CONFLICT names
-- the old key) and roll back whole; their files are processed again by the new version.
ALTER TABLE conversations ADD COLUMN namespace TEXT COLLATE "C";

UPDATE conversations
SET namespace = CASE WHEN strpos(source, '/') > 1 THEN split_part(source, '/', 1) ELSE 'default' END;

ALTER TABLE conversations
    ALTER COLUMN namespace SET NOT NULL,
    ADD CONSTRAINT conversations_namespace_check CHECK (namespace <> ''),
    DROP CONSTRAINT conversations_pkey,
    ADD CONSTRAINT conversations_pkey PRIMARY KEY (namespace, agent_id, conversation_id);
