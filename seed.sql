-- Schema of the source database, captured by Debezium (pgoutput).
--
-- Idempotent: safe to run again on a database that already has it (the
-- native stack runs it at every start; the compose stack runs it once from
-- docker-entrypoint-initdb.d). Needs `wal_level=logical` on the server for
-- Debezium, not for this script.

CREATE TABLE IF NOT EXISTS content (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    slug           TEXT UNIQUE NOT NULL,
    title          TEXT NOT NULL,
    content_type   TEXT CHECK (content_type IN ('podcast', 'newsletter', 'video')),
    length_seconds INTEGER,
    publish_ts     TIMESTAMPTZ NOT NULL
);

-- No foreign key on content_id: events can be committed before their
-- content (a separate, later transaction), which the host must handle, and
-- content can be deleted while its events stay.
CREATE TABLE IF NOT EXISTS engagement_events (
    id          BIGSERIAL PRIMARY KEY,
    content_id  UUID,
    user_id     UUID,
    event_type  TEXT CHECK (event_type IN ('play', 'pause', 'finish', 'click')),
    event_ts    TIMESTAMPTZ NOT NULL,
    duration_ms INTEGER,
    device      TEXT,
    raw_payload JSONB
);

CREATE INDEX IF NOT EXISTS engagement_events_content_id ON engagement_events (content_id);

-- Deletes and updates carry the whole old row, so a delete names its
-- content_id (the Redis key needs it). The host also works under the
-- default identity (key only), resolving the content through its index.
ALTER TABLE content REPLICA IDENTITY FULL;
ALTER TABLE engagement_events REPLICA IDENTITY FULL;

-- Created here, as the table owner, so Debezium needs no superuser
-- (`publication.autocreate.mode=all_tables` would otherwise create it
-- FOR ALL TABLES, which only a superuser may do).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'dbz_publication') THEN
        CREATE PUBLICATION dbz_publication FOR TABLE content, engagement_events;
    END IF;
END
$$;
