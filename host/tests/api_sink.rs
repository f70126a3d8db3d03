//! The HTTP sink against the API simulator over real HTTP on 127.0.0.1:
//! batches cut by events and bytes, a deterministic `Idempotency-Key` per
//! request (a retried batch is a duplicate, not a second delivery), every
//! event delivered exactly once through an outage by `write_with_retry`,
//! `Retry-After` honoured, and 4xx answers permanent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engagement_host::api_sim::{ApiSimState, FaultConfig, serve_listener};
use engagement_host::pipeline::record::{Record, RecordKind};
use engagement_host::sinks::http::{HttpSink, HttpSinkConfig};
use engagement_host::sinks::retry::{RetryPolicy, WriteAborted, write_with_retry};
use engagement_host::sinks::{RecordSink, SinkError};
use engagement_host::wasm::PluginId;
use engagement_host::wasm::bindings::{Column, Op, Value};
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A simulator on an ephemeral port, stopped when dropped.
struct Sim {
    base: String,
    http: reqwest::Client,
    _stop: DropGuard,
}

impl Sim {
    async fn start() -> Sim {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ApiSimState::new(FaultConfig::default()).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve_listener(
            listener,
            state,
            stop.clone().cancelled_owned(),
        ));
        Sim {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _stop: stop.drop_guard(),
        }
    }

    fn sink(&self, max_batch_events: usize, max_batch_bytes: usize) -> HttpSink {
        HttpSink::new(HttpSinkConfig {
            base_url: self.base.clone(),
            timeout: Duration::from_secs(5),
            max_batch_events,
            max_batch_bytes,
        })
        .unwrap()
    }

    async fn stats(&self) -> Json {
        self.http
            .get(format!("{}/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn set_faults(&self, faults: Json) {
        let answer = self
            .http
            .post(format!("{}/faults", self.base))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{faults}");
    }
}

const MIB: usize = 1024 * 1024;

fn decoder() -> Arc<PluginId> {
    Arc::new(PluginId {
        name: "debezium-decoder".into(),
        version: "0.1.0".into(),
        sha256: "5f06".into(),
    })
}

fn column(name: &str, value: Value) -> Column {
    Column {
        name: name.into(),
        value,
    }
}

/// An enriched event as the pipeline emits it; `payload_bytes` pads
/// `raw_payload` to control the record's size.
fn event(id: i64, lsn: u64, event_type: &str, payload_bytes: usize) -> Record {
    let content_id = format!("content-{}", id % 7);
    Record {
        kind: RecordKind::Upsert,
        table: "engagement_events".into(),
        event_key: id.to_string(),
        content_id: Some(content_id.clone()),
        row: vec![
            column("id", Value::Int(id)),
            column("content_id", Value::Text(content_id)),
            column("user_id", Value::Text("9a8b".into())),
            column("event_type", Value::Text(event_type.into())),
            column("duration_ms", Value::Int(45_000)),
            column("raw_payload", Value::Text("x".repeat(payload_bytes))),
            column("engagement_seconds", Value::Float(45.0)),
        ],
        op: Op::Create,
        lsn: Some(lsn),
        source_ts_ms: Some(1_795_672_191_121),
        content_missing: false,
        decoder: decoder(),
        enricher: Some(Arc::new(PluginId {
            name: "engagement-enricher".into(),
            version: "1.0.0".into(),
            sha256: "dc94".into(),
        })),
        message_index: None,
    }
}

fn events(n: i64) -> Vec<Record> {
    const TYPES: [&str; 4] = ["play", "pause", "finish", "click"];
    (0..n)
        .map(|i| event(i, 1000 + i as u64, TYPES[i as usize % 4], 20))
        .collect()
}

/// A key-only delete, as under the default replica identity.
fn delete(id: i64, lsn: u64) -> Record {
    Record {
        kind: RecordKind::Delete,
        table: "engagement_events".into(),
        event_key: id.to_string(),
        content_id: Some(format!("content-{}", id % 7)),
        row: vec![column("id", Value::Int(id))],
        op: Op::Delete,
        lsn: Some(lsn),
        source_ts_ms: None,
        content_missing: false,
        decoder: decoder(),
        enricher: None,
        message_index: None,
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn writes_batches_cut_by_event_count() {
    let sim = Sim::start().await;
    let sink = sim.sink(500, 5 * MIB);
    assert_eq!(sink.name(), "http");
    let records = events(1200);
    let report = sink.write(&records).await.unwrap();
    assert!(report.rejected.is_empty());

    let stats = sim.stats().await;
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["batches_with_idempotency_key"], 3);
    assert_eq!(stats["duplicate_batches"], 0);
    assert_eq!(stats["events"], 1200);
    assert_eq!(stats["unique_event_ids"], 1200);
    assert_eq!(
        stats["events_by_type"],
        json!({"play": 300, "pause": 300, "finish": 300, "click": 300})
    );
}

#[tokio::test]
async fn writes_batches_cut_by_size() {
    let sim = Sim::start().await;
    let limit = 8 * 1024;
    let sink = sim.sink(500, limit);
    let records: Vec<Record> = (0..100).map(|i| event(i, i as u64, "play", 500)).collect();
    let total: usize = records.iter().map(|r| r.to_json().len()).sum();
    sink.write(&records).await.unwrap();

    let stats = sim.stats().await;
    let requests = stats["requests"].as_u64().unwrap();
    assert!(
        requests as usize >= total.div_ceil(limit),
        "{requests} requests for {total} bytes"
    );
    assert!(stats["largest_request_bytes"].as_u64().unwrap() <= limit as u64);
    assert_eq!(stats["events"], 100);
    assert_eq!(stats["unique_event_ids"], 100);
}

#[tokio::test]
async fn a_record_over_the_size_limit_is_rejected_not_sent() {
    let sim = Sim::start().await;
    let sink = sim.sink(500, 4096);
    let records = vec![
        event(1, 1, "play", 10),
        event(2, 2, "play", 10_000),
        event(3, 3, "click", 10),
    ];
    let report = sink.write(&records).await.unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, 1);
    assert!(
        report.rejected[0].1.contains("4096"),
        "{:?}",
        report.rejected
    );
    let stats = sim.stats().await;
    assert_eq!(stats["events"], 2);
    assert_eq!(stats["requests"], 1);
}

#[tokio::test]
async fn deletes_are_sent_as_op_d() {
    let sim = Sim::start().await;
    let sink = sim.sink(500, 5 * MIB);
    sink.write(&[event(5, 10, "play", 10), delete(5, 11)])
        .await
        .unwrap();
    let stats = sim.stats().await;
    assert_eq!(stats["events"], 2);
    assert_eq!(stats["events_by_op"], json!({"c": 1, "d": 1}));
    // The delete names the same event (content_id, id).
    assert_eq!(stats["unique_event_ids"], 1);
}

#[tokio::test]
async fn the_same_records_carry_the_same_idempotency_key() {
    let sim = Sim::start().await;
    let sink = sim.sink(100, 5 * MIB);
    let records = events(250);
    sink.write(&records).await.unwrap();
    // A retry, or the same messages redelivered: same cut, same keys.
    sink.write(&records).await.unwrap();
    let stats = sim.stats().await;
    assert_eq!(stats["requests"], 6);
    assert_eq!(stats["batches_with_idempotency_key"], 6);
    assert_eq!(stats["duplicate_batches"], 3);
    assert_eq!(stats["events"], 250);
    assert_eq!(stats["unique_event_ids"], 250);

    // A real change (a new LSN) is a new request, not a duplicate.
    let mut updated = records[..1].to_vec();
    updated[0].op = Op::Update;
    updated[0].lsn = Some(99_999);
    sink.write(&updated).await.unwrap();
    let stats = sim.stats().await;
    assert_eq!(stats["duplicate_batches"], 3);
    assert_eq!(stats["events"], 251);
}

#[tokio::test]
async fn retries_deliver_every_event_exactly_once_through_an_outage() {
    let sim = Sim::start().await;
    let sink = sim.sink(250, 5 * MIB);
    let records = events(1000);
    // An earlier attempt got the first two requests through, then broke off.
    sink.write(&records[..500]).await.unwrap();

    let outage_started = Instant::now();
    sim.set_faults(json!({"fail_for_secs": 2.0})).await;
    let cancel = CancellationToken::new();
    let report = write_with_retry(&sink, &records, &fast_policy(), &cancel)
        .await
        .unwrap();
    assert!(report.rejected.is_empty());
    assert!(outage_started.elapsed() >= Duration::from_secs(2));

    let stats = sim.stats().await;
    assert!(stats["errors_injected"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["events"], 1000);
    assert_eq!(stats["unique_event_ids"], 1000);
    // The two requests that had gone through were sent again with the
    // same keys: acknowledged, not applied twice.
    assert_eq!(stats["duplicate_batches"], 2);
    assert_eq!(stats["batches"], 6);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = Sim::start().await;
    let sink = sim.sink(500, 5 * MIB);
    let records = events(10);
    sim.set_faults(json!({"fail_next_requests": 2, "error_status": 429, "retry_after_secs": 1}))
        .await;

    match sink.write(&records).await {
        Err(SinkError::Transient {
            message,
            retry_after,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }

    // The backoff alone would wait at most 300 ms: the wait is Retry-After's.
    let started = Instant::now();
    write_with_retry(&sink, &records, &fast_policy(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let stats = sim.stats().await;
    assert_eq!(stats["errors_by_status"], json!({"429": 2}));
    assert_eq!(stats["events"], 10);
}

#[tokio::test]
async fn a_400_is_permanent_and_not_retried() {
    let sim = Sim::start().await;
    let sink = sim.sink(500, 5 * MIB);
    let records = events(3);
    sim.set_faults(json!({"fail_next_requests": 2, "error_status": 400}))
        .await;
    match sink.write(&records).await {
        Err(SinkError::Permanent(reason)) => {
            assert!(reason.contains("400"), "{reason}");
            // The body snippet says who refused and why.
            assert!(reason.contains("injected"), "{reason}");
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let aborted =
        write_with_retry(&sink, &records, &fast_policy(), &CancellationToken::new()).await;
    assert!(
        matches!(aborted, Err(WriteAborted::Permanent(_))),
        "{aborted:?}"
    );
    let stats = sim.stats().await;
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["events"], 0);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient() {
    let sim = Sim::start().await;
    sim.set_faults(json!({"latency_ms": 1000})).await;
    let slow = HttpSink::new(HttpSinkConfig {
        base_url: sim.base.clone(),
        timeout: Duration::from_millis(100),
        ..HttpSinkConfig::default()
    })
    .unwrap();
    let err = slow.write(&events(1)).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");

    // A port nobody listens on (bound, then released).
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let nowhere = HttpSink::new(HttpSinkConfig {
        base_url: format!("http://{free}"),
        ..HttpSinkConfig::default()
    })
    .unwrap();
    let err = nowhere.write(&events(1)).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    let sim = Sim::start().await;
    let sink = sim.sink(500, 5 * MIB);
    sink.write(&[]).await.unwrap();
    assert_eq!(sim.stats().await["requests"], 0);
}
