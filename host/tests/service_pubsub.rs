//! `engagement-host run` end to end against real services: the Pub/Sub
//! emulator, real Redis. The fixture messages are published exactly as
//! Debezium Server's Pub/Sub sink does (data = value, ordering key = key,
//! attributes = headers); the host must leave Redis holding exactly the live
//! events with the right derived values, and shut down cleanly on SIGTERM.
//!
//! Needs `scripts/emulators/start.sh pubsub` (the test command starts it).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engagement_host::api_sim::{ApiSimState, FaultConfig, serve_listener};
use engagement_host::source::pubsub::{self, PubSubConfig, SubscriptionConfig};
use google_cloud_pubsub::model::Message as PubsubMessage;
use serde_json::Value;

/// Base URL of the BigQuery emulator's REST API (`.../bigquery/v2`).
/// Fresh topic and subscription names: the emulator keeps everything.
fn names(tag: &str) -> (String, HashMap<&'static str, String>) {
    let run = format!("{tag}-{}-{}", std::process::id(), common::unique_suffix());
    let mut n = HashMap::new();
    n.insert("content_topic", format!("content-{run}"));
    n.insert("events_topic", format!("events-{run}"));
    n.insert("content_subscription", format!("content-sub-{run}"));
    n.insert("events_subscription", format!("events-sub-{run}"));
    n.insert("dead_letter_topic", format!("dead-{run}"));
    (run, n)
}

fn write_config(
    dir: &Path,
    names: &HashMap<&str, String>,
    redis_db: u32,
    plugins: &Path,
    extra: &str,
) -> std::path::PathBuf {
    let mut toml = format!(
        "pubsub_emulator_host = \"{}\"\nredis_db = {redis_db}\nstate_dir = \"{}\"\ndead_letter_file = \"{}\"\n\
         plugin_dir = \"{}\"\nplugin_cache_dir = \"{}\"\ndefault_emit_interval_secs = 0.2\nadmin_listen = \"127.0.0.1:0\"\n",
        common::pubsub_host(),
        dir.join("state").display(),
        dir.join("dead.ndjson").display(),
        plugins.display(),
        common::cache_dir().display(),
    );
    for (k, v) in names {
        toml.push_str(&format!("{k} = \"{v}\"\n"));
    }
    // Test-specific settings last.
    toml.push_str(extra);
    let path = dir.join("host.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn pubsub_config(names: &HashMap<&str, String>) -> PubSubConfig {
    PubSubConfig {
        endpoint: Some(format!("http://{}", common::pubsub_host())),
        subscriptions: vec![
            SubscriptionConfig {
                subscription: names["content_subscription"].clone(),
                topic: names["content_topic"].clone(),
            },
            SubscriptionConfig {
                subscription: names["events_subscription"].clone(),
                topic: names["events_topic"].clone(),
            },
        ],
        dead_letter_topic: Some(names["dead_letter_topic"].clone()),
        // A killed host's messages come back after 10 s, not 60.
        ack_deadline_secs: 10,
        ..PubSubConfig::default()
    }
}

fn redis(db: u32) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{db}")).unwrap();
    let mut conn = client.get_connection().expect("Redis on 127.0.0.1:6379");
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    conn
}

fn start_host(config: &Path, log: &Path) -> Child {
    common::bin()
        .env("RUST_LOG", "info")
        .env_remove("PUBSUB_EMULATOR_HOST")
        .env_remove("BIGQUERY_EMULATOR_URL")
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Publishes the fixture lines as Debezium Server's Pub/Sub sink does.
async fn publish_fixture(
    config: &PubSubConfig,
    names: &HashMap<&str, String>,
    lines: &[Value],
    headers: &[Value],
) {
    let content = pubsub::publisher(config, &names["content_topic"])
        .await
        .unwrap();
    let events = pubsub::publisher(config, &names["events_topic"])
        .await
        .unwrap();
    // Publish everything, then wait: awaiting each message would pay the
    // publisher's batching delay once per message.
    let mut sent = Vec::with_capacity(lines.len());
    for (line, header) in lines.iter().zip(headers) {
        let attributes: Vec<(String, String)> = header["attributes(headers)"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let msg = PubsubMessage::new()
            .set_data(line["value"].as_str().unwrap().to_string())
            .set_ordering_key(line["key"].as_str().unwrap_or_default().to_string())
            .set_attributes(attributes);
        let publisher = if line["destination"] == "pgcdc.public.content" {
            &content
        } else {
            &events
        };
        sent.push(publisher.publish(msg));
    }
    for result in futures::future::join_all(sent).await {
        result.unwrap();
    }
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fixture_through_pubsub_ends_in_redis() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let (_, names) = names("fixture");
    // All three sinks: Redis, BigQuery (emulator, a dataset of its own) and
    // the API simulator over real HTTP.
    let api = ApiSimState::new(FaultConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_listener(
        listener,
        api.clone(),
        std::future::pending(),
    ));
    let dataset = format!("e2e_{}", common::unique_suffix());
    let bigquery = common::bigquery_url();
    let config_path = write_config(
        tmp.path(),
        &names,
        11,
        &plugins,
        &format!(
            "api_enabled = true\nthird_party_api_url = \"{api_url}\"\nbigquery_enabled = true\n\
         bigquery_dataset = \"{dataset}\"\nbigquery_emulator_url = \"{bigquery}\"\n"
        ),
    );
    let config = pubsub_config(&names);
    pubsub::setup(&config, Duration::from_secs(30))
        .await
        .expect("Pub/Sub emulator (scripts/emulators/start.sh pubsub)");
    let mut conn = redis(11);

    let log = tmp.path().join("host.log");
    let mut host = start_host(&config_path, &log);
    publish_fixture(
        &config,
        &names,
        &common::fixture_lines("schemas_off.ndjson"),
        &common::fixture_lines("schemas_off.headers.ndjson"),
    )
    .await;

    // Event 3 stays; events 1 and 2 were deleted (2 under the default
    // replica identity: the host found its content id in its state).
    let live = "eng:{e5f6a7b8-c9d0-4e1f-a021-334455667788}:3";
    let gone = [
        "eng:{c3d4e5f6-a7b8-4c9d-8e0f-112233445566}:1",
        "eng:{d4e5f6a7-b8c9-4d0e-9f10-223344556677}:2",
    ];
    let settled = |conn: &mut redis::Connection| {
        let keys: Vec<String> = redis::cmd("KEYS").arg("eng:*").query(conn).unwrap();
        keys == vec![live.to_string()]
    };
    wait_for(
        "the fixture to settle in Redis",
        Duration::from_secs(60),
        || settled(&mut conn),
    );
    // Give late duplicates a moment to show up if there were any.
    std::thread::sleep(Duration::from_secs(1));
    assert!(settled(&mut conn));

    let value: String = redis::cmd("GET").arg(live).query(&mut conn).unwrap();
    let record: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(record["engagement_seconds"], 754.0);
    assert_eq!(record["engagement_pct"], 100.0);
    assert_eq!(record["content_type"], "video");
    assert_eq!(record["content_missing"], false);
    assert_eq!(record["enricher_plugin"], "engagement-enricher@1.0.0");
    let ttl: i64 = redis::cmd("TTL").arg(live).query(&mut conn).unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "TTL {ttl}");
    for key in gone {
        let exists: bool = redis::cmd("EXISTS").arg(key).query(&mut conn).unwrap();
        assert!(!exists, "{key} was deleted");
    }

    // The API got each event's versions once. (How many versions depends
    // on arrival order: the emulator does not keep publish order, and a
    // version older than one already applied is skipped by LSN.)
    let stats = api.stats_snapshot();
    assert_eq!(stats.unique_event_ids, 3, "{stats:?}");
    assert_eq!(stats.duplicate_batches, 0);
    assert_eq!(
        stats.events_by_op.get("d"),
        Some(&2),
        "both deletes reach the API"
    );

    // BigQuery's current view holds event 3 only, with its derived values.
    let rows = common::bigquery_rows(&format!("SELECT id, engagement_pct, content_type FROM `streaming-project.{dataset}.enriched_events_current`"),
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], Value::from("3"));
    assert_eq!(
        rows[0][1].as_str().map(|v| v.parse::<f64>().unwrap()),
        Some(100.0)
    );
    assert_eq!(rows[0][2], Value::from("video"));
    let all = common::bigquery_rows(&format!(
        "SELECT COUNT(*) FROM `streaming-project.{dataset}.enriched_events`"
    ))
    .await;
    assert_eq!(
        all[0][0],
        Value::from(stats.events.to_string()),
        "BigQuery has a row for every record the API got"
    );

    let status = common::sigterm(&mut host);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "host exit {status}: {log_text}");
    assert!(log_text.contains("service stopped"), "{log_text}");
    assert!(
        !tmp.path().join("dead.ndjson").exists()
            || std::fs::read_to_string(tmp.path().join("dead.ndjson"))
                .unwrap()
                .is_empty()
    );
}

/// The first `n` lines of the bulk fixture (2 contents, then events).
fn bulk_lines(n: usize) -> Vec<Value> {
    let file = std::fs::File::open(common::fixture("bulk_schemas_off.ndjson.gz")).unwrap();
    let reader =
        std::io::BufRead::lines(std::io::BufReader::new(flate2::read::GzDecoder::new(file)));
    reader
        .take(n)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

fn no_headers(n: usize) -> Vec<Value> {
    vec![serde_json::json!({"attributes(headers)": {}}); n]
}

fn eng_keys(conn: &mut redis::Connection) -> Vec<String> {
    redis::cmd("KEYS").arg("eng:*").query(conn).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_go_to_the_dead_letters_and_the_rest_is_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let (run, names) = names("malformed");
    let config_path = write_config(tmp.path(), &names, 12, &plugins, "");
    let config = pubsub_config(&names);
    pubsub::setup(&config, Duration::from_secs(30))
        .await
        .unwrap();
    // A subscription on the dead-letter topic, to read back what the host sent.
    let admin = engagement_host::source::pubsub_grpc_admin::GrpcAdmin::connect(
        config.endpoint.as_deref().unwrap(),
    )
    .await
    .unwrap();
    let dead_sub = format!("dead-sub-{run}");
    admin
        .create_subscription(
            config.subscription_path(&dead_sub),
            config.topic_path(&names["dead_letter_topic"]),
            60,
        )
        .await
        .unwrap();
    let mut conn = redis(12);

    // 300 good events with 100 malformed messages mixed in.
    let good = bulk_lines(302);
    let mut lines = Vec::new();
    for (i, line) in good.iter().enumerate() {
        lines.push(line.clone());
        if i >= 2 && i % 3 == 0 && lines.len() < 402 {
            let mut bad = line.clone();
            bad["value"] = Value::String(match i % 4 {
                0 => "not json".into(),
                1 => "[1,2]".into(),
                2 => r#"{"after":{"id":1}}"#.into(),
                _ => r#"{"op":"x","after":{"id":1}}"#.into(),
            });
            lines.push(bad);
        }
    }
    let bad_count = lines.len() - good.len();
    assert_eq!(bad_count, 100);

    let log = tmp.path().join("host.log");
    let mut host = start_host(&config_path, &log);
    publish_fixture(&config, &names, &lines, &no_headers(lines.len())).await;

    wait_for("300 events in Redis", Duration::from_secs(60), || {
        eng_keys(&mut conn).len() == 300
    });
    let dead_file = tmp.path().join("dead.ndjson");
    wait_for(
        "100 dead letters in the file",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&dead_file)
                .map(|t| t.lines().count())
                .unwrap_or(0)
                == 100
        },
    );
    let letters = common::read_ndjson(&dead_file);
    assert!(
        letters
            .iter()
            .all(|l| l["stage"] == "decode" && !l["reason"].as_str().unwrap().is_empty())
    );
    assert!(
        letters
            .iter()
            .all(|l| l["message"]["destination"] == names["events_topic"])
    );

    // The same 100 on the dead-letter topic.
    let subscriber = google_cloud_pubsub::client::Subscriber::builder()
        .with_endpoint(config.endpoint.clone().unwrap())
        .with_credentials(config.credentials().unwrap())
        .build()
        .await
        .unwrap();
    let mut stream = subscriber
        .subscribe(config.subscription_path(&dead_sub))
        .build();
    let mut seen = 0;
    while seen < 100 {
        let next = tokio::time::timeout(Duration::from_secs(20), stream.next()).await;
        let Ok(Some(Ok((message, handler)))) = next else {
            panic!("only {seen} dead letters on the topic");
        };
        let letter: Value = serde_json::from_slice(&message.data).unwrap();
        assert_eq!(letter["stage"], "decode");
        assert_eq!(
            message.attributes.get("stage").map(String::as_str),
            Some("decode")
        );
        handler.ack();
        seen += 1;
    }
    let status = common::sigterm(&mut host);
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_and_restart_mid_stream_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let (_, names) = names("restart");
    // BigQuery too: redelivered rows must not add current versions.
    let dataset = format!("restart_{}", common::unique_suffix());
    let bigquery = common::bigquery_url();
    let config_path = write_config(
        tmp.path(),
        &names,
        13,
        &plugins,
        &format!(
            "bigquery_enabled = true\nbigquery_dataset = \"{dataset}\"\nbigquery_emulator_url = \"{bigquery}\"\n"
        ),
    );
    let config = pubsub_config(&names);
    pubsub::setup(&config, Duration::from_secs(30))
        .await
        .unwrap();
    let mut conn = redis(13);

    let lines = bulk_lines(2002);
    let log = tmp.path().join("host.log");
    let mut host = start_host(&config_path, &log);
    publish_fixture(&config, &names, &lines, &no_headers(lines.len())).await;
    // Kill it hard once some (not all) events are written.
    wait_for("some events in Redis", Duration::from_secs(60), || {
        eng_keys(&mut conn).len() >= 200
    });
    host.kill().unwrap();
    host.wait().unwrap();
    let after_kill = eng_keys(&mut conn).len();

    // A redelivery on top: the first 500 messages published again.
    publish_fixture(&config, &names, &lines[..500], &no_headers(500)).await;

    let log2 = tmp.path().join("host2.log");
    let mut host = start_host(&config_path, &log2);
    wait_for("all 2000 events in Redis", Duration::from_secs(90), || {
        eng_keys(&mut conn).len() == 2000
    });
    let status = common::sigterm(&mut host);
    assert!(
        status.success(),
        "exit {status}: {}",
        std::fs::read_to_string(&log2).unwrap()
    );
    eprintln!("{after_kill} of 2000 events were in Redis when the host was killed");

    // The current view: one row per event, however often it was delivered.
    let view = format!("`streaming-project.{dataset}.enriched_events_current`");
    let counts =
        common::bigquery_rows(&format!("SELECT COUNT(*), COUNT(DISTINCT id) FROM {view}")).await;
    assert_eq!(counts[0][0], Value::from("2000"), "{counts:?}");
    assert_eq!(counts[0][1], Value::from("2000"), "{counts:?}");

    // Every value is the right one (checked against the fixture), content present.
    for line in &lines[2..] {
        let value: Value = serde_json::from_str(line["value"].as_str().unwrap()).unwrap();
        let after = &value["after"];
        let key = format!(
            "eng:{{{}}}:{}",
            after["content_id"].as_str().unwrap(),
            after["id"]
        );
        let stored: String = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        let record: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(record["duration_ms"], after["duration_ms"], "{key}");
        assert_eq!(record["content_missing"], false, "{key}");
        match after["duration_ms"].as_i64() {
            Some(ms) => assert_eq!(
                record["engagement_seconds"].as_f64().unwrap(),
                ms as f64 / 1000.0,
                "{key}"
            ),
            None => assert!(record["engagement_seconds"].is_null()),
        }
    }
}

/// A Redis server of this test's own, so it can be restarted mid-stream
/// without disturbing anything else.
struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16, dir: &Path) -> Self {
        let mut redis = Self {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        redis.restart();
        redis
    }

    fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        wait_for("private Redis", Duration::from_secs(10), || {
            redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port))
                .and_then(|c| c.get_connection())
                .is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_mid_stream_then_sigterm_and_restart_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let (_, names) = names("redis-restart");
    let port = 6390 + (std::process::id() % 50) as u16;
    let mut private = PrivateRedis::start(port, tmp.path());
    let config_path = write_config(
        tmp.path(),
        &names,
        0,
        &plugins,
        &format!("redis_port = {port}\nretry_max_ms = 500\nbatch_size = 100\n"),
    );
    let config = pubsub_config(&names);
    pubsub::setup(&config, Duration::from_secs(30))
        .await
        .unwrap();

    let lines = bulk_lines(3002);
    let log = tmp.path().join("host.log");
    let mut host = start_host(&config_path, &log);
    publish_fixture(&config, &names, &lines[..1500], &no_headers(1500)).await;
    wait_for("some events in Redis", Duration::from_secs(60), || {
        eng_keys(&mut private.connection()).len() >= 100
    });
    // Redis goes away for a moment (its append-only file keeps what it had).
    private.stop();
    publish_fixture(
        &config,
        &names,
        &lines[1500..],
        &no_headers(lines.len() - 1500),
    )
    .await;
    std::thread::sleep(Duration::from_secs(2));
    private.restart();
    wait_for("all 3000 events in Redis", Duration::from_secs(90), || {
        eng_keys(&mut private.connection()).len() == 3000
    });

    // SIGTERM, then a restart on the same state: a further redelivery of
    // everything changes nothing.
    let status = common::sigterm(&mut host);
    assert!(
        status.success(),
        "exit {status}: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    let log2 = tmp.path().join("host2.log");
    let mut host = start_host(&config_path, &log2);
    publish_fixture(&config, &names, &lines, &no_headers(lines.len())).await;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(eng_keys(&mut private.connection()).len(), 3000);
    let status = common::sigterm(&mut host);
    assert!(
        status.success(),
        "exit {status}: {}",
        std::fs::read_to_string(&log2).unwrap()
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("sink write failed, retrying"),
        "the outage was seen and retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_down_for_ten_seconds_then_every_event_arrives_once() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let (_, names) = names("api-outage");
    // The API answers 500 to every request for the first 10 s.
    let api = ApiSimState::new(FaultConfig {
        fail_for_secs: 10.0,
        ..FaultConfig::default()
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_listener(
        listener,
        api.clone(),
        std::future::pending(),
    ));
    let config_path = write_config(
        tmp.path(),
        &names,
        14,
        &plugins,
        &format!(
            "api_enabled = true\nthird_party_api_url = \"{api_url}\"\nretry_max_ms = 1000\nbatch_size = 200\n"
        ),
    );
    let config = pubsub_config(&names);
    pubsub::setup(&config, Duration::from_secs(30))
        .await
        .unwrap();
    let mut conn = redis(14);

    let lines = bulk_lines(1002);
    let log = tmp.path().join("host.log");
    let mut host = start_host(&config_path, &log);
    publish_fixture(&config, &names, &lines, &no_headers(lines.len())).await;

    wait_for(
        "all 1000 events at the API",
        Duration::from_secs(60),
        || api.stats_snapshot().unique_event_ids == 1000,
    );
    let stats = api.stats_snapshot();
    assert!(stats.errors_injected > 0, "the outage was hit: {stats:?}");
    // Each event once: retried batches are recognised by their key, and
    // none counted twice.
    assert_eq!(stats.events, 1000, "{stats:?}");
    assert_eq!(eng_keys(&mut conn).len(), 1000, "Redis got them all too");
    let status = common::sigterm(&mut host);
    assert!(
        status.success(),
        "exit {status}: {}",
        std::fs::read_to_string(&log).unwrap()
    );
}

/// A test double for a fault the emulator cannot produce: BigQuery
/// answering 503 (with `Retry-After`). Everything is forwarded to the real
/// emulator, except that `insertAll` is refused until `until`.
async fn bigquery_503_proxy(upstream: String, until: Instant) -> (String, Arc<AtomicU64>) {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, Response, StatusCode};

    let refused = Arc::new(AtomicU64::new(0));
    let counter = refused.clone();
    let client = reqwest::Client::new();
    let handler = move |request: Request<Body>| {
        let client = client.clone();
        let upstream = upstream.clone();
        let counter = counter.clone();
        async move {
            let (parts, body) = request.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            if path.contains("/insertAll") && Instant::now() < until {
                counter.fetch_add(1, Ordering::Relaxed);
                return Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .header("retry-after", "1")
                    .body(Body::from("backend unavailable"))
                    .unwrap();
            }
            let bytes = to_bytes(body, 64 << 20).await.unwrap();
            let mut forward = client
                .request(parts.method.clone(), format!("{upstream}{path}"))
                .body(bytes);
            for (name, value) in &parts.headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.unwrap();
            let mut response = Response::builder().status(answer.status().as_u16());
            if let Some(kind) = answer.headers().get("content-type") {
                response = response.header("content-type", kind);
            }
            response
                .body(Body::from(answer.bytes().await.unwrap()))
                .unwrap()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
    (url, refused)
}

#[tokio::test(flavor = "multi_thread")]
async fn bigquery_unavailable_for_a_while_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let (_, names) = names("bq-outage");
    let emulator_root = common::bigquery_url()
        .trim_end_matches("/bigquery/v2")
        .to_string();
    let (proxy, refused) =
        bigquery_503_proxy(emulator_root, Instant::now() + Duration::from_secs(6)).await;
    let dataset = format!("outage_{}", common::unique_suffix());
    let config_path = write_config(
        tmp.path(),
        &names,
        15,
        &plugins,
        &format!(
            "redis_enabled = false\nbigquery_enabled = true\nbigquery_dataset = \"{dataset}\"\n\
         bigquery_emulator_url = \"{proxy}/bigquery/v2\"\nretry_max_ms = 1000\n"
        ),
    );
    let config = pubsub_config(&names);
    pubsub::setup(&config, Duration::from_secs(30))
        .await
        .unwrap();

    let lines = bulk_lines(502);
    let log = tmp.path().join("host.log");
    let mut host = start_host(&config_path, &log);
    publish_fixture(&config, &names, &lines, &no_headers(lines.len())).await;
    let view = format!("`streaming-project.{dataset}.enriched_events_current`");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The view exists only once the host reached BigQuery through the outage.
        let rows = common::try_bigquery_rows(&format!("SELECT COUNT(*) FROM {view}")).await;
        if rows
            .as_ref()
            .ok()
            .and_then(|r| r.first())
            .map(|r| r[0].clone())
            == Some(Value::from("500"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "BigQuery never got all 500 events: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(refused.load(Ordering::Relaxed) > 0, "the outage was hit");
    let status = common::sigterm(&mut host);
    assert!(
        status.success(),
        "exit {status}: {}",
        std::fs::read_to_string(&log).unwrap()
    );
}
