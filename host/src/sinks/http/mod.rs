//! HTTP sink: records to the third-party engagement API as
//! `POST {base_url}/events` with `{"events": [...]}`, in batches.
//!
//! Place in the flow: the pipeline hands a batch of [`Record`]s to the
//! [`RecordSink::write`] of [`HttpSink`], normally through
//! [`crate::sinks::retry`]; the message is acked once every enabled sink
//! confirmed it.
//!
//! - [`config`]: base URL, timeout and batch limits (events and bytes).
//! - [`request`]: cuts a batch into request bodies within the limits and gives
//!   each one an `Idempotency-Key` derived from its records, so a retried or
//!   redelivered batch carries the same key and the API can drop the repeat.
//! - [`sink`]: sends the bodies in order and maps each answer to ok,
//!   transient (retry, honouring `Retry-After`) or permanent (dead letter).
//!
//! What it does not do: retry (that is [`crate::sinks::retry`]), dedupe
//! (the API does, by idempotency key), or filter records: deletes are sent
//! too, as records with `"op": "d"`, and the API decides what a delete means.
//!
//! [`Record`]: crate::pipeline::record::Record
//! [`RecordSink::write`]: crate::sinks::RecordSink::write

pub mod config;
pub mod request;
pub mod sink;

pub use config::{HttpSinkConfig, HttpSinkConfigError};
pub use sink::{HttpSink, HttpSinkError};
