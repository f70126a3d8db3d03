//! The BigQuery sink against the real BigQuery emulator (bqemulator, see
//! `scripts/emulators/README.md`), which the test command starts:
//! `scripts/emulators/start.sh bigquery`. Its URL comes from
//! `BIGQUERY_EMULATOR_URL` (default `http://127.0.0.1:9050`); a test fails,
//! never skips, when it does not answer.
//!
//! Each test uses its own dataset (random suffix), so they run in parallel
//! on one emulator. Some tests put a small recording proxy between the sink
//! and the emulator to see the requests (rows per request, gzip) or to
//! answer with an error.
//!
//! Emulator behaviour these tests rely on (checked here): views work
//! (`CREATE VIEW` through a query job, then queried like a table);
//! `timePartitioning` / `clustering` are stored and returned as sent;
//! `skipInvalidRows` returns the bad row's index in `insertErrors` (its
//! `location`/`message` name the first column, not the bad one); a success
//! carries `insertErrors: []`; gzipped bodies are accepted. It does not
//! honour `insertId` dedup (a re-sent row is a second row), so these tests
//! assert on the view, which is right either way.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use engagement_host::pipeline::record::{Record, RecordKind};
use engagement_host::sinks::bigquery::{BigQuerySink, BigQuerySinkConfig, ViewSetup};
use engagement_host::sinks::{RecordSink, SinkError};
use engagement_host::wasm::PluginId;
use engagement_host::wasm::bindings::{Column, Op, Value};
use serde_json::{Value as Json, json};

const PROJECT: &str = "streaming-project";
const SOURCE_TABLE: &str = "public.engagement_events";

// ---------------------------------------------------------------- emulator

/// The emulator's REST base, `.../bigquery/v2`, whichever form the env has.
fn emulator_base() -> String {
    let url = std::env::var("BIGQUERY_EMULATOR_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:9050".to_owned());
    let url = url.trim_end_matches('/');
    if url.ends_with("/bigquery/v2") {
        url.to_owned()
    } else {
        format!("{url}/bigquery/v2")
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// The emulator's base URL, after checking that it answers.
async fn emulator() -> String {
    let base = emulator_base();
    let probe = http()
        .get(format!("{base}/projects/{PROJECT}/datasets"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    match probe {
        Ok(response) if response.status().is_success() => base,
        other => panic!(
            "the BigQuery emulator does not answer at {base} ({other:?}): \
             run `scripts/emulators/start.sh bigquery` (and `source .state/emulators/env`)"
        ),
    }
}

/// A dataset name no other test (or run) uses.
fn fresh_dataset(test: &str) -> String {
    format!("it_{test}_{:08x}", rand::random::<u32>())
}

fn config(base: &str, dataset: &str) -> BigQuerySinkConfig {
    BigQuerySinkConfig {
        project: PROJECT.into(),
        dataset: dataset.into(),
        base_url: Some(base.into()),
        request_timeout_secs: 10,
        ..Default::default()
    }
}

/// A sink whose dataset, table and view exist.
async fn ready_sink(base: &str, dataset: &str) -> BigQuerySink {
    BigQuerySink::connect(config(base, dataset))
        .await
        .expect("sink connects and creates its table")
}

/// Runs a query; rows as column -> value (the REST API's strings).
async fn query(base: &str, sql: &str) -> Vec<BTreeMap<String, Option<String>>> {
    let answer: Json = http()
        .post(format!("{base}/projects/{PROJECT}/queries"))
        .json(&json!({"query": sql, "useLegacySql": false}))
        .send()
        .await
        .expect("query sent")
        .json()
        .await
        .expect("query answer is JSON");
    // The emulator reports bad SQL as HTTP 200 with `errors`.
    assert!(
        answer.get("errors").is_none() && answer.get("error").is_none(),
        "query failed: {sql}\n{answer}"
    );
    let names: Vec<String> = answer["schema"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    answer["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    names
                        .iter()
                        .zip(row["f"].as_array().into_iter().flatten())
                        .map(|(name, cell)| (name.clone(), cell["v"].as_str().map(str::to_owned)))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn count(base: &str, from: &str) -> usize {
    let rows = query(base, &format!("SELECT COUNT(*) AS n FROM {from}")).await;
    rows[0]["n"]
        .as_deref()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

async fn get(base: &str, path: &str) -> Json {
    http()
        .get(format!("{base}/projects/{PROJECT}/{path}"))
        .send()
        .await
        .expect("GET sent")
        .json()
        .await
        .expect("JSON")
}

async fn drop_dataset(base: &str, dataset: &str) {
    // Best effort: the emulator is in memory and starts empty anyway.
    let _ = http()
        .delete(format!(
            "{base}/projects/{PROJECT}/datasets/{dataset}?deleteContents=true"
        ))
        .send()
        .await;
}

fn table(dataset: &str) -> String {
    format!("`{PROJECT}.{dataset}.enriched_events`")
}

fn view(dataset: &str) -> String {
    format!("`{PROJECT}.{dataset}.enriched_events_current`")
}

// ---------------------------------------------------------------- records

fn plugin(name: &str, version: &str, byte: &str) -> Arc<PluginId> {
    Arc::new(PluginId {
        name: name.into(),
        version: version.into(),
        sha256: byte.repeat(32),
    })
}

fn col(name: &str, value: Value) -> Column {
    Column {
        name: name.into(),
        value,
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// An enriched event version, as the pipeline emits it. `length`: the
/// content's length in seconds, `None` for content missing.
fn event(
    id: i64,
    content: &str,
    op: Op,
    lsn: u64,
    duration_ms: i64,
    length: Option<i64>,
) -> Record {
    let seconds = duration_ms as f64 / 1000.0;
    let (content_type, length_value, pct) = match length {
        Some(len) => (
            text("podcast"),
            Value::Int(len),
            Value::Float(((seconds / len as f64 * 100.0) * 100.0).round() / 100.0),
        ),
        None => (Value::Null, Value::Null, Value::Null),
    };
    Record {
        kind: RecordKind::Upsert,
        table: SOURCE_TABLE.into(),
        event_key: id.to_string(),
        content_id: Some(content.into()),
        row: vec![
            col("id", Value::Int(id)),
            col("content_id", text(content)),
            col("user_id", text("9a8b7c6d-0000-4000-8000-000000000001")),
            col("event_type", text("play")),
            col("event_ts", text("2024-05-01T12:05:00.500000Z")),
            col("duration_ms", Value::Int(duration_ms)),
            col("device", text("ios")),
            col(
                "raw_payload",
                Value::Json(r#"{"session": "s-1", "position_s": 0}"#.into()),
            ),
            col("content_type", content_type),
            col("length_seconds", length_value),
            col("engagement_seconds", Value::Float(seconds)),
            col("engagement_pct", pct),
        ],
        op,
        lsn: Some(lsn),
        source_ts_ms: Some(1_714_565_100_000 + lsn as i64),
        content_missing: length.is_none(),
        decoder: plugin("debezium-decoder", "0.1.0", "5f"),
        enricher: Some(plugin("engagement-enricher", "1.0.0", "dc")),
        message_index: Some(0),
    }
}

/// A delete as the pipeline emits it: the key and the content it had. `op`
/// is `Update` for the delete written when an event moves to other content.
fn delete(id: i64, content: &str, op: Op, lsn: u64) -> Record {
    Record {
        kind: RecordKind::Delete,
        table: SOURCE_TABLE.into(),
        event_key: id.to_string(),
        content_id: Some(content.into()),
        row: vec![col("id", Value::Int(id))],
        op,
        lsn: Some(lsn),
        source_ts_ms: Some(1_714_565_100_000 + lsn as i64),
        content_missing: false,
        decoder: plugin("debezium-decoder", "0.1.0", "5f"),
        enricher: None,
        message_index: Some(0),
    }
}

async fn write(sink: &BigQuerySink, records: &[Record]) {
    let report = sink.write(records).await.expect("batch written");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

// ---------------------------------------------------------------- proxy

/// What the proxy saw of one insertAll request.
#[derive(Debug, Clone)]
struct SeenInsert {
    gzip: bool,
    rows: usize,
    json_bytes: usize,
}

/// A recording HTTP proxy in front of the emulator; can answer with an
/// error instead of forwarding.
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    inserts: Mutex<Vec<SeenInsert>>,
    fail_with: Mutex<Option<(u16, Json, Option<&'static str>)>>,
}

/// Starts a proxy; returns it and its `/bigquery/v2` base URL.
async fn proxy(emulator_base: &str) -> (Arc<Proxy>, String) {
    let upstream = emulator_base
        .strip_suffix("/bigquery/v2")
        .unwrap_or(emulator_base)
        .to_owned();
    let state = Arc::new(Proxy {
        upstream,
        client: http(),
        inserts: Mutex::new(Vec::new()),
        fail_with: Mutex::new(None),
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, format!("http://{addr}/bigquery/v2"))
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let canned = proxy.fail_with.lock().expect("lock").clone();
    if let Some((status, body, retry_after)) = canned {
        let mut response = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(seconds) = retry_after {
            response = response.header("retry-after", seconds);
        }
        return response
            .body(Body::from(body.to_string()))
            .expect("response");
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    if uri.path().ends_with("/insertAll") {
        let mut json = Vec::new();
        if gzip {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut json)
                .expect("gzip body");
        } else {
            json = body.to_vec();
        }
        let parsed: Json = serde_json::from_slice(&json).expect("JSON body");
        proxy.inserts.lock().expect("lock").push(SeenInsert {
            gzip,
            rows: parsed["rows"].as_array().map_or(0, Vec::len),
            json_bytes: json.len(),
        });
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .client
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body);
    for name in ["content-type", "content-encoding", "authorization"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap_or_default();
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .expect("response")
        }
        Err(err) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(err.to_string()))
            .expect("response"),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn ensure_table_creates_table_and_view_and_is_idempotent() {
    let started = Instant::now();
    let base = emulator().await;
    let dataset = fresh_dataset("ensure");
    let sink = BigQuerySink::new(config(&base, &dataset))
        .await
        .expect("sink built");

    let first = sink.ensure_table().await.expect("first ensure_table");
    assert!(first.dataset_created && first.table_created, "{first:?}");
    assert_eq!(
        first.view,
        ViewSetup::Created,
        "the emulator supports views"
    );

    let again = sink.ensure_table().await.expect("second ensure_table");
    assert!(!again.dataset_created && !again.table_created, "{again:?}");
    assert_eq!(again.view, ViewSetup::Existed);
    // connect() runs it a third time.
    BigQuerySink::connect(config(&base, &dataset))
        .await
        .expect("connect on an existing table");

    let resource = get(&base, &format!("datasets/{dataset}/tables/enriched_events")).await;
    let fields = resource["schema"]["fields"].as_array().expect("schema");
    assert_eq!(fields.len(), 21);
    let mode = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["mode"].as_str().unwrap_or("NULLABLE").to_owned())
            .unwrap_or_else(|| panic!("column {name} missing"))
    };
    for required in ["id", "content_missing", "op"] {
        assert_eq!(mode(required), "REQUIRED", "{required}");
    }
    // Defect 7 of the original: these are nullable in PostgreSQL.
    for nullable in ["content_id", "user_id", "device", "raw_payload", "event_ts"] {
        assert_eq!(mode(nullable), "NULLABLE", "{nullable}");
    }
    assert_eq!(
        resource["timePartitioning"],
        json!({"type": "DAY", "field": "event_ts"})
    );
    assert_eq!(
        resource["clustering"]["fields"],
        json!(["content_type", "event_type"])
    );

    let view_resource = get(
        &base,
        &format!("datasets/{dataset}/tables/enriched_events_current"),
    )
    .await;
    assert_eq!(view_resource["type"], "VIEW");
    assert_eq!(count(&base, &view(&dataset)).await, 0);

    // Without create_if_missing, a missing table stops the start-up.
    let missing = BigQuerySink::connect(BigQuerySinkConfig {
        create_if_missing: false,
        ..config(&base, &fresh_dataset("missing"))
    })
    .await
    .expect_err("no table");
    assert!(!missing.is_retriable(), "{missing}");

    drop_dataset(&base, &dataset).await;
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn written_rows_read_back_with_their_values() {
    let base = emulator().await;
    let dataset = fresh_dataset("values");
    ready_sink(&base, &dataset).await;
    let (proxy, proxy_base) = proxy(&base).await;
    let sink = BigQuerySink::new(config(&proxy_base, &dataset))
        .await
        .expect("sink via proxy");

    let before = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    write(
        &sink,
        &[
            event(1, "c1", Op::Create, 45_185_920, 45_000, Some(3600)),
            event(2, "c9", Op::Read, 45_185_930, 1_234, None),
            delete(3, "c1", Op::Delete, 45_185_940),
        ],
    )
    .await;

    // The body went gzipped, and the emulator took it.
    let inserts = proxy.inserts.lock().expect("lock").clone();
    assert_eq!(inserts.len(), 1, "{inserts:?}");
    assert!(inserts[0].gzip && inserts[0].rows == 3, "{inserts:?}");

    let rows = query(
        &base,
        &format!(
            "SELECT *, UNIX_MICROS(event_ts) AS event_ts_us, UNIX_MICROS(ingested_at) AS ingested_us \
             FROM {} ORDER BY id",
            table(&dataset)
        ),
    )
    .await;
    assert_eq!(rows.len(), 3);
    let v = |row: usize, column: &str| rows[row][column].clone();
    let f = |row: usize, column: &str| v(row, column).and_then(|s| s.parse::<f64>().ok());

    // A full enriched event: derived floats, provenance, JSON text payload.
    assert_eq!(v(0, "id").as_deref(), Some("1"));
    assert_eq!(v(0, "op").as_deref(), Some("c"));
    assert_eq!(v(0, "source_lsn").as_deref(), Some("45185920"));
    assert_eq!(f(0, "engagement_seconds"), Some(45.0));
    assert_eq!(f(0, "engagement_pct"), Some(1.25));
    assert_eq!(v(0, "length_seconds").as_deref(), Some("3600"));
    assert_eq!(v(0, "content_type").as_deref(), Some("podcast"));
    assert_eq!(v(0, "content_missing").as_deref(), Some("false"));
    assert_eq!(v(0, "event_ts_us").as_deref(), Some("1714565100500000"));
    assert_eq!(
        v(0, "decoder_plugin").as_deref(),
        Some("debezium-decoder@0.1.0")
    );
    assert_eq!(v(0, "decoder_sha256"), Some("5f".repeat(32)));
    assert_eq!(
        v(0, "enricher_plugin").as_deref(),
        Some("engagement-enricher@1.0.0")
    );
    assert_eq!(v(0, "enricher_sha256"), Some("dc".repeat(32)));
    let payload: Json =
        serde_json::from_str(&v(0, "raw_payload").expect("payload")).expect("JSON text");
    assert_eq!(payload, json!({"session": "s-1", "position_s": 0}));
    let ingested: i64 = v(0, "ingested_us")
        .and_then(|s| s.parse().ok())
        .expect("ingested_at set");
    let before_us = humantime::parse_rfc3339(&before)
        .expect("time")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros() as i64;
    assert!(
        ingested >= before_us - 1_000_000,
        "{ingested} vs {before_us}"
    );

    // Content missing: null content fields, the flag, a derived duration.
    assert_eq!(v(1, "op").as_deref(), Some("r"));
    assert_eq!(v(1, "content_missing").as_deref(), Some("true"));
    assert_eq!(v(1, "content_type"), None);
    assert_eq!(v(1, "length_seconds"), None);
    assert_eq!(v(1, "engagement_pct"), None);
    assert_eq!(f(1, "engagement_seconds"), Some(1.234));

    // A delete: the key, its content, op d, no event columns, no enricher.
    assert_eq!(v(2, "op").as_deref(), Some("d"));
    assert_eq!(v(2, "content_id").as_deref(), Some("c1"));
    assert_eq!(v(2, "event_ts"), None);
    assert_eq!(v(2, "user_id"), None);
    assert_eq!(v(2, "enricher_plugin"), None);
    assert_eq!(v(2, "content_missing").as_deref(), Some("false"));
    assert_eq!(v(2, "source_lsn").as_deref(), Some("45185940"));

    drop_dataset(&base, &dataset).await;
}

#[tokio::test]
async fn view_has_one_current_row_per_event_and_none_after_a_delete() {
    let base = emulator().await;
    let dataset = fresh_dataset("view");
    let sink = ready_sink(&base, &dataset).await;
    let current = |id: i64| {
        let base = base.clone();
        let view = view(&dataset);
        async move {
            query(
                &base,
                &format!(
                    "SELECT content_id, duration_ms, op, source_lsn FROM {view} WHERE id = {id}"
                ),
            )
            .await
        }
    };

    write(
        &sink,
        &[
            event(10, "c1", Op::Create, 100, 1_000, Some(600)),
            event(11, "c1", Op::Create, 110, 5_000, Some(600)),
        ],
    )
    .await;
    let rows = current(10).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["duration_ms"].as_deref(), Some("1000"));

    // An update: a new row in the table, the view shows only it.
    write(&sink, &[event(10, "c1", Op::Update, 200, 2_000, Some(600))]).await;
    // The same change redelivered (the emulator does not dedup by insertId).
    write(&sink, &[event(10, "c1", Op::Update, 200, 2_000, Some(600))]).await;
    let rows = current(10).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["duration_ms"].as_deref(), Some("2000"));
    assert_eq!(rows[0]["op"].as_deref(), Some("u"));

    // It moves to another content: a delete of the old one and the new
    // version, same LSN, in the pipeline's order. Keyed on id, the event
    // is still there, with its new content.
    write(
        &sink,
        &[
            delete(10, "c1", Op::Update, 300),
            event(10, "c2", Op::Update, 300, 3_000, Some(600)),
        ],
    )
    .await;
    let rows = current(10).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["content_id"].as_deref(), Some("c2"));
    assert_eq!(rows[0]["source_lsn"].as_deref(), Some("300"));

    // Deleted: gone from the view; an older version arriving late does not
    // bring it back.
    write(&sink, &[delete(10, "c2", Op::Delete, 400)]).await;
    write(&sink, &[event(10, "c1", Op::Update, 250, 9_000, Some(600))]).await;
    assert!(current(10).await.is_empty());

    // The other event is untouched; the table keeps every version.
    assert_eq!(current(11).await.len(), 1);
    assert_eq!(count(&base, &view(&dataset)).await, 1);
    assert_eq!(count(&base, &table(&dataset)).await, 8);

    drop_dataset(&base, &dataset).await;
}

#[tokio::test]
async fn large_batches_are_split_into_requests_of_at_most_500_rows() {
    let base = emulator().await;
    let dataset = fresh_dataset("split");
    ready_sink(&base, &dataset).await;
    let (proxy, proxy_base) = proxy(&base).await;
    let sink = BigQuerySink::new(config(&proxy_base, &dataset))
        .await
        .expect("sink via proxy");

    let records: Vec<Record> = (0..1200)
        .map(|i| {
            event(
                1000 + i,
                "c1",
                Op::Create,
                10_000 + i as u64,
                1_000,
                Some(600),
            )
        })
        .collect();
    write(&sink, &records).await;
    let sizes: Vec<usize> = proxy
        .inserts
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.rows)
        .collect();
    assert_eq!(sizes, [500, 500, 200]);
    assert_eq!(count(&base, &table(&dataset)).await, 1200);

    // And by bytes: a 40 kB limit cuts the same rows into more requests,
    // each under it (uncompressed JSON).
    proxy.inserts.lock().expect("lock").clear();
    let small = BigQuerySink::new(BigQuerySinkConfig {
        max_batch_bytes: 40_000,
        ..config(&proxy_base, &dataset)
    })
    .await
    .expect("sink");
    write(&small, &records[..300]).await;
    let seen = proxy.inserts.lock().expect("lock").clone();
    assert!(seen.len() > 1, "{seen:?}");
    assert!(seen.iter().all(|s| s.json_bytes <= 40_000), "{seen:?}");
    assert_eq!(seen.iter().map(|s| s.rows).sum::<usize>(), 300);

    drop_dataset(&base, &dataset).await;
}

#[tokio::test]
async fn a_mistyped_row_is_rejected_and_the_others_land() {
    let base = emulator().await;
    let dataset = fresh_dataset("invalid");
    let sink = ready_sink(&base, &dataset).await;

    let mut records: Vec<Record> = (0..5)
        .map(|i| event(20 + i, "c1", Op::Create, 500 + i as u64, 1_000, Some(600)))
        .collect();
    // An INTEGER column given text (a plugin bug): BigQuery refuses the row.
    for column in &mut records[2].row {
        if column.name == "duration_ms" {
            column.value = text("forty-five");
        }
    }
    let report = sink.write(&records).await.expect("batch accepted");
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert_eq!(report.rejected[0].0, 2);
    assert!(
        report.rejected[0].1.starts_with("invalid"),
        "{:?}",
        report.rejected
    );
    let ids: Vec<Option<String>> = query(
        &base,
        &format!("SELECT id FROM {} ORDER BY id", table(&dataset)),
    )
    .await
    .into_iter()
    .map(|row| row["id"].clone())
    .collect();
    let expected: Vec<Option<String>> = [20, 21, 23, 24]
        .iter()
        .map(|i| Some(i.to_string()))
        .collect();
    assert_eq!(ids, expected);

    drop_dataset(&base, &dataset).await;
}

#[tokio::test]
async fn failures_are_classified_transient_or_permanent() {
    let base = emulator().await;
    let dataset = fresh_dataset("errors");
    ready_sink(&base, &dataset).await;
    let batch = [event(30, "c1", Op::Create, 700, 1_000, Some(600))];

    // No such table: permanent (dead letters), nothing to wait for.
    let missing = BigQuerySink::new(BigQuerySinkConfig {
        table: "no_such_table".into(),
        ..config(&base, &dataset)
    })
    .await
    .expect("sink");
    match missing.write(&batch).await {
        Err(SinkError::Permanent(reason)) => assert!(reason.contains("404"), "{reason}"),
        other => panic!("expected permanent, got {other:?}"),
    }

    // Nothing listening: transient.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        port
    };
    let unreachable = BigQuerySink::new(config(
        &format!("http://127.0.0.1:{closed}/bigquery/v2"),
        &dataset,
    ))
    .await
    .expect("sink");
    let err = unreachable.write(&batch).await.expect_err("refused");
    assert!(err.is_retriable(), "{err:?}");

    // 503 with Retry-After, and a 403 quota error: transient, the delay kept.
    let (proxy, proxy_base) = proxy(&base).await;
    let sink = BigQuerySink::new(config(&proxy_base, &dataset))
        .await
        .expect("sink");
    *proxy.fail_with.lock().expect("lock") = Some((
        503,
        json!({"error": {"code": 503, "message": "try later", "errors": [{"reason": "backendError"}]}}),
        Some("7"),
    ));
    match sink.write(&batch).await {
        Err(SinkError::Transient { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("expected transient, got {other:?}"),
    }
    *proxy.fail_with.lock().expect("lock") = Some((
        403,
        json!({"error": {"code": 403, "message": "Exceeded rate limits", "errors": [{"reason": "rateLimitExceeded"}]}}),
        None,
    ));
    assert!(sink.write(&batch).await.expect_err("quota").is_retriable());
    *proxy.fail_with.lock().expect("lock") = Some((
        403,
        json!({"error": {"code": 403, "message": "Access Denied", "errors": [{"reason": "accessDenied"}]}}),
        None,
    ));
    assert!(!sink.write(&batch).await.expect_err("denied").is_retriable());

    // Back to normal: written.
    *proxy.fail_with.lock().expect("lock") = None;
    write(&sink, &batch).await;
    assert_eq!(count(&base, &table(&dataset)).await, 1);

    drop_dataset(&base, &dataset).await;
}
