//! Join state between the two tables: the content cache, events waiting for
//! their content, and the index of events already emitted.
//!
//! [`State::apply`] turns one decoded change into [`Action`]s (enrich this
//! event with this content, delete that event) and records what it changed in
//! a [`StateDelta`] for the store. It does no I/O and calls no plugin.
//!
//! Ordering: every row keeps the LSN of its last change, and a change older
//! than that is ignored, so Pub/Sub redelivery and reordering can neither
//! bring back an old version nor undo a delete.

pub mod model;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use metrics::{counter, gauge};

use crate::source::Origin;
use crate::wasm::bindings::{Column, Message, Op, Row, RowChange, Value};
use model::{ContentEntry, EventEntry, PendingEvent, StateDelta, StateWrite, pending_key};
use store::Snapshot;

/// Which tables play which role, and the pending buffer's limits.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Table holding content metadata.
    pub content_table: String,
    /// Table holding engagement events.
    pub events_table: String,
    /// Column of an event that holds its content's key.
    pub content_ref_column: String,
    /// How long an event waits for its content before it is emitted with
    /// `content_missing` (ms).
    pub pending_ttl_ms: i64,
    /// Most events waiting at once; the pipeline stops pulling at this size.
    pub max_pending: usize,
    /// How long the event index remembers an event after its last change (ms).
    pub event_index_retention_ms: i64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            content_table: "content".into(),
            events_table: "engagement_events".into(),
            content_ref_column: "content_id".into(),
            pending_ttl_ms: 10_000,
            max_pending: 100_000,
            event_index_retention_ms: 24 * 3600 * 1000,
        }
    }
}

/// Where an event to enrich came from.
#[derive(Debug, Clone)]
pub enum EventSource {
    /// Message `i` of the batch being processed.
    Batch(usize),
    /// A pending event, with its own message (its batch is long gone).
    Pending(Box<(Message, Origin)>),
}

/// What the pipeline must do as a result of a change.
#[derive(Debug, Clone)]
pub enum Action {
    /// Enrich `change.after` with `content` (`None`: missing) and emit it.
    Enrich {
        change: RowChange,
        event_key: String,
        content_id: Option<String>,
        content: Option<Arc<Row>>,
        source: EventSource,
    },
    /// Remove the event from the sinks.
    Delete {
        change: RowChange,
        event_key: String,
        content_id: Option<String>,
        source: EventSource,
    },
}

/// Counters of what `apply` decided, for the run summary.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct StateStats {
    pub stale_ignored: u64,
    pub other_tables_ignored: u64,
    pub pending_parked: u64,
    pub pending_expired: u64,
    pub truncates: u64,
}

/// The working copy of the state.
pub struct State {
    config: StateConfig,
    content: HashMap<String, ContentEntry>,
    /// Content key -> events waiting for it, in arrival order.
    pending: HashMap<String, Vec<PendingEvent>>,
    pending_len: usize,
    events: HashMap<String, EventEntry>,
    delta: StateDelta,
    persist: bool,
    last_prune_ms: i64,
    pub stats: StateStats,
}

impl State {
    /// Starts from what the store had. With `persist`, every change is also
    /// recorded in the delta handed to the store.
    pub fn new(config: StateConfig, snapshot: Snapshot, persist: bool) -> Self {
        let mut pending: HashMap<String, Vec<PendingEvent>> = HashMap::new();
        let pending_len = snapshot.pending.len();
        let mut parked = snapshot.pending;
        parked.sort_by_key(|p| p.deadline_ms);
        for event in parked {
            let content_id =
                content_ref(&event.change, &config.content_ref_column).unwrap_or_default();
            pending.entry(content_id).or_default().push(event);
        }
        let state = Self {
            config,
            content: snapshot.content.into_iter().collect(),
            pending,
            pending_len,
            events: snapshot.events.into_iter().collect(),
            delta: StateDelta::default(),
            persist,
            last_prune_ms: i64::MIN,
            stats: StateStats::default(),
        };
        state.report_sizes();
        state
    }

    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// Events waiting for their content.
    pub fn pending_len(&self) -> usize {
        self.pending_len
    }

    /// Content rows known (deleted ones included).
    pub fn content_len(&self) -> usize {
        self.content.len()
    }

    /// Whether the pending buffer is at its bound.
    pub fn pending_full(&self) -> bool {
        self.pending_len >= self.config.max_pending
    }

    /// Notes a write for the store (nothing when there is no store: a
    /// replay without a state directory skips building the delta).
    fn record(&mut self, write: StateWrite) {
        if self.persist {
            self.delta.writes.push(write);
        }
    }

    /// Hands over the writes made since the last call.
    pub fn take_delta(&mut self) -> StateDelta {
        self.report_sizes();
        std::mem::take(&mut self.delta)
    }

    fn report_sizes(&self) {
        gauge!("engagement_pending_events").set(self.pending_len as f64);
        gauge!("engagement_content_cache_entries").set(self.content.len() as f64);
    }

    /// Applies one change; `message` is the one it came in (kept with an
    /// event that has to wait). `now_ms` is the pipeline's clock.
    pub fn apply(
        &mut self,
        change: RowChange,
        batch_index: usize,
        message: &Message,
        origin: &Origin,
        now_ms: i64,
        actions: &mut Vec<Action>,
    ) {
        if change.table == self.config.content_table {
            self.apply_content(change, actions);
        } else if change.table == self.config.events_table {
            self.apply_event(change, batch_index, message, origin, now_ms, actions);
        } else {
            self.stats.other_tables_ignored += 1;
            counter!("engagement_changes_ignored_total", "reason" => "other_table").increment(1);
        }
    }

    fn apply_content(&mut self, change: RowChange, actions: &mut Vec<Action>) {
        if change.op == Op::Truncate {
            self.stats.truncates += 1;
            self.content.clear();
            self.record(StateWrite::ClearContent);
            return;
        }
        let key = key_text(&change.key);
        if let Some(known) = self.content.get(&key)
            && is_stale(known.lsn, change.lsn)
        {
            self.stale(&change);
            return;
        }
        let row = match change.op {
            Op::Delete => None,
            _ => change.after.map(Arc::new),
        };
        counter!("engagement_content_changes_total").increment(1);
        let entry = ContentEntry {
            lsn: change.lsn,
            row,
        };
        self.record(StateWrite::PutContent(key.clone(), entry.clone()));
        let row = entry.row.clone();
        self.content.insert(key.clone(), entry);

        // Events that waited for this content go out now.
        if let Some(row) = row
            && let Some(waiting) = self.pending.remove(&key)
        {
            self.pending_len -= waiting.len();
            counter!("engagement_pending_resolved_total").increment(waiting.len() as u64);
            for event in waiting {
                self.record(StateWrite::DeletePending(pending_key(
                    &key,
                    &event.event_key,
                )));
                actions.push(Action::Enrich {
                    change: event.change,
                    event_key: event.event_key,
                    content_id: Some(key.clone()),
                    content: Some(row.clone()),
                    source: EventSource::Pending(Box::new((event.message, event.origin))),
                });
            }
        }
    }

    fn apply_event(
        &mut self,
        change: RowChange,
        batch_index: usize,
        message: &Message,
        origin: &Origin,
        now_ms: i64,
        actions: &mut Vec<Action>,
    ) {
        if change.op == Op::Truncate {
            self.stats.truncates += 1;
            self.pending.clear();
            self.pending_len = 0;
            self.events.clear();
            self.record(StateWrite::ClearPending);
            self.record(StateWrite::ClearEvents);
            return;
        }
        let event_key = key_text(&change.key);
        let known = self.events.get(&event_key).cloned();
        if let Some(known) = &known
            && is_stale(known.lsn, change.lsn)
        {
            self.stale(&change);
            return;
        }
        // A waiting older version of this event is superseded by this change.
        let was_pending = known
            .as_ref()
            .and_then(|k| k.content_id.clone())
            .and_then(|c| self.remove_pending(&c, &event_key));

        if change.op == Op::Delete {
            // Under the default replica identity the delete carries only the
            // key: the index says which content (and so which sink key) it was.
            let content_id = known
                .as_ref()
                .and_then(|k| k.content_id.clone())
                .or_else(|| {
                    content_ref_row(change.before.as_ref(), &self.config.content_ref_column)
                });
            self.put_event(&event_key, content_id.clone(), change.lsn, true, now_ms);
            actions.push(Action::Delete {
                change,
                event_key,
                content_id,
                source: EventSource::Batch(batch_index),
            });
            return;
        }

        let content_id = content_ref(&change, &self.config.content_ref_column);
        // The event moved to another content: its old sink key must go.
        if let Some(old) = known
            .as_ref()
            .filter(|k| !k.deleted)
            .and_then(|k| k.content_id.clone())
            && content_id.as_deref() != Some(old.as_str())
            && was_pending.is_none()
        {
            actions.push(Action::Delete {
                change: change.clone(),
                event_key: event_key.clone(),
                content_id: Some(old),
                source: EventSource::Batch(batch_index),
            });
        }
        self.put_event(&event_key, content_id.clone(), change.lsn, false, now_ms);

        let content = content_id.as_ref().and_then(|id| self.content.get(id));
        match (content_id.as_ref(), content) {
            // Known content (or known to be deleted, or no reference at all):
            // nothing to wait for.
            (Some(_), Some(entry)) => {
                let content = entry.row.clone();
                counter!("engagement_content_cache_total", "result" => if content.is_some() { "hit" } else { "deleted" }).increment(1);
                actions.push(Action::Enrich {
                    change,
                    event_key,
                    content_id,
                    content,
                    source: EventSource::Batch(batch_index),
                });
            }
            (None, _) => actions.push(Action::Enrich {
                change,
                event_key,
                content_id,
                content: None,
                source: EventSource::Batch(batch_index),
            }),
            (Some(id), None) => {
                counter!("engagement_content_cache_total", "result" => "miss").increment(1);
                let deadline_ms = was_pending
                    .map(|p| p.deadline_ms)
                    .unwrap_or(now_ms.saturating_add(self.config.pending_ttl_ms));
                let id = id.clone();
                let event = PendingEvent {
                    change,
                    event_key: event_key.clone(),
                    message: message.clone(),
                    origin: origin.clone(),
                    deadline_ms,
                };
                self.record(StateWrite::PutPending(
                    pending_key(&id, &event_key),
                    Box::new(event.clone()),
                ));
                self.pending.entry(id).or_default().push(event);
                self.pending_len += 1;
                self.stats.pending_parked += 1;
            }
        }
    }

    fn stale(&mut self, change: &RowChange) {
        self.stats.stale_ignored += 1;
        counter!("engagement_changes_ignored_total", "reason" => "stale").increment(1);
        tracing::debug!(table = %change.table, lsn = ?change.lsn, "ignoring a change older than the one applied");
    }

    fn put_event(
        &mut self,
        key: &str,
        content_id: Option<String>,
        lsn: Option<u64>,
        deleted: bool,
        now_ms: i64,
    ) {
        let entry = EventEntry {
            content_id,
            lsn,
            deleted,
            seen_ms: now_ms,
        };
        self.record(StateWrite::PutEvent(key.to_owned(), entry.clone()));
        self.events.insert(key.to_owned(), entry);
    }

    fn remove_pending(&mut self, content_id: &str, event_key: &str) -> Option<PendingEvent> {
        let waiting = self.pending.get_mut(content_id)?;
        let at = waiting.iter().position(|p| p.event_key == event_key)?;
        let event = waiting.remove(at);
        if waiting.is_empty() {
            self.pending.remove(content_id);
        }
        self.pending_len -= 1;
        self.record(StateWrite::DeletePending(pending_key(
            content_id, event_key,
        )));
        Some(event)
    }

    /// Gives up on events whose deadline passed (all of them with
    /// `everything`): they are enriched without content. Also prunes the
    /// event index now and then.
    pub fn expire(&mut self, now_ms: i64, everything: bool, actions: &mut Vec<Action>) {
        let due = self.waiting_by_deadline(|deadline| everything || deadline <= now_ms);
        self.emit_missing(due, actions);
        self.prune_events(now_ms);
    }

    /// Emits the `n` events that have waited longest as content missing, so
    /// a replay with a full buffer can go on (it has no wall clock to wait on).
    pub fn evict_oldest(&mut self, n: usize, actions: &mut Vec<Action>) {
        let mut due = self.waiting_by_deadline(|_| true);
        due.truncate(n);
        self.emit_missing(due, actions);
    }

    /// (content key, event key) of waiting events whose deadline matches,
    /// oldest deadline first.
    fn waiting_by_deadline(&self, take: impl Fn(i64) -> bool) -> Vec<(String, String)> {
        let mut due: Vec<(i64, String, String)> = self
            .pending
            .iter()
            .flat_map(|(content_id, waiting)| {
                waiting
                    .iter()
                    .filter(|e| take(e.deadline_ms))
                    .map(move |e| (e.deadline_ms, content_id.clone(), e.event_key.clone()))
            })
            .collect();
        due.sort();
        due.into_iter().map(|(_, c, e)| (c, e)).collect()
    }

    fn emit_missing(&mut self, due: Vec<(String, String)>, actions: &mut Vec<Action>) {
        for (content_id, event_key) in due {
            let Some(event) = self.remove_pending(&content_id, &event_key) else {
                continue;
            };
            counter!("engagement_pending_expired_total").increment(1);
            self.stats.pending_expired += 1;
            actions.push(Action::Enrich {
                change: event.change,
                event_key: event.event_key,
                content_id: Some(content_id),
                content: None,
                source: EventSource::Pending(Box::new((event.message, event.origin))),
            });
        }
    }

    fn prune_events(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.last_prune_ms) < 60_000 {
            return;
        }
        self.last_prune_ms = now_ms;
        let horizon = now_ms.saturating_sub(self.config.event_index_retention_ms);
        let old: Vec<String> = self
            .events
            .iter()
            .filter(|(_, e)| e.seen_ms < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            self.events.remove(&key);
            self.record(StateWrite::DeleteEvent(key));
        }
    }
}

/// Whether a change at `incoming` is older than the applied `known` one.
fn is_stale(known: Option<u64>, incoming: Option<u64>) -> bool {
    matches!((known, incoming), (Some(k), Some(i)) if i < k)
}

/// A key row as text: the value of a single-column key, else JSON.
pub fn key_text(key: &[Column]) -> String {
    match key {
        [only] => value_text(&only.value),
        many => {
            let parts: Vec<String> = many
                .iter()
                .map(|c| format!("{}={}", c.name, value_text(&c.value)))
                .collect();
            parts.join(",")
        }
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) | Value::Json(s) => s.clone(),
    }
}

fn content_ref(change: &RowChange, column: &str) -> Option<String> {
    content_ref_row(change.after.as_ref().or(change.before.as_ref()), column)
}

fn content_ref_row(row: Option<&Row>, column: &str) -> Option<String> {
    row?.iter()
        .find(|c| c.name == column)
        .and_then(|c| match &c.value {
            Value::Null => None,
            other => Some(value_text(other)),
        })
}
