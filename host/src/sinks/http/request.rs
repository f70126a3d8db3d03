//! Cuts a batch of records into API requests: bodies of at most
//! `max_batch_events` records and `max_batch_bytes` bytes, in record order,
//! each with its idempotency key. Pure: no I/O, so the cut and the keys are
//! the same every time the same records come (a retry, a redelivery).

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::pipeline::record::{Record, op_code};

/// `{"events":[` + `]}`.
const ENVELOPE_BYTES: usize = br#"{"events":[]}"#.len();

/// One request: a body and the key that identifies its content.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// `{"events":[...]}`, compact JSON.
    pub body: Bytes,
    /// `Idempotency-Key` header: see [`idempotency_key`].
    pub idempotency_key: String,
    /// Indexes (into the batch) of the records in this request.
    pub records: Vec<usize>,
}

/// A batch cut into requests, and the records no request can carry.
#[derive(Debug, Default)]
pub struct ApiRequests {
    pub requests: Vec<ApiRequest>,
    /// Index into the batch and why: larger than `max_batch_bytes` alone,
    /// or not serialisable. These go to the dead letters; they are never
    /// sent.
    pub rejected: Vec<(usize, String)>,
}

/// Cuts `records` into requests within both limits, keeping their order
/// (an update and a later delete of one event must arrive in that order).
pub fn build_requests(records: &[Record], max_events: usize, max_bytes: usize) -> ApiRequests {
    let max_events = max_events.max(1);
    let mut out = ApiRequests::default();
    let mut current: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut current_bytes = ENVELOPE_BYTES;
    for (index, record) in records.iter().enumerate() {
        let json = match serde_json::to_vec(record) {
            Ok(json) => json,
            Err(err) => {
                out.rejected
                    .push((index, format!("record cannot be serialised: {err}")));
                continue;
            }
        };
        if ENVELOPE_BYTES + json.len() > max_bytes {
            out.rejected.push((
                index,
                format!(
                    "record is {} bytes, over the API request limit of {max_bytes} bytes",
                    json.len()
                ),
            ));
            continue;
        }
        // One comma before every record but the first.
        let added = json.len() + usize::from(!current.is_empty());
        if !current.is_empty() && (current.len() >= max_events || current_bytes + added > max_bytes)
        {
            out.requests
                .push(finish(records, std::mem::take(&mut current)));
            current_bytes = ENVELOPE_BYTES;
        }
        current_bytes += json.len() + usize::from(!current.is_empty());
        current.push((index, json));
    }
    if !current.is_empty() {
        out.requests.push(finish(records, current));
    }
    out
}

fn finish(records: &[Record], parts: Vec<(usize, Vec<u8>)>) -> ApiRequest {
    let size = ENVELOPE_BYTES + parts.iter().map(|(_, j)| j.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(br#"{"events":["#);
    for (n, (_, json)) in parts.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json);
    }
    body.extend_from_slice(b"]}");
    let indexes: Vec<usize> = parts.iter().map(|(i, _)| *i).collect();
    ApiRequest {
        body: Bytes::from(body),
        idempotency_key: idempotency_key(indexes.iter().map(|&i| &records[i])),
        records: indexes,
    }
}

/// sha256 (hex) over each record's identity: table, event key, op and LSN,
/// in order. Deterministic, so a retry of the same records carries the same
/// key; a real change (a new LSN, an update after a create) makes a new one.
///
/// The key names a request, not an event: a redelivered message is
/// deduplicated by the API when its records are cut into the same requests
/// (the same batch). Each record also carries `source_lsn`, for an API that
/// deduplicates per event.
pub fn idempotency_key<'a>(records: impl IntoIterator<Item = &'a Record>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"engagement-host/http/v1");
    for record in records {
        // Length prefixes so that ("ab","c") and ("a","bc") hash apart.
        for field in [record.table.as_bytes(), record.event_key.as_bytes()] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        hasher.update(op_code(record.op).as_bytes());
        match record.lsn {
            Some(lsn) => {
                hasher.update([1]);
                hasher.update(lsn.to_le_bytes());
            }
            None => hasher.update([0]),
        }
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pipeline::record::RecordKind;
    use crate::wasm::PluginId;
    use crate::wasm::bindings::{Column, Op, Value};

    fn record(id: i64, lsn: u64, padding: usize) -> Record {
        Record {
            kind: RecordKind::Upsert,
            table: "engagement_events".into(),
            event_key: id.to_string(),
            content_id: Some("c1".into()),
            row: vec![
                Column {
                    name: "id".into(),
                    value: Value::Int(id),
                },
                Column {
                    name: "raw_payload".into(),
                    value: Value::Text("x".repeat(padding)),
                },
            ],
            op: Op::Create,
            lsn: Some(lsn),
            source_ts_ms: None,
            content_missing: false,
            decoder: Arc::new(PluginId {
                name: "d".into(),
                version: "1".into(),
                sha256: "00".into(),
            }),
            enricher: None,
            message_index: None,
        }
    }

    #[test]
    fn cuts_by_events_and_bytes_in_order() {
        let records: Vec<Record> = (0..10).map(|i| record(i, 100 + i as u64, 10)).collect();
        let by_events = build_requests(&records, 4, 1 << 20);
        let sizes: Vec<usize> = by_events.requests.iter().map(|r| r.records.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);

        let one = serde_json::to_vec(&records[0]).unwrap().len();
        let limit = ENVELOPE_BYTES + 3 * one + 2;
        let by_bytes = build_requests(&records, 100, limit);
        for request in &by_bytes.requests {
            assert!(request.body.len() <= limit);
            let parsed: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            assert_eq!(
                parsed["events"].as_array().unwrap().len(),
                request.records.len()
            );
        }
        let order: Vec<usize> = by_bytes
            .requests
            .iter()
            .flat_map(|r| r.records.clone())
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert_eq!(by_bytes.requests[0].records.len(), 3);
    }

    #[test]
    fn an_oversized_record_is_rejected_alone() {
        let records = vec![record(1, 1, 10), record(2, 2, 5000), record(3, 3, 10)];
        let cut = build_requests(&records, 100, 2000);
        assert_eq!(cut.rejected.len(), 1);
        assert_eq!(cut.rejected[0].0, 1);
        assert_eq!(cut.requests.len(), 1);
        assert_eq!(cut.requests[0].records, [0, 2]);
    }

    #[test]
    fn keys_depend_on_identity_only() {
        let a = vec![record(1, 10, 1), record(2, 11, 1)];
        let same_identity = vec![record(1, 10, 50), record(2, 11, 50)];
        let newer = vec![record(1, 10, 1), record(2, 12, 1)];
        let key = |r: &[Record]| {
            build_requests(r, 100, 1 << 20).requests[0]
                .idempotency_key
                .clone()
        };
        assert_eq!(key(&a), key(&a));
        assert_eq!(key(&a), key(&same_identity));
        assert_ne!(key(&a), key(&newer));
        assert_eq!(key(&a).len(), 64);
    }
}
