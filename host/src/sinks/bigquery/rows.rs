//! Records to `insertAll` rows, and rows to requests: pure functions, no
//! I/O (the requests are sent by `service.rs`).
//!
//! A row is the record's JSON (the table's columns, see
//! `bigquery/enriched_events_schema.json`) with three changes:
//!
//! - `op` is `d` for every delete record. The pipeline also emits a delete
//!   when an event moves to another content, with the update's op (`u`);
//!   in a change log the row must say it removes the event from its old
//!   content, and the view of current versions keys on that.
//! - JSON objects and arrays (`raw_payload` when a plugin hands it over as
//!   JSON) become JSON text: the columns are STRING, and BigQuery refuses
//!   an object for a STRING column.
//! - `ingested_at`: when the batch was sent (RFC 3339, UTC).
//!
//! Its `insertId` is a hash of (source table, event key, op, LSN): the same
//! change sent twice (a retry, a redelivered message) has the same id, so
//! BigQuery drops the copy (best effort, within about a minute); an update
//! has a new LSN, so a new id and a new row.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::pipeline::record::{Record, RecordKind, op_code};

/// Request flags before the rows. `skipInvalidRows`: a row BigQuery refuses
/// (a mistyped value) comes back in `insertErrors` and the others are
/// written, instead of the whole request failing. `ignoreUnknownValues`: a
/// field the table lacks (a new enricher rule's output, before someone adds
/// the column) is dropped instead of refusing the row; start-up checks that
/// the table has every column of the sink's own schema.
const BODY_HEAD: &[u8] = br#"{"skipInvalidRows":true,"ignoreUnknownValues":true,"rows":["#;
const BODY_TAIL: &[u8] = b"]}";

/// The `op` column of a record.
pub fn row_op(record: &Record) -> &'static str {
    match record.kind {
        RecordKind::Delete => "d",
        RecordKind::Upsert => op_code(record.op),
    }
}

/// The deterministic `insertId` of a record: sha256 (hex) of the source
/// table, event key, op and LSN. Without an LSN (not from PostgreSQL's
/// log) the source timestamp stands in, so two such changes do not collide.
pub fn insert_id(record: &Record) -> String {
    let mut hash = Sha256::new();
    // Unit separators: no field can run into the next.
    for part in [
        record.table.as_str(),
        "\x1f",
        record.event_key.as_str(),
        "\x1f",
        row_op(record),
        "\x1f",
    ] {
        hash.update(part.as_bytes());
    }
    match (record.lsn, record.source_ts_ms) {
        (Some(lsn), _) => hash.update(lsn.to_string().as_bytes()),
        (None, Some(ts)) => hash.update(format!("ts:{ts}").as_bytes()),
        (None, None) => hash.update(b"-"),
    }
    hex::encode(hash.finalize())
}

/// One `insertAll` row (`{"insertId":..,"json":{..}}`) as JSON bytes.
pub fn encode_row(record: &Record, ingested_at: &str) -> Result<Vec<u8>, serde_json::Error> {
    let mut columns = match serde_json::to_value(record)? {
        Value::Object(map) => map,
        // Record serialises as a map; anything else is a bug upstream, and
        // this row is refused rather than the batch.
        _ => {
            return Err(<serde_json::Error as serde::ser::Error>::custom(
                "record did not serialise to a JSON object",
            ));
        }
    };
    for value in columns.values_mut() {
        if value.is_object() || value.is_array() {
            *value = Value::String(value.to_string());
        }
    }
    columns.insert("op".into(), Value::String(row_op(record).into()));
    columns.insert("ingested_at".into(), Value::String(ingested_at.into()));
    let mut row = Map::new();
    row.insert("insertId".into(), Value::String(insert_id(record)));
    row.insert("json".into(), Value::Object(columns));
    serde_json::to_vec(&Value::Object(row))
}

/// One `insertAll` request: the JSON body (uncompressed) and, for each row
/// in it, its index in the batch.
#[derive(Debug)]
pub struct InsertRequest {
    pub body: Vec<u8>,
    pub indexes: Vec<usize>,
}

/// A batch cut into requests, and the records refused before sending.
#[derive(Debug, Default)]
pub struct InsertPlan {
    pub requests: Vec<InsertRequest>,
    /// (index in the batch, why): too large for one request, or not
    /// serialisable.
    pub rejected: Vec<(usize, String)>,
}

/// Cuts `records` into requests of at most `max_rows` rows and `max_bytes`
/// bytes of JSON each, in batch order.
pub fn plan(
    records: &[Record],
    ingested_at: &str,
    max_rows: usize,
    max_bytes: usize,
) -> InsertPlan {
    let mut plan = InsertPlan::default();
    let mut current = InsertRequest {
        body: BODY_HEAD.to_vec(),
        indexes: Vec::new(),
    };
    let max_rows = max_rows.max(1);
    for (index, record) in records.iter().enumerate() {
        let row = match encode_row(record, ingested_at) {
            Ok(row) => row,
            Err(err) => {
                plan.rejected
                    .push((index, format!("cannot serialise the row: {err}")));
                continue;
            }
        };
        let alone = BODY_HEAD.len() + row.len() + BODY_TAIL.len();
        if alone > max_bytes {
            plan.rejected.push((
                index,
                format!(
                    "row of {alone} bytes exceeds the {max_bytes}-byte insertAll request limit"
                ),
            ));
            continue;
        }
        // +1 for the comma before it.
        let with_row = current.body.len() + 1 + row.len() + BODY_TAIL.len();
        if !current.indexes.is_empty()
            && (current.indexes.len() >= max_rows || with_row > max_bytes)
        {
            plan.requests.push(finish(std::mem::replace(
                &mut current,
                InsertRequest {
                    body: BODY_HEAD.to_vec(),
                    indexes: Vec::new(),
                },
            )));
        }
        if !current.indexes.is_empty() {
            current.body.push(b',');
        }
        current.body.extend_from_slice(&row);
        current.indexes.push(index);
    }
    if !current.indexes.is_empty() {
        plan.requests.push(finish(current));
    }
    plan
}

fn finish(mut request: InsertRequest) -> InsertRequest {
    request.body.extend_from_slice(BODY_TAIL);
    request
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::wasm::PluginId;
    use crate::wasm::bindings::{Column, Op, Value as V};

    fn plugin(name: &str) -> Arc<PluginId> {
        Arc::new(PluginId {
            name: name.into(),
            version: "1.0.0".into(),
            sha256: "ab".repeat(32),
        })
    }

    fn upsert(id: i64, lsn: u64, payload_len: usize) -> Record {
        let col = |name: &str, value: V| Column {
            name: name.into(),
            value,
        };
        Record {
            kind: RecordKind::Upsert,
            table: "public.engagement_events".into(),
            event_key: id.to_string(),
            content_id: Some("c1".into()),
            row: vec![
                col("id", V::Int(id)),
                col("content_id", V::Text("c1".into())),
                col(
                    "raw_payload",
                    V::Json(r#"{"session":"s-1","n":[1,2]}"#.into()),
                ),
                col("device", V::Text("x".repeat(payload_len))),
                col("engagement_seconds", V::Float(45.0)),
            ],
            op: Op::Create,
            lsn: Some(lsn),
            source_ts_ms: Some(1_700_000_000_000),
            content_missing: false,
            decoder: plugin("debezium-decoder"),
            enricher: Some(plugin("engagement-enricher")),
            message_index: Some(0),
        }
    }

    fn delete_of_move(id: i64, lsn: u64) -> Record {
        Record {
            kind: RecordKind::Delete,
            row: vec![Column {
                name: "id".into(),
                value: V::Int(id),
            }],
            op: Op::Update,
            enricher: None,
            ..upsert(id, lsn, 0)
        }
    }

    fn row_json(record: &Record) -> Value {
        let bytes = encode_row(record, "2024-01-02T03:04:05.000006Z").expect("encodes");
        serde_json::from_slice(&bytes).expect("valid JSON")
    }

    #[test]
    fn row_has_the_columns_op_and_ingested_at() {
        let row = row_json(&upsert(7, 100, 1));
        let json = &row["json"];
        assert_eq!(json["id"], 7);
        assert_eq!(json["op"], "c");
        assert_eq!(json["source_lsn"], 100);
        assert_eq!(json["engagement_seconds"], 45.0);
        assert_eq!(json["ingested_at"], "2024-01-02T03:04:05.000006Z");
        assert_eq!(json["enricher_plugin"], "engagement-enricher@1.0.0");
        // Objects become JSON text for the STRING column.
        let payload = json["raw_payload"].as_str().expect("text");
        assert_eq!(
            serde_json::from_str::<Value>(payload).expect("JSON text"),
            serde_json::json!({"session": "s-1", "n": [1, 2]})
        );
        assert_eq!(row["insertId"], insert_id(&upsert(7, 100, 1)));
    }

    #[test]
    fn delete_rows_say_d_and_keep_their_content() {
        let row = row_json(&delete_of_move(7, 100));
        assert_eq!(row["json"]["op"], "d");
        assert_eq!(row["json"]["content_id"], "c1");
        assert_eq!(row["json"]["enricher_plugin"], Value::Null);
    }

    #[test]
    fn insert_id_dedups_redeliveries_only() {
        let first = upsert(7, 100, 1);
        // Same change again (other payload bytes do not matter): same id.
        assert_eq!(insert_id(&first), insert_id(&upsert(7, 100, 50)));
        // An update: new LSN, new id.
        assert_ne!(insert_id(&first), insert_id(&upsert(7, 101, 1)));
        // Another event.
        assert_ne!(insert_id(&first), insert_id(&upsert(8, 100, 1)));
        // The delete written for a move shares the update's LSN and op but
        // must not be taken for a copy of the new version.
        let moved = Record {
            op: Op::Update,
            ..upsert(7, 100, 1)
        };
        assert_ne!(insert_id(&moved), insert_id(&delete_of_move(7, 100)));
        assert_eq!(insert_id(&first).len(), 64);
    }

    #[test]
    fn batches_are_cut_by_rows() {
        let records: Vec<Record> = (0..1200).map(|i| upsert(i, i as u64, 10)).collect();
        let plan = plan(&records, "now", 500, 9_000_000);
        let sizes: Vec<usize> = plan.requests.iter().map(|r| r.indexes.len()).collect();
        assert_eq!(sizes, [500, 500, 200]);
        assert!(plan.rejected.is_empty());
        let all: Vec<usize> = plan
            .requests
            .iter()
            .flat_map(|r| r.indexes.iter().copied())
            .collect();
        assert_eq!(all, (0..1200).collect::<Vec<_>>());
        for request in &plan.requests {
            let body: Value = serde_json::from_slice(&request.body).expect("valid body");
            assert_eq!(body["skipInvalidRows"], true);
            assert_eq!(
                body["rows"].as_array().map(Vec::len),
                Some(request.indexes.len())
            );
        }
    }

    #[test]
    fn batches_are_cut_by_bytes_and_oversized_rows_refused() {
        let mut records: Vec<Record> = (0..40).map(|i| upsert(i, i as u64, 1000)).collect();
        records.push(upsert(99, 99, 20_000));
        let plan = plan(&records, "now", 500, 10_000);
        assert!(plan.requests.len() >= 4, "{}", plan.requests.len());
        for request in &plan.requests {
            assert!(request.body.len() <= 10_000, "{}", request.body.len());
        }
        assert_eq!(plan.rejected.len(), 1);
        assert_eq!(plan.rejected[0].0, 40);
        let sent: usize = plan.requests.iter().map(|r| r.indexes.len()).sum();
        assert_eq!(sent, 40);
    }

    #[test]
    fn empty_batch_has_no_request() {
        assert!(plan(&[], "now", 500, 9_000_000).requests.is_empty());
    }
}
