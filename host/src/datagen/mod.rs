//! `datagen`: writes content and engagement rows into PostgreSQL at a
//! steady pace (a transaction every tick, not a burst a minute), with the
//! original generator's distributions, plus the changes that exercise every
//! path of the host: updates, deletes, content updates, and events committed
//! before their content (the content follows in a later transaction).

pub mod db;
pub mod model;

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use uuid::Uuid;

pub use db::{DbError, DbTarget};
use model::{NewContent, NewEvent, RowGenerator};

/// Everything `datagen` needs.
#[derive(Debug, Clone)]
pub struct DatagenSettings {
    pub target: DbTarget,
    pub content_per_min: f64,
    pub events_per_min: f64,
    pub duration: Duration,
    /// Attach events to content already in the database too.
    pub use_existing: bool,
    /// Attach most events (80%) to content created by this run.
    pub prefer_new: bool,
    /// Share of inserted events later updated (new duration).
    pub update_share: f64,
    /// Share of inserted events later deleted.
    pub delete_share: f64,
    /// Share of new content whose first events are committed before it.
    pub early_share: f64,
    /// Share of new content whose length is later changed.
    pub content_update_share: f64,
    pub tick: Duration,
    pub seed: Option<u64>,
    pub progress: bool,
}

/// What was written, as committed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DatagenSummary {
    pub content_inserted: u64,
    /// Of those, content committed after events referencing it.
    pub content_after_events: u64,
    pub content_updated: u64,
    pub events_inserted: u64,
    pub events_updated: u64,
    pub events_deleted: u64,
    pub transactions: u64,
    pub elapsed_secs: f64,
}

impl DatagenSummary {
    pub fn describe(&self) -> String {
        format!(
            "datagen: {} transactions in {:.1} s: content {} inserted ({} after their first events), {} updated; \
             engagement events {} inserted, {} updated, {} deleted",
            self.transactions,
            self.elapsed_secs,
            self.content_inserted,
            self.content_after_events,
            self.content_updated,
            self.events_inserted,
            self.events_updated,
            self.events_deleted,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "no content to attach engagement events to: pass --content N (rows per minute) or --use-existing with content in the database"
    )]
    NoContent,
    #[error("{0} must be between 0 and 1")]
    Share(&'static str),
}

/// Content events may be attached to.
#[derive(Default)]
struct ContentPool {
    existing: Vec<(Uuid, String)>,
    new: Vec<(Uuid, String)>,
}

impl ContentPool {
    fn pick(&self, generator: &mut RowGenerator, prefer_new: bool) -> Option<Uuid> {
        let from_new = if prefer_new && !self.new.is_empty() {
            self.existing.is_empty() || generator.chance(0.8)
        } else {
            generator.index(self.existing.len() + self.new.len())? >= self.existing.len()
        };
        let list = if from_new { &self.new } else { &self.existing };
        generator.pick(list).map(|(id, _)| *id)
    }
}

/// One tick's changes, committed in one transaction.
#[derive(Default)]
struct Tick {
    content: Vec<NewContent>,
    events: Vec<NewEvent>,
    event_updates: Vec<(i64, Option<i32>)>,
    event_deletes: Vec<i64>,
    content_updates: Vec<(Uuid, Option<i32>)>,
}

pub async fn run(settings: &DatagenSettings) -> Result<DatagenSummary, DatagenError> {
    for (name, share) in [
        ("--updates", settings.update_share),
        ("--deletes", settings.delete_share),
        ("--early-events", settings.early_share),
        ("--content-updates", settings.content_update_share),
    ] {
        if !(0.0..=1.0).contains(&share) {
            return Err(DatagenError::Share(name));
        }
    }
    let mut client = settings.target.connect().await?;
    let mut pool = ContentPool::default();
    if settings.use_existing {
        pool.existing = db::existing_content(&client).await?;
    }
    if settings.events_per_min > 0.0 && settings.content_per_min <= 0.0 && pool.existing.is_empty()
    {
        return Err(DatagenError::NoContent);
    }

    let mut generator = RowGenerator::new(settings.seed);
    let minutes = settings.duration.as_secs_f64() / 60.0;
    let planned_events = (settings.events_per_min * minutes).floor() as u64;
    let planned_content = (settings.content_per_min * minutes).floor() as u64;
    let bar = progress_bar(settings.progress, planned_events);

    let mut summary = DatagenSummary::default();
    let mut live_events: Vec<i64> = Vec::new();
    // Content whose events went first; inserted in the next transaction.
    let mut deferred: Vec<NewContent> = Vec::new();
    let (mut content_due, mut events_due) = (0u64, 0u64);
    let started = Instant::now();
    let mut interval = tokio::time::interval(settings.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        interval.tick().await;
        let elapsed = started.elapsed().min(settings.duration);
        let done = elapsed >= settings.duration;
        let elapsed_min = elapsed.as_secs_f64() / 60.0;
        let target_content = if done {
            planned_content
        } else {
            (settings.content_per_min * elapsed_min) as u64
        };
        let target_events = if done {
            planned_events
        } else {
            (settings.events_per_min * elapsed_min) as u64
        };

        let mut tick = Tick {
            content: std::mem::take(&mut deferred),
            ..Tick::default()
        };
        let content_after_events = tick.content.len() as u64;
        let mut new_events_budget = target_events.saturating_sub(events_due);
        while content_due < target_content {
            content_due += 1;
            let content = generator.content();
            pool.new
                .push((content.id, content.content_type.to_string()));
            // Events before their content need a later transaction, so the
            // last tick has none of those.
            if !done && generator.chance(settings.early_share) && new_events_budget > 0 {
                let first_events = new_events_budget.min(3);
                for _ in 0..first_events {
                    tick.events.push(generator.event(content.id));
                }
                new_events_budget -= first_events;
                deferred.push(content);
            } else {
                tick.content.push(content);
            }
        }
        for _ in 0..new_events_budget {
            if let Some(content_id) = pool.pick(&mut generator, settings.prefer_new) {
                tick.events.push(generator.event(content_id));
            }
        }
        events_due = target_events;
        plan_changes(&mut generator, settings, &mut tick, &mut live_events, &pool);

        let tx = client
            .transaction()
            .await
            .map_err(|source| DbError::Query {
                what: "BEGIN",
                source,
            })?;
        summary.content_inserted += db::insert_content(&tx, &tick.content).await?;
        let ids = db::insert_events(&tx, &tick.events).await?;
        summary.events_updated += db::update_events(&tx, &tick.event_updates).await?;
        summary.events_deleted += db::delete_events(&tx, &tick.event_deletes).await?;
        summary.content_updated += db::update_content_lengths(&tx, &tick.content_updates).await?;
        tx.commit().await.map_err(|source| DbError::Query {
            what: "COMMIT",
            source,
        })?;
        summary.transactions += 1;
        summary.content_after_events += content_after_events;
        summary.events_inserted += ids.len() as u64;
        live_events.extend(ids);
        bar.set_position(summary.events_inserted);
        bar.set_message(format!(
            "content {} | updates {} | deletes {}",
            summary.content_inserted, summary.events_updated, summary.events_deleted
        ));
        if done && deferred.is_empty() {
            break;
        }
    }
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(summary)
}

/// Updates and deletes of events committed in earlier ticks, and content
/// length changes, in proportion to this tick's new events.
fn plan_changes(
    generator: &mut RowGenerator,
    settings: &DatagenSettings,
    tick: &mut Tick,
    live_events: &mut Vec<i64>,
    pool: &ContentPool,
) {
    for _ in 0..tick.events.len() {
        if generator.chance(settings.update_share)
            && let Some(&id) = generator.pick(live_events)
        {
            let event_type = if generator.chance(0.5) {
                "play"
            } else {
                "pause"
            };
            tick.event_updates
                .push((id, generator.duration_ms(event_type)));
        }
        if generator.chance(settings.delete_share)
            && let Some(i) = generator.index(live_events.len())
        {
            tick.event_deletes.push(live_events.swap_remove(i));
        }
    }
    // An update then a delete of one row in one transaction is fine, but a
    // row updated twice would only count once: keep the last.
    tick.event_updates.sort_by_key(|u| u.0);
    tick.event_updates.dedup_by_key(|u| u.0);
    // Content not committed yet is simply not found (0 rows updated).
    for _ in 0..tick.content.len() {
        if generator.chance(settings.content_update_share)
            && let Some((id, content_type)) = generator.pick(&pool.new)
        {
            let length = generator.length_seconds(content_type);
            tick.content_updates.push((*id, length));
        }
    }
    tick.content_updates.sort_by_key(|u| u.0);
    tick.content_updates.dedup_by_key(|u| u.0);
}

fn progress_bar(enabled: bool, planned_events: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(planned_events);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} events ({per_sec}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
