//! Native builds of the default decoder and enricher behind the same stage
//! traits as the WASM plugins: the baseline of the benchmarks. The plugin
//! crates compile natively as rlibs; only the type conversion at the
//! boundary is extra, as the canonical ABI's copy is for the component.

use std::sync::Arc;

use debezium_decoder as dec;
use dec::Guest as _;
use engagement_enricher as enr;
use engagement_host::decode::{DecodeStep, StageError, describe};
use engagement_host::enrich::{EnrichRequest, EnrichStep, project};
use engagement_host::wasm::PluginId;
use engagement_host::wasm::bindings as host;
use enr::exports::engagement::pipeline::enrich::Guest as _;

fn id(name: &str) -> Arc<PluginId> {
    Arc::new(PluginId {
        name: name.into(),
        version: "native".into(),
        sha256: "0".repeat(64),
    })
}

fn value_from_dec(v: dec::Value) -> host::Value {
    match v {
        dec::Value::Null => host::Value::Null,
        dec::Value::Boolean(b) => host::Value::Boolean(b),
        dec::Value::Int(i) => host::Value::Int(i),
        dec::Value::Float(f) => host::Value::Float(f),
        dec::Value::Text(s) => host::Value::Text(s),
        dec::Value::Json(s) => host::Value::Json(s),
    }
}

fn row_from_dec(row: Vec<dec::Column>) -> host::Row {
    row.into_iter()
        .map(|c| host::Column {
            name: c.name,
            value: value_from_dec(c.value),
        })
        .collect()
}

fn error_from_dec(e: dec::DecodeError) -> host::DecodeError {
    match e {
        dec::DecodeError::Empty => host::DecodeError::Empty,
        dec::DecodeError::InvalidJson(m) => host::DecodeError::InvalidJson(m),
        dec::DecodeError::NotAnEnvelope(m) => host::DecodeError::NotAnEnvelope(m),
        dec::DecodeError::MissingField(m) => host::DecodeError::MissingField(m),
        dec::DecodeError::WrongType(f) => host::DecodeError::WrongType(host::FieldError {
            field: f.field,
            expected: f.expected,
            found: f.found,
        }),
        dec::DecodeError::UnknownOp(m) => host::DecodeError::UnknownOp(m),
        dec::DecodeError::InvalidKey(m) => host::DecodeError::InvalidKey(m),
    }
}

fn op_from_dec(op: dec::Op) -> host::Op {
    match op {
        dec::Op::Read => host::Op::Read,
        dec::Op::Create => host::Op::Create,
        dec::Op::Update => host::Op::Update,
        dec::Op::Delete => host::Op::Delete,
        dec::Op::Truncate => host::Op::Truncate,
    }
}

/// The decoder crate called natively.
pub struct NativeDecoder;

impl DecodeStep for NativeDecoder {
    fn begin_batch(&mut self) -> Arc<PluginId> {
        id("debezium-decoder")
    }

    fn decode_batch(
        &mut self,
        messages: &[host::Message],
    ) -> Vec<Result<Vec<host::RowChange>, StageError>> {
        let guest: Vec<dec::Message> = messages
            .iter()
            .map(|m| dec::Message {
                topic: m.topic.clone(),
                key: m.key.clone(),
                data: m.data.clone(),
                attributes: m.attributes.clone(),
            })
            .collect();
        dec::Component::decode_batch(guest)
            .into_iter()
            .map(|r| match r {
                Ok(changes) => Ok(changes
                    .into_iter()
                    .map(|c| host::RowChange {
                        schema: c.schema,
                        table: c.table,
                        op: op_from_dec(c.op),
                        key: row_from_dec(c.key),
                        before: c.before.map(row_from_dec),
                        after: c.after.map(row_from_dec),
                        lsn: c.lsn,
                        source_ts_ms: c.source_ts_ms,
                    })
                    .collect()),
                Err(e) => Err(describe(&error_from_dec(e))),
            })
            .collect()
    }
}

type EnrValue = enr::engagement::pipeline::types::Value;
type EnrColumn = enr::engagement::pipeline::types::Column;

fn value_to_enr(v: &host::Value) -> EnrValue {
    match v {
        host::Value::Null => EnrValue::Null,
        host::Value::Boolean(b) => EnrValue::Boolean(*b),
        host::Value::Int(i) => EnrValue::Int(*i),
        host::Value::Float(f) => EnrValue::Float(*f),
        host::Value::Text(s) => EnrValue::Text(s.clone()),
        host::Value::Json(s) => EnrValue::Json(s.clone()),
    }
}

fn row_to_enr(row: &[host::Column]) -> Vec<EnrColumn> {
    row.iter()
        .map(|c| EnrColumn {
            name: c.name.clone(),
            value: value_to_enr(&c.value),
        })
        .collect()
}

fn value_from_enr(v: EnrValue) -> host::Value {
    match v {
        EnrValue::Null => host::Value::Null,
        EnrValue::Boolean(b) => host::Value::Boolean(b),
        EnrValue::Int(i) => host::Value::Int(i),
        EnrValue::Float(f) => host::Value::Float(f),
        EnrValue::Text(s) => host::Value::Text(s),
        EnrValue::Json(s) => host::Value::Json(s),
    }
}

/// The enricher crate called natively, given the same projected rows as
/// the component (what its `info().reads` asks for).
pub struct NativeEnricher {
    reads: Option<host::ColumnSet>,
}

impl NativeEnricher {
    pub fn new() -> Self {
        let reads = enr::Component::info().reads.map(|r| host::ColumnSet {
            event: r.event,
            content: r.content,
        });
        Self { reads }
    }
}

impl EnrichStep for NativeEnricher {
    fn begin_batch(&mut self) -> Arc<PluginId> {
        id("engagement-enricher")
    }

    fn enrich_batch(&mut self, requests: &[EnrichRequest]) -> Vec<Result<host::Row, StageError>> {
        let guest = requests
            .iter()
            .map(|r| {
                let input = project(r, self.reads.as_ref());
                enr::exports::engagement::pipeline::enrich::EnrichInput {
                    event: row_to_enr(&input.event),
                    content: input.content.as_deref().map(row_to_enr),
                }
            })
            .collect();
        enr::Component::enrich_batch(guest)
            .into_iter()
            .map(|r| match r {
                Ok(row) => Ok(row
                    .into_iter()
                    .map(|c| host::Column {
                        name: c.name,
                        value: value_from_enr(c.value),
                    })
                    .collect()),
                Err(e) => Err(StageError {
                    kind: "enrich_failed",
                    reason: format!("{e:?}"),
                }),
            })
            .collect()
    }
}
