//! Reads the rule inputs out of an event and its content row, and writes the
//! four fields of the engagement rule (v1) as output columns.
//!
//! Place in the flow: `Guest::enrich` calls [`Engagement::derive`] per input,
//! then [`Engagement::push_columns`]; the arithmetic is in `rules.rs`. This
//! module does no logging and never panics: a missing column or a value of the
//! wrong type gives null, as in the original pipeline.
//!
//! It is written against `crate::engagement::...` and `crate::exports::...`,
//! the modules `wit_bindgen::generate!` puts at the root of any crate that
//! generates the `enricher` world, so `enricher-v2` and `faulty-enricher`
//! include this file with `#[path]` and get the same rule on their own types.

use crate::engagement::pipeline::types::{Column, FieldError, FieldSpec, Value, ValueKind};
use crate::exports::engagement::pipeline::enrich::{ColumnSet, EnrichError, EnrichInput, Row};
use crate::rules::{self, IntTooLarge, Number};

/// The v1 output fields of one event, in `output_fields` order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Engagement {
    /// `content.content_type`, when it is text.
    pub content_type: Option<String>,
    /// `content.length_seconds`, when it is an int.
    pub length_seconds: Option<i64>,
    /// See `rules::engagement_seconds`.
    pub engagement_seconds: Option<f64>,
    /// See `rules::engagement_pct`.
    pub engagement_pct: Option<f64>,
}

impl Engagement {
    /// Applies the rule to one input.
    ///
    /// The only error is an integer column too large for a float (beyond
    /// 1.8e308) being divided, where the original raised `OverflowError`.
    pub(crate) fn derive(input: &EnrichInput) -> Result<Self, EnrichError> {
        let duration = column(&input.event, "duration_ms");
        let engagement_seconds = rules::engagement_seconds(duration.and_then(number))
            .map_err(|IntTooLarge| too_large("event.duration_ms", duration))?;

        let content = input.content.as_deref();
        let length = content.and_then(|row| column(row, "length_seconds"));
        let engagement_pct = rules::engagement_pct(engagement_seconds, length.and_then(number))
            .map_err(|IntTooLarge| too_large("content.length_seconds", length))?;

        // Copied only when the value has the declared kind. The original
        // copied whatever was there, but a non-text `content_type` or a
        // non-int `length_seconds` cannot come from the PostgreSQL columns
        // (TEXT, INTEGER) and would be rejected by the BigQuery schema.
        let content_type = match content.and_then(|row| column(row, "content_type")) {
            Some(Value::Text(text)) => Some(text.clone()),
            _ => None,
        };
        let length_seconds = match length {
            Some(Value::Int(int)) => Some(*int),
            _ => None,
        };

        Ok(Self {
            content_type,
            length_seconds,
            engagement_seconds,
            engagement_pct,
        })
    }

    /// Appends the four fields to `row`, in `output_fields` order.
    pub(crate) fn push_columns(self, row: &mut Row) {
        row.push(field(
            "content_type",
            self.content_type.map_or(Value::Null, Value::Text),
        ));
        row.push(field(
            "length_seconds",
            self.length_seconds.map_or(Value::Null, Value::Int),
        ));
        row.push(field(
            "engagement_seconds",
            float_or_null(self.engagement_seconds),
        ));
        row.push(field("engagement_pct", float_or_null(self.engagement_pct)));
    }
}

/// The columns the v1 rule reads: the host passes only these, which saves
/// copying the rest of both rows into the component for every event.
pub(crate) fn reads() -> ColumnSet {
    ColumnSet {
        event: vec!["duration_ms".to_owned()],
        content: vec!["content_type".to_owned(), "length_seconds".to_owned()],
    }
}

/// The v1 output fields, in the order `push_columns` writes them.
pub(crate) fn output_fields() -> Vec<FieldSpec> {
    vec![
        spec(
            "content_type",
            ValueKind::Text,
            "Type of the content (podcast, newsletter, video), copied from the content row; \
             null when the content is missing.",
        ),
        spec(
            "length_seconds",
            ValueKind::Int,
            "Length of the content in seconds, copied from the content row; null when unknown.",
        ),
        spec(
            "engagement_seconds",
            ValueKind::Float,
            "duration_ms / 1000 rounded to 3 decimals (Python round, half-even); \
             null when duration_ms is missing or negative.",
        ),
        spec(
            "engagement_pct",
            ValueKind::Float,
            "engagement_seconds / length_seconds * 100 rounded to 2 decimals (Python round), \
             not capped at 100; null when either is unknown or length_seconds <= 0.",
        ),
    ]
}

/// A nullable field spec.
pub(crate) fn spec(name: &str, kind: ValueKind, description: &str) -> FieldSpec {
    FieldSpec {
        name: name.to_owned(),
        kind,
        nullable: true,
        description: description.to_owned(),
    }
}

/// A named output column.
pub(crate) fn field(name: &str, value: Value) -> Column {
    Column {
        name: name.to_owned(),
        value,
    }
}

/// The value of the first column called `name`; `None` when absent (the
/// original read rows as dicts with `.get`, so absent and null both mean
/// "no value"). Linear: rows have about eight columns.
pub(crate) fn column<'row>(row: &'row [Column], name: &str) -> Option<&'row Value> {
    row.iter().find(|c| c.name == name).map(|c| &c.value)
}

/// The value as a Python number, or `None` for null, booleans (excluded by
/// the original rule although `bool` is an `int` in Python), text and JSON
/// that is not a number.
fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Int(int) => Some(Number::Int(*int)),
        Value::Float(float) => Some(Number::Float(*float)),
        // How the host passes an integer beyond 64 bits.
        Value::Json(text) => rules::parse_json_number(text),
        Value::Null | Value::Boolean(_) | Value::Text(_) => None,
    }
}

fn float_or_null(value: Option<f64>) -> Value {
    value.map_or(Value::Null, Value::Float)
}

/// The error for an int column the original could not convert to a float.
fn too_large(field: &str, value: Option<&Value>) -> EnrichError {
    let found = match value {
        Some(Value::Json(text)) => {
            let digits = text.trim().trim_start_matches('-').len();
            let head: String = text.trim().chars().take(24).collect();
            format!("integer {head}... ({digits} digits)")
        }
        other => format!("{other:?}"),
    };
    EnrichError::InvalidField(FieldError {
        field: field.to_owned(),
        expected: "a number a float can hold (below 1.8e308)".to_owned(),
        found,
    })
}
