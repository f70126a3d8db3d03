//! Test support shared by the enricher crates: loads `cases.ndjson`, turns
//! its JSON into the generated WIT types, and compares output columns with
//! the expected values bit for bit.
//!
//! `cases.ndjson` is written by `scripts/gen_enricher_cases.py`, whose
//! expected values come from CPython running the original rule, so CPython's
//! `round()` is the oracle. Like `fields.rs`, this file only names
//! `crate::engagement::...`/`crate::exports::...` so `enricher-v2` and
//! `faulty-enricher` include it with `#[path]`.

use crate::engagement::pipeline::types::{Column, Value};
use crate::exports::engagement::pipeline::enrich::{EnrichError, EnrichInput, Row};
use serde_json::Value as Json;

/// `include_str!` resolves against this file, so every crate that includes
/// it reads the same cases, and cargo rebuilds the tests when they change.
const CASES: &str = include_str!("../cases.ndjson");

/// The v1 fields, in the order every enricher version returns them first.
pub(crate) const V1_FIELDS: [&str; 4] = [
    "content_type",
    "length_seconds",
    "engagement_seconds",
    "engagement_pct",
];

/// One line of `cases.ndjson`.
pub(crate) struct Case {
    pub name: String,
    pub input: EnrichInput,
    /// `expected` as written by Python: field name -> JSON value.
    pub expected: serde_json::Map<String, Json>,
}

/// All cases, in file order. Panics on a malformed file: that is a broken
/// test fixture, not plugin input.
pub(crate) fn load() -> Vec<Case> {
    CASES
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let json: Json = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("cases.ndjson line {}: {e}", i + 1));
            let name = json["name"].as_str().unwrap_or_default().to_owned();
            let input = EnrichInput {
                event: to_row(&json["event"]),
                content: if json["content"].is_null() {
                    None
                } else {
                    Some(to_row(&json["content"]))
                },
            };
            let expected = json["expected"]
                .as_object()
                .cloned()
                .unwrap_or_else(|| panic!("cases.ndjson line {}: no `expected` object", i + 1));
            Case {
                name,
                input,
                expected,
            }
        })
        .collect()
}

/// A JSON object as a row, one column per key.
pub(crate) fn to_row(json: &Json) -> Row {
    json.as_object()
        .map(|object| {
            object
                .iter()
                .map(|(name, value)| Column {
                    name: name.clone(),
                    value: to_value(value),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON value as the decoder hands it over: ints that fit 64 bits as
/// `int`, other numbers as `float`, objects and arrays as JSON text.
pub(crate) fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(int), _) => Value::Int(int),
            (None, Some(float)) if n.is_f64() => Value::Float(float),
            // An integer beyond i64, as the host passes it.
            _ => Value::Json(n.to_string()),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(_) | Json::Object(_) => Value::Json(json.to_string()),
    }
}

/// Checks that `actual` starts with the v1 fields, in order, each equal to
/// the expected value (floats by bits, so 0.0 and -0.0 differ); says what
/// differs otherwise.
pub(crate) fn check(case: &Case, actual: &Result<Row, EnrichError>) -> Result<(), String> {
    let row = actual
        .as_ref()
        .map_err(|e| format!("case {}: enrich failed: {e:?}", case.name))?;
    let names: Vec<&str> = row
        .iter()
        .map(|c| c.name.as_str())
        .take(V1_FIELDS.len())
        .collect();
    if names != V1_FIELDS {
        return Err(format!(
            "case {}: fields {names:?}, want {V1_FIELDS:?} first",
            case.name
        ));
    }
    let mut diffs = Vec::new();
    for column in &row[..V1_FIELDS.len()] {
        let want = case.expected.get(&column.name).unwrap_or(&Json::Null);
        if !same(&column.value, want) {
            diffs.push(format!(
                "{}: got {}, Python gives {want}",
                column.name,
                show(&column.value)
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("case {}: {}", case.name, diffs.join("; ")))
    }
}

/// Whether `actual` is exactly the value Python wrote as `expected`.
pub(crate) fn same(actual: &Value, expected: &Json) -> bool {
    match (actual, expected) {
        (Value::Null, Json::Null) => true,
        (Value::Text(a), Json::String(e)) => a == e,
        (Value::Int(a), Json::Number(e)) => e.as_i64() == Some(*a),
        // Python writes every float with a fraction or an exponent.
        (Value::Float(a), Json::Number(e)) => {
            e.is_f64() && e.as_f64().map(f64::to_bits) == Some(a.to_bits())
        }
        _ => false,
    }
}

/// A value for a failure message; floats with their bits, which is what the
/// comparison looks at.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::Float(f) => format!("{f:?} (bits {:#018x})", f.to_bits()),
        other => format!("{other:?}"),
    }
}
