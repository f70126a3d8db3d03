//! A small JSON tree that keeps object key order.
//!
//! Rows must come out in table order, and `serde_json::Value` sorts keys unless
//! its `preserve_order` feature is on. This tree also tells a u64 beyond i64
//! from a float, so such a value travels as exact JSON text.

use std::fmt::{self, Write};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{Column, Row, Value};

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    BigUint(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// Keys in document order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value of `key` in an object (the last one, as JSON parsers agree).
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Short description for error messages, e.g. `string "abc"`.
    pub(crate) fn describe(&self) -> String {
        const MAX: usize = 40;
        let mut text = match self {
            Json::Null => return "null".into(),
            Json::Bool(b) => return format!("boolean {b}"),
            Json::Int(_) | Json::BigUint(_) => format!("integer {}", self.to_text()),
            Json::Float(_) => format!("number {}", self.to_text()),
            Json::Str(_) => format!("string {}", self.to_text()),
            Json::Array(_) => "an array".into(),
            Json::Object(_) => "an object".into(),
        };
        if text.len() > MAX {
            let mut cut = MAX;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }

    /// Compact JSON text of this value.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::BigUint(u) => {
                let _ = write!(out, "{u}");
            }
            Json::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => {
                    let _ = write!(out, "{n}");
                }
                None => out.push_str("null"),
            },
            Json::Str(s) => {
                // Serialising a &str into a String cannot fail.
                out.push_str(&serde_json::to_string(s).unwrap_or_default());
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_text(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    v.write_text(out);
                }
                out.push('}');
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Json::Int(i),
            Err(_) => Json::BigUint(v),
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(String, Json)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value()?;
            // A repeated key replaces the earlier one, as in every common parser.
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            }
        }
        Ok(Json::Object(fields))
    }
}

/// An object parsed as `T`, or what was found instead, described for the
/// error message. Lets a wrong type become a typed error naming the field
/// rather than a generic parse failure.
pub(crate) enum ObjectOr<T> {
    Object(T),
    Other(String),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectOrVisitor(std::marker::PhantomData))
    }
}

struct ObjectOrVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOrVisitor<T> {
    type Value = ObjectOr<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOr::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let other = JsonVisitor.visit_seq(seq)?;
        Ok(ObjectOr::Other(other.describe()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(ObjectOr::Other(Json::Bool(v).describe()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(ObjectOr::Other(Json::Int(v).describe()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ObjectOr::Other(JsonVisitor.visit_u64::<E>(v)?.describe()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(ObjectOr::Other(Json::Float(v).describe()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ObjectOr::Other(Json::Str(v.to_owned()).describe()))
    }
}

/// A row parsed straight into WIT columns, in document order.
pub(crate) struct RowData(pub(crate) Row);

impl<'de> Deserialize<'de> for RowData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = RowData;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RowData, A::Error> {
        let mut row: Row = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value::<ColumnValue>()?.0;
            // A repeated key replaces the earlier one: names stay unique.
            match row.iter_mut().find(|c| c.name == name) {
                Some(column) => column.value = value,
                None => row.push(Column { name, value }),
            }
        }
        Ok(RowData(row))
    }
}

/// One column value, parsed straight into the WIT value.
struct ColumnValue(Value);

impl<'de> Deserialize<'de> for ColumnValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ColumnValueVisitor)
    }
}

struct ColumnValueVisitor;

impl<'de> Visitor<'de> for ColumnValueVisitor {
    type Value = ColumnValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<ColumnValue, E> {
        Ok(ColumnValue(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<ColumnValue, E> {
        Ok(ColumnValue(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ColumnValue, E> {
        Ok(ColumnValue(Value::Boolean(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ColumnValue, E> {
        Ok(ColumnValue(Value::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ColumnValue, E> {
        Ok(ColumnValue(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Json(v.to_string()),
        }))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ColumnValue, E> {
        Ok(ColumnValue(Value::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ColumnValue, E> {
        Ok(ColumnValue(Value::Text(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<ColumnValue, E> {
        Ok(ColumnValue(Value::Text(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ColumnValue, A::Error> {
        Ok(ColumnValue(JsonVisitor.visit_seq(seq)?.into_value()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ColumnValue, A::Error> {
        Ok(ColumnValue(JsonVisitor.visit_map(map)?.into_value()))
    }
}
