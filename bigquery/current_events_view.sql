-- engagement_analytics.enriched_events_current: the current version of each
-- engagement event, one row per event id, deleted events left out.
--
-- enriched_events is a change log: the host appends one row per change (op
-- r/c/u/d) and never updates or deletes rows. This view replays it:
--   * keyed on `id` alone (the PostgreSQL primary key): an update can move an
--     event to another content_id, so (content_id, id) is not stable,
--   * the latest row wins by source_lsn (the PostgreSQL LSN of the change),
--   * at the same LSN a non-delete row wins over a delete: when an event moves
--     to another content the host writes a delete for the old content AND the
--     new version, both with the update's LSN,
--   * then the latest ingested_at wins (a change redelivered after BigQuery's
--     insertId dedup window, identical but for ingested_at),
--   * an event whose winning row is a delete (op = 'd') is gone.
--
-- The host creates it with `ensure_table` (BigQuerySinkConfig.create_if_missing),
-- substituting its project, dataset and table for the names below. To create it
-- by hand: bq query --use_legacy_sql=false < bigquery/current_events_view.sql
-- (after replacing the dataset name if yours differs). To change an existing
-- view, run it with CREATE OR REPLACE VIEW: IF NOT EXISTS keeps the old one.
CREATE VIEW IF NOT EXISTS `engagement_analytics.enriched_events_current` AS
SELECT * EXCEPT (version_rank)
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY id
      ORDER BY source_lsn DESC NULLS LAST, IF(op = 'd', 1, 0), ingested_at DESC
    ) AS version_rank
  FROM `engagement_analytics.enriched_events`
)
WHERE version_rank = 1 AND op != 'd';
