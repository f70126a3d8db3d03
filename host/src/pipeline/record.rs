//! What the pipeline emits: one [`Record`] per event version or delete,
//! with the plugin versions that produced it. Its JSON form is what the
//! sinks write (Redis value, BigQuery row, API event, replay output line).

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::wasm::PluginId;
use crate::wasm::bindings::{Op, Row, Value};

/// An insert/update of an enriched event, or the delete of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    Upsert,
    Delete,
}

/// One output of the pipeline.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: RecordKind,
    /// Source table of the event.
    pub table: String,
    /// The event's key as text (`id`).
    pub event_key: String,
    /// The content it belongs to: part of its sink key.
    pub content_id: Option<String>,
    /// Upsert: the event's columns then the enricher's fields. Delete: the
    /// event's key columns.
    pub row: Row,
    pub op: Op,
    pub lsn: Option<u64>,
    pub source_ts_ms: Option<i64>,
    /// The content was not known within the pending TTL (or never will be).
    pub content_missing: bool,
    pub decoder: Arc<PluginId>,
    /// `None` for deletes: no rule ran.
    pub enricher: Option<Arc<PluginId>>,
    /// The message of the current batch this record answers; `None` for an
    /// event released from the pending buffer.
    pub message_index: Option<usize>,
}

impl Record {
    /// The value of a column of `row`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.row.iter().find(|c| c.name == name).map(|c| &c.value)
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        // Serialising into a String cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Debezium's letter for an op.
pub fn op_code(op: Op) -> &'static str {
    match op {
        Op::Read => "r",
        Op::Create => "c",
        Op::Update => "u",
        Op::Delete => "d",
        Op::Truncate => "t",
    }
}

/// Serialises a value as the JSON it came as.
pub struct JsonValue<'a>(pub &'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_none(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Float(_) => s.serialize_none(),
            Value::Text(t) => s.serialize_str(t),
            // Plugins may put anything in `json`; what does not parse is
            // written as a string rather than as broken JSON.
            Value::Json(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => v.serialize(s),
                Err(_) => s.serialize_str(text),
            },
        }
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for column in &self.row {
            map.serialize_entry(&column.name, &JsonValue(&column.value))?;
        }
        if self.kind == RecordKind::Delete && self.get("content_id").is_none() {
            map.serialize_entry("content_id", &self.content_id)?;
        }
        map.serialize_entry("content_missing", &self.content_missing)?;
        map.serialize_entry("op", op_code(self.op))?;
        map.serialize_entry("source_lsn", &self.lsn)?;
        map.serialize_entry("source_ts_ms", &self.source_ts_ms)?;
        map.serialize_entry("decoder_plugin", &self.decoder.label())?;
        map.serialize_entry("decoder_sha256", &self.decoder.sha256)?;
        map.serialize_entry(
            "enricher_plugin",
            &self.enricher.as_ref().map(|e| e.label()),
        )?;
        map.serialize_entry(
            "enricher_sha256",
            &self.enricher.as_ref().map(|e| &e.sha256),
        )?;
        map.end()
    }
}
