-- engagement_analytics.enriched_events: one row per change of an engagement
-- event (a change log, appended by the host through tabledata.insertAll).
-- The same columns as enriched_events_schema.json (keep the two in step).
--
-- Every column is NULLABLE where PostgreSQL allows NULL, plus event_ts: it is
-- NOT NULL in PostgreSQL, but a delete row (op = 'd') carries only the key and
-- the content it belonged to, so its event_ts is NULL (it lands in the
-- __NULL__ partition). REQUIRED: id (the key, on every row), content_missing
-- and op (the host always sets them).
--
-- bq query --use_legacy_sql=false < bigquery/create_table.sql
-- then bigquery/current_events_view.sql for the view of current versions.
CREATE SCHEMA IF NOT EXISTS `engagement_analytics`;

CREATE TABLE IF NOT EXISTS `engagement_analytics.enriched_events` (
  id INT64 NOT NULL OPTIONS (description = 'engagement_events.id (the primary key). Several rows per id: one per change (see op, source_lsn).'),
  content_id STRING OPTIONS (description = 'engagement_events.content_id (UUID text). On a delete row: the content the event belonged to.'),
  user_id STRING OPTIONS (description = 'engagement_events.user_id (UUID text).'),
  event_type STRING OPTIONS (description = 'play, pause, finish or click.'),
  event_ts TIMESTAMP OPTIONS (description = 'engagement_events.event_ts. NOT NULL in PostgreSQL, but NULL on delete rows: a delete carries only the key.'),
  duration_ms INT64 OPTIONS (description = 'engagement_events.duration_ms.'),
  device STRING OPTIONS (description = 'engagement_events.device.'),
  raw_payload STRING OPTIONS (description = 'engagement_events.raw_payload (JSONB) as JSON text: read it with JSON_VALUE / PARSE_JSON.'),
  content_type STRING OPTIONS (description = 'content.content_type (podcast, newsletter, video), NULL when content_missing.'),
  length_seconds INT64 OPTIONS (description = 'content.length_seconds, NULL when content_missing or unknown.'),
  engagement_seconds FLOAT64 OPTIONS (description = 'round(duration_ms / 1000, 3), NULL without a duration >= 0.'),
  engagement_pct FLOAT64 OPTIONS (description = 'round(engagement_seconds / length_seconds * 100, 2), not capped at 100, NULL without a length > 0.'),
  content_missing BOOL NOT NULL OPTIONS (description = 'The content was not known within the pending TTL: the content fields are NULL.'),
  op STRING NOT NULL OPTIONS (description = 'r (snapshot), c (insert), u (update) or d (delete). A d row removes the event from content_id. When an event moved to another content, the d row for its old content has the same source_lsn as the new version.'),
  source_lsn INT64 OPTIONS (description = 'PostgreSQL LSN of the change: orders the versions of an event.'),
  source_ts_ms INT64 OPTIONS (description = 'Commit time of the change in PostgreSQL (ms since the epoch).'),
  decoder_plugin STRING OPTIONS (description = 'Decoder plugin name@version that produced the row.'),
  decoder_sha256 STRING OPTIONS (description = 'sha256 of the decoder plugin file.'),
  enricher_plugin STRING OPTIONS (description = 'Enricher plugin name@version, NULL on delete rows (no rule ran).'),
  enricher_sha256 STRING OPTIONS (description = 'sha256 of the enricher plugin file, NULL on delete rows.'),
  ingested_at TIMESTAMP OPTIONS (description = 'When the host sent the row (breaks source_lsn ties between redeliveries).')
)
PARTITION BY DATE(event_ts)
CLUSTER BY content_type, event_type
OPTIONS (description = 'Enriched engagement events: one row per change, written by engagement-host. Current versions: enriched_events_current.');
