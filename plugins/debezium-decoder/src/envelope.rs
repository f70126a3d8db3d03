//! The Debezium change envelope: `{before, after, source, op, ...}`, bare
//! (schemas off) or wrapped as `{"schema": .., "payload": ..}` (schemas on).

use serde::Deserialize;

use crate::json::{Json, ObjectOr, RowData};
use crate::{Column, DecodeError, FieldError, Message, Op, Row, RowChange, Value};

/// The top level of a record value. Unknown fields (`schema`, `transaction`,
/// `ts_ms`, ...) are skipped without being built, which keeps the large
/// Connect schema of schemas-on messages cheap; rows are parsed straight into
/// the output type, with no intermediate tree.
#[derive(Deserialize)]
struct TopLevel {
    #[serde(default)]
    before: Option<ObjectOr<RowData>>,
    #[serde(default)]
    after: Option<ObjectOr<RowData>>,
    #[serde(default)]
    op: Option<Json>,
    #[serde(default)]
    source: Option<ObjectOr<Source>>,
    /// Present when the converter had `schemas.enable=true`.
    #[serde(default)]
    payload: Option<ObjectOr<Box<TopLevel>>>,
}

/// The fields of `source` this decoder reads; the rest is skipped.
#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    table: Option<Json>,
    #[serde(default)]
    schema: Option<Json>,
    #[serde(default)]
    lsn: Option<Json>,
    #[serde(default)]
    ts_ms: Option<Json>,
}

/// Decodes one message. A tombstone (no value, or JSON `null`) is no change.
pub(crate) fn decode(message: &Message) -> Result<Vec<RowChange>, DecodeError> {
    let Some(data) = message.data.as_deref() else {
        return Ok(Vec::new());
    };
    let Some(envelope) = parse_envelope(data)? else {
        return Ok(Vec::new());
    };

    let op = parse_op(envelope.op.as_ref())?;
    let source = match envelope.source {
        None => None,
        Some(ObjectOr::Object(source)) => Some(source),
        Some(ObjectOr::Other(found)) => return Err(wrong_type_found("source", "an object", found)),
    };
    let (schema, table) = source_table(source.as_ref(), &message.topic)?;
    let lsn = source_u64(source.as_ref().and_then(|s| s.lsn.as_ref()), "lsn")?;
    let source_ts_ms = source_i64(source.as_ref().and_then(|s| s.ts_ms.as_ref()), "ts_ms")?;
    let before = optional_row(envelope.before, "before")?;
    let after = optional_row(envelope.after, "after")?;

    match op {
        Op::Read | Op::Create | Op::Update if after.is_none() => {
            return Err(DecodeError::MissingField("after".into()));
        }
        Op::Delete if before.is_none() && message.key.is_none() => {
            return Err(DecodeError::MissingField("before (or a record key)".into()));
        }
        _ => {}
    }

    let key = match op {
        Op::Truncate => Vec::new(),
        _ => match message.key.as_deref() {
            Some(text) => parse_key(text)?,
            // No record key (e.g. published without an ordering key): the
            // tables this pipeline reads are keyed by `id`.
            None => key_from_row(after.as_ref().or(before.as_ref()))?,
        },
    };

    Ok(vec![RowChange {
        schema,
        table,
        op,
        key,
        before,
        after,
        lsn,
        source_ts_ms,
    }])
}

/// Parses the record value. `Ok(None)` is a tombstone.
fn parse_envelope(data: &[u8]) -> Result<Option<TopLevel>, DecodeError> {
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None if data.is_empty() => return Err(DecodeError::Empty),
        None => return Err(DecodeError::InvalidJson("only white space".into())),
        Some(b'{') => {}
        Some(_) => {
            // Not an object: say what it is, if it is JSON at all.
            let value: Json = serde_json::from_slice(data).map_err(invalid_json)?;
            return match value {
                Json::Null => Ok(None),
                other => Err(DecodeError::NotAnEnvelope(format!(
                    "expected a JSON object, found {}",
                    other.describe()
                ))),
            };
        }
    }

    let top: TopLevel = serde_json::from_slice(data).map_err(invalid_json)?;
    if top.op.is_some() {
        return Ok(Some(top));
    }
    match top.payload {
        // Schemas on: the envelope is the payload.
        Some(ObjectOr::Object(payload)) => Ok(Some(*payload)),
        Some(ObjectOr::Other(found)) => Err(wrong_type_found("payload", "an object", found)),
        // `{"schema": .., "payload": null}` is a schemas-on tombstone.
        None if top.before.is_none() && top.after.is_none() && top.source.is_none() => Ok(None),
        None => Ok(Some(top)),
    }
}

fn invalid_json(err: serde_json::Error) -> DecodeError {
    DecodeError::InvalidJson(err.to_string())
}

fn parse_op(op: Option<&Json>) -> Result<Op, DecodeError> {
    match op {
        None => Err(DecodeError::MissingField("op".into())),
        Some(Json::Str(code)) => match code.as_str() {
            "r" => Ok(Op::Read),
            "c" => Ok(Op::Create),
            "u" => Ok(Op::Update),
            "d" => Ok(Op::Delete),
            "t" => Ok(Op::Truncate),
            other => Err(DecodeError::UnknownOp(other.chars().take(40).collect())),
        },
        Some(other) => Err(wrong_type("op", "a string", other)),
    }
}

fn wrong_type(field: &str, expected: &str, found: &Json) -> DecodeError {
    wrong_type_found(field, expected, found.describe())
}

fn wrong_type_found(field: &str, expected: &str, found: String) -> DecodeError {
    DecodeError::WrongType(FieldError {
        field: field.into(),
        expected: expected.into(),
        found,
    })
}

/// Schema and table from `source`, or from the topic `<prefix>.<schema>.<table>`.
fn source_table(source: Option<&Source>, topic: &str) -> Result<(String, String), DecodeError> {
    let text = |value: Option<&Json>, name: &str| -> Result<Option<String>, DecodeError> {
        match value {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(&format!("source.{name}"), "a string", other)),
        }
    };
    let mut parts = topic.rsplitn(3, '.');
    let topic_table = parts.next().filter(|t| !t.is_empty());
    let topic_schema = parts.next();
    let table = match text(source.and_then(|s| s.table.as_ref()), "table")? {
        Some(table) => table,
        None => topic_table
            .map(str::to_owned)
            .ok_or_else(|| DecodeError::MissingField("source.table".into()))?,
    };
    let schema = match text(source.and_then(|s| s.schema.as_ref()), "schema")? {
        Some(schema) => schema,
        None => topic_schema.unwrap_or_default().to_owned(),
    };
    Ok((schema, table))
}

fn source_u64(value: Option<&Json>, name: &str) -> Result<Option<u64>, DecodeError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Int(i)) if *i >= 0 => Ok(Some(*i as u64)),
        Some(Json::BigUint(u)) => Ok(Some(*u)),
        Some(other) => Err(wrong_type(
            &format!("source.{name}"),
            "a non-negative integer",
            other,
        )),
    }
}

fn source_i64(value: Option<&Json>, name: &str) -> Result<Option<i64>, DecodeError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Int(i)) => Ok(Some(*i)),
        Some(other) => Err(wrong_type(&format!("source.{name}"), "an integer", other)),
    }
}

fn optional_row(value: Option<ObjectOr<RowData>>, field: &str) -> Result<Option<Row>, DecodeError> {
    match value {
        None => Ok(None),
        Some(ObjectOr::Object(row)) => Ok(Some(row.0)),
        Some(ObjectOr::Other(found)) => Err(wrong_type_found(field, "an object", found)),
    }
}

/// The record key: `{"id": ..}` or, with schemas on, `{"schema": .., "payload": {"id": ..}}`.
fn parse_key(text: &str) -> Result<Row, DecodeError> {
    let key: Json = serde_json::from_str(text)
        .map_err(|err| DecodeError::InvalidKey(format!("not JSON: {err}")))?;
    let key = match (key.get("schema"), key.get("payload")) {
        (Some(_), Some(payload)) => payload.clone(),
        _ => key,
    };
    match key {
        Json::Object(fields) => Ok(fields
            .into_iter()
            .map(|(name, value)| Column {
                name,
                value: value.into_value(),
            })
            .collect()),
        other => Err(DecodeError::InvalidKey(format!(
            "expected a JSON object, found {}",
            other.describe()
        ))),
    }
}

fn key_from_row(row: Option<&Row>) -> Result<Row, DecodeError> {
    row.and_then(|row| row.iter().find(|c| c.name == "id"))
        .map(|id| vec![id.clone()])
        .ok_or_else(|| DecodeError::MissingField("record key (and no `id` column)".into()))
}

impl Json {
    /// The WIT value of this JSON: scalars as themselves, anything else (and
    /// integers beyond i64) as exact JSON text.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Boolean(b),
            Json::Int(i) => Value::Int(i),
            Json::Float(f) => Value::Float(f),
            Json::Str(s) => Value::Text(s),
            other @ (Json::BigUint(_) | Json::Array(_) | Json::Object(_)) => {
                Value::Json(other.to_text())
            }
        }
    }
}
