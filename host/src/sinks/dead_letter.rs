//! Dead letters: what could not be processed, with why, where it came from,
//! the plugin version involved, and the original message in the replay
//! input format, so `jq -c .message` of a dead-letter file replays it.

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use crate::decode::StageError;
use crate::source::{Message, Origin};
use crate::telemetry::events;
use crate::wasm::PluginId;

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it failed: `source`, `host`, `decode`, `enrich`.
    pub stage: &'static str,
    pub error: StageError,
    pub message: Option<Message>,
    /// The raw line, when the input was not even a message.
    pub raw: Option<String>,
    pub origin: Origin,
    pub plugin: Option<Arc<PluginId>>,
    pub at: SystemTime,
}

impl DeadLetter {
    pub fn new(
        stage: &'static str,
        error: StageError,
        message: Option<Message>,
        origin: Origin,
        plugin: Option<Arc<PluginId>>,
    ) -> Self {
        events::dead_lettered(stage, &error.reason);
        Self {
            stage,
            error,
            message,
            raw: None,
            origin,
            plugin,
            at: SystemTime::now(),
        }
    }

    /// The JSON form written to files and topics.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "at": humantime::format_rfc3339_millis(self.at).to_string(),
            "stage": self.stage,
            "error_type": self.error.kind,
            "reason": self.error.reason,
            "plugin": self.plugin.as_deref(),
            "origin": self.origin,
            "message": self.message.as_ref().map(message_json),
            "raw": self.raw,
        })
    }
}

/// A message in the replay input format.
pub fn message_json(message: &Message) -> serde_json::Value {
    let mut line = json!({
        "destination": message.topic,
        "key": message.key,
    });
    match &message.data {
        None => line["value"] = serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => line["value"] = json!(text),
            Err(_) => line["value_base64"] = json!(BASE64.encode(bytes)),
        },
    }
    if !message.attributes.is_empty() {
        let attributes: serde_json::Map<String, serde_json::Value> = message
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        line["attributes"] = serde_json::Value::Object(attributes);
    }
    line
}

/// Dead letters appended to an NDJSON file (or discarded with a count when
/// no file is configured; they are always logged and counted).
pub struct DeadLetterFile {
    out: Option<Box<dyn Write + Send>>,
    pub written: u64,
}

impl DeadLetterFile {
    pub fn new(out: Option<Box<dyn Write + Send>>) -> Self {
        Self { out, written: 0 }
    }

    pub fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        for letter in letters {
            if let Some(out) = self.out.as_mut() {
                serde_json::to_writer(&mut *out, &letter.to_json())?;
                out.write_all(b"\n")?;
            }
            self.written += 1;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
