//! Where records and dead letters go.
//!
//! Every sink implements [`RecordSink`]: write one batch idempotently (a
//! retried or redelivered batch must not duplicate anything), and say which
//! records it refused for good. [`retry`] wraps a write in exponential backoff
//! with jitter for transient failures. The pipeline acknowledges a message
//! only after every enabled sink confirmed the records it produced.

pub mod bigquery;
pub mod dead_letter;
pub mod http;
pub mod ndjson;
pub mod redis;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use crate::pipeline::record::Record;
use crate::wasm::bindings::FieldSpec;

/// A failed batch write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (connection refused, timeout, 5xx, 429, ...), after
    /// `retry_after` when the service said so.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (bad credentials, missing table, 4xx): the
    /// batch's records go to the dead letters with this reason.
    #[error("{0}")]
    Permanent(String),
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether retrying may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, SinkError::Transient { .. })
    }
}

/// What a successful batch write refused record by record (e.g. BigQuery's
/// row-level `insertErrors`): index into the batch, and why.
#[derive(Debug, Default, Clone)]
pub struct SinkReport {
    pub rejected: Vec<(usize, String)>,
}

/// A destination of records.
#[async_trait::async_trait]
pub trait RecordSink: Send + Sync {
    /// Short, stable name for logs and metric labels (`redis`, `bigquery`, `http`).
    fn name(&self) -> &'static str;

    /// Writes one batch. Idempotent: writing the same records again (a retry,
    /// a redelivered message) leaves the destination as one write would.
    /// `Ok` means durably accepted, except the records listed as rejected.
    async fn write(&self, records: &[Record]) -> Result<SinkReport, SinkError>;

    /// Whether the sink can store records carrying these enricher output
    /// fields, asked before an enricher version goes live (at start-up and
    /// before a hot swap). `Err` says why not, and the version is refused.
    /// A sink may change its destination to make room (BigQuery adds the
    /// missing columns when the operator allowed schema updates). Default:
    /// anything is accepted (Redis and the HTTP API store JSON as it is).
    async fn accepts_fields(&self, fields: &[FieldSpec]) -> Result<(), String> {
        let _ = fields;
        Ok(())
    }
}

/// Asks every sink whether it accepts `fields`; the refusals, each prefixed
/// by its sink's name, joined.
pub async fn sinks_accept_fields(
    sinks: &[Arc<dyn RecordSink>],
    fields: &[FieldSpec],
) -> Result<(), String> {
    let mut refusals = Vec::new();
    for sink in sinks {
        if let Err(why) = sink.accepts_fields(fields).await {
            refusals.push(format!("{} sink: {why}", sink.name()));
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(refusals.join("; "))
    }
}
