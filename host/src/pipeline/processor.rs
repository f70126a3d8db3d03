//! The pipeline core, the same for `run` and `replay`: a batch of messages
//! in; records, dead letters and the state writes out.
//!
//! decode (plugin) -> state (join, order) -> enrich (plugin) -> records.
//! Nothing here writes to a sink or acknowledges a message: the caller
//! writes the records, then commits the [`StateDelta`], then acks, in that
//! order, so a crash anywhere replays the batch instead of losing it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::counter;

use super::record::{Record, RecordKind};
use crate::decode::{DecodeStep, StageError};
use crate::enrich::{EnrichRequest, EnrichStep};
use crate::sinks::dead_letter::DeadLetter;
use crate::source::{Origin, SourceBatch};
use crate::state::model::StateDelta;
use crate::state::{Action, EventSource, State};
use crate::wasm::PluginId;
use crate::wasm::bindings::{Message, Row};

/// What a batch produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    pub records: Vec<Record>,
    pub dead_letters: Vec<DeadLetter>,
    /// State writes to commit once the records are written.
    pub delta: StateDelta,
    /// Row changes decoded.
    pub changes: usize,
}

/// Which clock the pending TTL runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Wall time: the service.
    Wall,
    /// The newest source timestamp seen: replay, deterministic whatever the
    /// speed of the machine.
    EventTime,
}

/// The core, owning the two plugin stages and the state.
pub struct Processor {
    decoder: Box<dyn DecodeStep>,
    enricher: Box<dyn EnrichStep>,
    state: State,
    max_message_bytes: usize,
    clock: Clock,
    event_time_ms: i64,
}

/// Where an output of the batch will go, in order.
enum Slot {
    Ready(Record),
    /// Input `i` of the enrich call.
    Enrich(usize, PendingRecord),
}

struct PendingRecord {
    change_meta: Record,
    source: EventSource,
}

impl Processor {
    pub fn new(
        decoder: Box<dyn DecodeStep>,
        enricher: Box<dyn EnrichStep>,
        state: State,
        max_message_bytes: usize,
        clock: Clock,
    ) -> Self {
        Self {
            decoder,
            enricher,
            state,
            max_message_bytes,
            clock,
            event_time_ms: i64::MIN,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The pipeline's clock now (ms since the Unix epoch).
    pub fn now_ms(&self) -> i64 {
        match self.clock {
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::EventTime => self.event_time_ms.max(0),
        }
    }

    /// Processes one batch of messages.
    pub fn process(&mut self, batch: &SourceBatch) -> BatchOutput {
        let decoder_id = self.decoder.begin_batch();
        let mut out = BatchOutput::default();

        // Oversized messages never reach the plugin: they would only spend
        // its memory cap. The rest is decoded in one call.
        let mut to_decode: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, message) in batch.messages.iter().enumerate() {
            let size = message.data.as_ref().map_or(0, Vec::len);
            if size > self.max_message_bytes {
                out.dead_letters.push(DeadLetter::new(
                    "host",
                    StageError {
                        kind: "too_large",
                        reason: format!(
                            "message value is {size} bytes, over the {} byte limit (max_message_bytes)",
                            self.max_message_bytes
                        ),
                    },
                    Some(message.clone()),
                    batch.origins[i].clone(),
                    None,
                ));
            } else {
                to_decode.push(i);
            }
        }
        let decoded = if to_decode.len() == batch.len() {
            self.decoder.decode_batch(&batch.messages)
        } else {
            let subset: Vec<Message> = to_decode
                .iter()
                .map(|&i| batch.messages[i].clone())
                .collect();
            self.decoder.decode_batch(&subset)
        };

        let mut actions = Vec::new();
        for (&i, result) in to_decode.iter().zip(decoded) {
            match result {
                Ok(changes) => {
                    out.changes += changes.len();
                    for change in changes {
                        if self.clock == Clock::EventTime
                            && let Some(ts) = change.source_ts_ms
                        {
                            self.event_time_ms = self.event_time_ms.max(ts);
                        }
                        let now = self.now_ms();
                        self.state.apply(
                            change,
                            i,
                            &batch.messages[i],
                            &batch.origins[i],
                            now,
                            &mut actions,
                        );
                    }
                }
                Err(error) => out.dead_letters.push(DeadLetter::new(
                    "decode",
                    error,
                    Some(batch.messages[i].clone()),
                    batch.origins[i].clone(),
                    Some(decoder_id.clone()),
                )),
            }
        }
        counter!("engagement_messages_total").increment(batch.len() as u64);
        self.finish(actions, Some(batch), decoder_id, &mut out);
        out
    }

    /// Emits events whose wait for content is over (all with `everything`,
    /// at the end of a replay) and, at the bound, the longest-waiting ones.
    pub fn expire(&mut self, everything: bool, evict_overflow: bool) -> BatchOutput {
        let decoder_id = self.decoder.begin_batch();
        let mut actions = Vec::new();
        let now = self.now_ms();
        self.state.expire(now, everything, &mut actions);
        if evict_overflow && self.state.pending_full() {
            let over = self.state.pending_len() + 1 - self.state.config().max_pending;
            tracing::warn!(
                over,
                "pending buffer full: emitting the oldest waiting events as content missing"
            );
            self.state.evict_oldest(over, &mut actions);
        }
        let mut out = BatchOutput::default();
        self.finish(actions, None, decoder_id, &mut out);
        out
    }

    /// Enriches what the state asked for and puts the records in order.
    fn finish(
        &mut self,
        actions: Vec<Action>,
        batch: Option<&SourceBatch>,
        decoder_id: Arc<PluginId>,
        out: &mut BatchOutput,
    ) {
        let mut slots = Vec::with_capacity(actions.len());
        let mut inputs = Vec::new();
        for action in actions {
            match action {
                Action::Delete {
                    change,
                    event_key,
                    content_id,
                    source,
                } => slots.push(Slot::Ready(Record {
                    kind: RecordKind::Delete,
                    table: change.table,
                    event_key,
                    content_id,
                    row: change.key,
                    op: change.op,
                    lsn: change.lsn,
                    source_ts_ms: change.source_ts_ms,
                    content_missing: false,
                    decoder: decoder_id.clone(),
                    enricher: None,
                    message_index: batch_index(&source),
                })),
                Action::Enrich {
                    change,
                    event_key,
                    content_id,
                    content,
                    source,
                } => {
                    let meta = Record {
                        kind: RecordKind::Upsert,
                        table: change.table,
                        event_key,
                        content_id,
                        row: Vec::new(),
                        op: change.op,
                        lsn: change.lsn,
                        source_ts_ms: change.source_ts_ms,
                        content_missing: content.is_none(),
                        decoder: decoder_id.clone(),
                        enricher: None,
                        message_index: batch_index(&source),
                    };
                    inputs.push(EnrichRequest {
                        event: change.after.unwrap_or_default(),
                        content,
                    });
                    slots.push(Slot::Enrich(
                        inputs.len() - 1,
                        PendingRecord {
                            change_meta: meta,
                            source,
                        },
                    ));
                }
            }
        }

        let enricher_id = self.enricher.begin_batch();
        let mut results: Vec<Option<Result<Row, StageError>>> = self
            .enricher
            .enrich_batch(&inputs)
            .into_iter()
            .map(Some)
            .collect();
        let mut events: Vec<Option<Row>> = inputs.into_iter().map(|i| Some(i.event)).collect();

        for slot in slots {
            match slot {
                Slot::Ready(record) => out.records.push(record),
                Slot::Enrich(i, pending) => {
                    let event = events[i].take().unwrap_or_default();
                    match results.get_mut(i).and_then(Option::take) {
                        Some(Ok(fields)) => {
                            let mut record = pending.change_meta;
                            record.row = merge(event, fields);
                            record.enricher = Some(enricher_id.clone());
                            counter!("engagement_enrichment_total", "result" => "ok").increment(1);
                            out.records.push(record);
                        }
                        Some(Err(error)) => {
                            counter!("engagement_enrichment_total", "result" => "failed")
                                .increment(1);
                            let (message, origin) = original(&pending.source, batch);
                            out.dead_letters.push(DeadLetter::new(
                                "enrich",
                                error,
                                message,
                                origin,
                                Some(enricher_id.clone()),
                            ));
                        }
                        None => {
                            let (message, origin) = original(&pending.source, batch);
                            out.dead_letters.push(DeadLetter::new(
                                "enrich",
                                StageError {
                                    kind: "no_result",
                                    reason: "the enricher returned no result for this event".into(),
                                },
                                message,
                                origin,
                                Some(enricher_id.clone()),
                            ));
                        }
                    }
                }
            }
        }
        out.delta = self.state.take_delta();
    }
}

fn batch_index(source: &EventSource) -> Option<usize> {
    match source {
        EventSource::Batch(i) => Some(*i),
        EventSource::Pending(_) => None,
    }
}

fn original(source: &EventSource, batch: Option<&SourceBatch>) -> (Option<Message>, Origin) {
    match source {
        EventSource::Batch(i) => match batch {
            Some(b) => (b.messages.get(*i).cloned(), b.origins[*i].clone()),
            None => (None, unknown_origin()),
        },
        EventSource::Pending(kept) => (Some(kept.0.clone()), kept.1.clone()),
    }
}

fn unknown_origin() -> Origin {
    Origin {
        source: "unknown".into(),
        position: String::new(),
    }
}

/// The event's columns, then the rule's fields; a field named like a column
/// replaces it in place.
fn merge(mut event: Row, fields: Row) -> Row {
    for field in fields {
        match event.iter_mut().find(|c| c.name == field.name) {
            Some(existing) => existing.value = field.value,
            None => event.push(field),
        }
    }
    event
}
