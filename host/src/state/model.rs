//! What the state keeps, as stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::source::Origin;
use crate::wasm::bindings::{Message, Row, RowChange};

/// The latest known version of a content row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContentEntry {
    /// LSN of that version; an older change never overwrites it.
    pub lsn: Option<u64>,
    /// The row, or `None` once deleted (kept so a redelivered older insert
    /// cannot bring it back).
    pub row: Option<Arc<Row>>,
}

/// An engagement event waiting for its content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingEvent {
    pub change: RowChange,
    /// Key of the event, as text.
    pub event_key: String,
    /// The message it came in, for the dead letters should enrichment fail.
    pub message: Message,
    pub origin: Origin,
    /// When it is given up on and emitted as `content_missing` (ms, clock of
    /// the pipeline that put it here).
    pub deadline_ms: i64,
}

/// What is known of an engagement event: where its sink key points, and the
/// LSN of its last change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventEntry {
    pub content_id: Option<String>,
    pub lsn: Option<u64>,
    pub deleted: bool,
    /// Clock of the last change (ms), for pruning.
    pub seen_ms: i64,
}

/// One write to the state store.
#[derive(Debug, Clone)]
pub enum StateWrite {
    PutContent(String, ContentEntry),
    ClearContent,
    PutPending(String, Box<PendingEvent>),
    DeletePending(String),
    ClearPending,
    PutEvent(String, EventEntry),
    DeleteEvent(String),
    ClearEvents,
}

/// The writes of one batch, applied to the store in one transaction once
/// the batch's outputs are safely written.
#[derive(Debug, Clone, Default)]
pub struct StateDelta {
    pub writes: Vec<StateWrite>,
}

impl StateDelta {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn append(&mut self, mut other: StateDelta) {
        self.writes.append(&mut other.writes);
    }
}

/// Key of a pending event in the store: content id, NUL, event key.
pub fn pending_key(content_id: &str, event_key: &str) -> String {
    format!("{content_id}\u{0}{event_key}")
}
