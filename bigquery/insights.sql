-- Ten analytical queries over the current version of each engagement event
-- (the view engagement_analytics.enriched_events_current: latest row per id,
-- deleted events excluded, see current_events_view.sql). Querying the view,
-- not the table, counts an updated event once and a deleted one not at all.
--
-- Windows are on event_ts (when the engagement happened), relative to now.
-- engagement_seconds / engagement_pct are NULL when the event had no duration
-- (finish, click) or its content had no length (newsletters, content_missing):
-- AVG, STDDEV and APPROX_QUANTILES skip NULLs, COUNT(*) does not.
-- Run one at a time: bq query --use_legacy_sql=false '<query>'.

-- 1. Average engagement per content type over the last 7 days: mean seconds
--    and mean percent of the content's length, with the number of events.
SELECT
  content_type,
  COUNT(*) AS events,
  ROUND(AVG(engagement_seconds), 3) AS avg_engagement_seconds,
  ROUND(AVG(engagement_pct), 2) AS avg_engagement_pct
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
GROUP BY content_type
ORDER BY events DESC;

-- 2. Median and 90th percentile of engagement seconds per content type over
--    the last 7 days (approximate: APPROX_QUANTILES with 100 buckets, so
--    OFFSET(50) is the median and OFFSET(90) the p90).
SELECT
  content_type,
  COUNT(engagement_seconds) AS events_with_duration,
  APPROX_QUANTILES(engagement_seconds, 100)[OFFSET(50)] AS median_engagement_seconds,
  APPROX_QUANTILES(engagement_seconds, 100)[OFFSET(90)] AS p90_engagement_seconds
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
  AND engagement_seconds IS NOT NULL
GROUP BY content_type
ORDER BY content_type;

-- 3. Spread of engagement percent per content type over the last 30 days:
--    mean, sample standard deviation, min and max (only content with a length).
SELECT
  content_type,
  COUNT(engagement_pct) AS events_with_pct,
  ROUND(AVG(engagement_pct), 2) AS avg_engagement_pct,
  ROUND(STDDEV_SAMP(engagement_pct), 2) AS stddev_engagement_pct,
  MIN(engagement_pct) AS min_engagement_pct,
  MAX(engagement_pct) AS max_engagement_pct
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
  AND engagement_pct IS NOT NULL
GROUP BY content_type
ORDER BY content_type;

-- 4. Top 10 content items by total engagement seconds over the last 7 days,
--    with their event count and distinct users.
SELECT
  content_id,
  ANY_VALUE(content_type) AS content_type,
  ROUND(SUM(engagement_seconds), 3) AS total_engagement_seconds,
  COUNT(*) AS events,
  COUNT(DISTINCT user_id) AS users
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
  AND content_id IS NOT NULL
GROUP BY content_id
ORDER BY total_engagement_seconds DESC NULLS LAST, content_id
LIMIT 10;

-- 5. Top 10 content items by reach (distinct users) over the last 30 days.
SELECT
  content_id,
  ANY_VALUE(content_type) AS content_type,
  COUNT(DISTINCT user_id) AS users,
  COUNT(*) AS events
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
  AND content_id IS NOT NULL
GROUP BY content_id
ORDER BY users DESC, content_id
LIMIT 10;

-- 6. Events per device and event type over the last 7 days, and each
--    (device, event type) pair's share of all events in the window (percent).
SELECT
  device,
  event_type,
  COUNT(*) AS events,
  ROUND(100 * COUNT(*) / SUM(COUNT(*)) OVER (), 2) AS pct_of_all_events
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
GROUP BY device, event_type
ORDER BY events DESC, device, event_type;

-- 7. Top 3 devices per content type by average engagement percent over the
--    last 30 days (devices with at least 10 events with a percent).
SELECT content_type, device, events_with_pct, avg_engagement_pct
FROM (
  SELECT
    content_type,
    device,
    COUNT(engagement_pct) AS events_with_pct,
    ROUND(AVG(engagement_pct), 2) AS avg_engagement_pct,
    ROW_NUMBER() OVER (
      PARTITION BY content_type ORDER BY AVG(engagement_pct) DESC, device
    ) AS device_rank
  FROM `engagement_analytics.enriched_events_current`
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND engagement_pct IS NOT NULL
  GROUP BY content_type, device
  HAVING COUNT(engagement_pct) >= 10
)
WHERE device_rank <= 3
ORDER BY content_type, device_rank;

-- 8. Finish rate per content type over the last 30 days: finish events per
--    play event (percent, NULL when there was no play).
SELECT
  content_type,
  COUNTIF(event_type = 'play') AS plays,
  COUNTIF(event_type = 'finish') AS finishes,
  ROUND(100 * SAFE_DIVIDE(COUNTIF(event_type = 'finish'), COUNTIF(event_type = 'play')), 2) AS finish_per_play_pct
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
GROUP BY content_type
ORDER BY content_type;

-- 9. Daily activity over the last 30 days (UTC days): events, distinct users
--    and average engagement seconds per day.
SELECT
  DATE(event_ts) AS day,
  COUNT(*) AS events,
  COUNT(DISTINCT user_id) AS users,
  ROUND(AVG(engagement_seconds), 3) AS avg_engagement_seconds
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
GROUP BY day
ORDER BY day;

-- 10. Events and average engagement percent per enricher version over the
--     last 7 days, with the share whose content was missing (percent): how a
--     rule rollout and the content join behave.
SELECT
  enricher_plugin,
  COUNT(*) AS events,
  ROUND(AVG(engagement_pct), 2) AS avg_engagement_pct,
  ROUND(100 * COUNTIF(content_missing) / COUNT(*), 2) AS content_missing_pct
FROM `engagement_analytics.enriched_events_current`
WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
GROUP BY enricher_plugin
ORDER BY events DESC;
