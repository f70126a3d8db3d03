//! The Debezium change envelope: `{before, after, source, op, ...}`, bare
//! (schemas off) or wrapped as `{"schema": .., "payload": ..}` (schemas on).

use serde::Deserialize;

use crate::json::Json;
use crate::{Column, DecodeError, FieldError, Message, Op, Row, RowChange, Value};

/// The top level of a record value. Unknown fields (`schema`, `transaction`,
/// `ts_ms`, ...) are skipped without being built, which keeps the large
/// Connect schema of schemas-on messages cheap.
#[derive(Deserialize)]
struct TopLevel {
    #[serde(default)]
    before: Option<Json>,
    #[serde(default)]
    after: Option<Json>,
    #[serde(default)]
    op: Option<Json>,
    #[serde(default)]
    source: Option<Json>,
    /// Present when the converter had `schemas.enable=true`.
    #[serde(default)]
    payload: Option<Json>,
}

/// The four envelope fields, wherever they came from.
struct Envelope {
    before: Option<Json>,
    after: Option<Json>,
    op: Option<Json>,
    source: Option<Json>,
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
    let (schema, table) = source_table(envelope.source.as_ref(), &message.topic)?;
    let lsn = source_u64(envelope.source.as_ref(), "lsn")?;
    let source_ts_ms = source_i64(envelope.source.as_ref(), "ts_ms")?;
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
fn parse_envelope(data: &[u8]) -> Result<Option<Envelope>, DecodeError> {
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
    if top.op.is_none() {
        match top.payload {
            // Schemas on: the envelope is the payload.
            Some(Json::Object(fields)) => return Ok(Some(envelope_from_fields(fields))),
            // A schemas-on tombstone is `{"schema": .., "payload": null}`.
            Some(Json::Null) => return Ok(None),
            Some(other) => {
                return Err(DecodeError::WrongType(FieldError {
                    field: "payload".into(),
                    expected: "an object".into(),
                    found: other.describe(),
                }));
            }
            None => {}
        }
    }
    Ok(Some(Envelope {
        before: top.before,
        after: top.after,
        op: top.op,
        source: top.source,
    }))
}

fn envelope_from_fields(fields: Vec<(String, Json)>) -> Envelope {
    let mut envelope = Envelope {
        before: None,
        after: None,
        op: None,
        source: None,
    };
    for (name, value) in fields {
        let slot = match name.as_str() {
            "before" => &mut envelope.before,
            "after" => &mut envelope.after,
            "op" => &mut envelope.op,
            "source" => &mut envelope.source,
            _ => continue,
        };
        *slot = (value != Json::Null).then_some(value);
    }
    envelope
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
    DecodeError::WrongType(FieldError {
        field: field.into(),
        expected: expected.into(),
        found: found.describe(),
    })
}

/// Schema and table from `source`, or from the topic `<prefix>.<schema>.<table>`.
fn source_table(source: Option<&Json>, topic: &str) -> Result<(String, String), DecodeError> {
    let from_source = |name: &str| -> Result<Option<String>, DecodeError> {
        match source.and_then(|s| s.get(name)) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(&format!("source.{name}"), "a string", other)),
        }
    };
    if let Some(source) = source
        && !matches!(source, Json::Object(_))
    {
        return Err(wrong_type("source", "an object", source));
    }
    let mut parts = topic.rsplitn(3, '.');
    let topic_table = parts.next().filter(|t| !t.is_empty());
    let topic_schema = parts.next();
    let table = match from_source("table")? {
        Some(table) => table,
        None => topic_table
            .map(str::to_owned)
            .ok_or_else(|| DecodeError::MissingField("source.table".into()))?,
    };
    let schema = match from_source("schema")? {
        Some(schema) => schema,
        None => topic_schema.unwrap_or_default().to_owned(),
    };
    Ok((schema, table))
}

fn source_u64(source: Option<&Json>, name: &str) -> Result<Option<u64>, DecodeError> {
    match source.and_then(|s| s.get(name)) {
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

fn source_i64(source: Option<&Json>, name: &str) -> Result<Option<i64>, DecodeError> {
    match source.and_then(|s| s.get(name)) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Int(i)) => Ok(Some(*i)),
        Some(other) => Err(wrong_type(&format!("source.{name}"), "an integer", other)),
    }
}

fn optional_row(value: Option<Json>, field: &str) -> Result<Option<Row>, DecodeError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(fields)) => Ok(Some(row_from_fields(fields))),
        Some(other) => Err(wrong_type(field, "an object", &other)),
    }
}

fn row_from_fields(fields: Vec<(String, Json)>) -> Row {
    fields
        .into_iter()
        .map(|(name, value)| Column {
            name,
            value: to_value(value),
        })
        .collect()
}

fn to_value(json: Json) -> Value {
    match json {
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

/// The record key: `{"id": ..}` or, with schemas on, `{"schema": .., "payload": {"id": ..}}`.
fn parse_key(text: &str) -> Result<Row, DecodeError> {
    let key: Json = serde_json::from_str(text)
        .map_err(|err| DecodeError::InvalidKey(format!("not JSON: {err}")))?;
    let key = match key {
        Json::Object(ref fields)
            if fields.iter().any(|(k, _)| k == "schema") && key.get("payload").is_some() =>
        {
            key.get("payload").cloned().unwrap_or(Json::Null)
        }
        other => other,
    };
    match key {
        Json::Object(fields) => Ok(row_from_fields(fields)),
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
