//! End to end through every real part: PostgreSQL (the stack's private
//! cluster with logical replication) -> the real Debezium engine
//! (scripts/debezium/server.py) -> the Pub/Sub emulator -> `engagement-host
//! run` -> Redis, the BigQuery emulator and api-sim.
//!
//! `datagen` writes content and engagement rows with updates, deletes and
//! events committed before their content; mid-run a second enricher version
//! is dropped into the plugin directory, then the host is SIGKILLed and
//! restarted. The expected state is computed from PostgreSQL's own rows
//! (derived fields computed here, independently of the plugin) and checked
//! in Redis, in BigQuery's current-version view and at the API.
//!
//! Needs what `scripts/test.sh` starts: `scripts/postgres/start.sh`
//! (127.0.0.1:$PG_PORT, default 5433), the emulators, and the Debezium venv
//! (`scripts/debezium/setup.sh`).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const REDIS_DB: u32 = 15;

fn pg_port() -> u16 {
    std::env::var("PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5433)
}

fn psql(database: &str, user: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg_port().to_string(),
            "-U",
            user,
            "-d",
            database,
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh database (seed.sql applied) and a replication slot of its own;
/// both dropped at the end.
struct Database {
    name: String,
    slot: String,
}

impl Database {
    fn create(tag: &str) -> Self {
        let name = format!("e2e_{tag}");
        let slot = format!("e2e_{tag}");
        psql(
            "postgres",
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(
            "postgres",
            "postgres",
            &format!("CREATE DATABASE {name} OWNER debezium"),
        );
        let seed = std::fs::read_to_string(common::repo_root().join("seed.sql")).unwrap();
        psql(&name, "debezium", &seed);
        Self { name, slot }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let port = pg_port().to_string();
        for sql in [
            format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}'",
                self.slot
            ),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ] {
            let _ = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-qc",
                    &sql,
                ])
                .status();
        }
    }
}

/// The real Debezium engine for `db`, publishing to `<prefix>.public.*`.
/// Returns once it streams from the slot.
fn start_debezium(db: &Database, prefix: &str, dir: &Path) -> Proc {
    let root = common::repo_root();
    let python = root.join(".venv/debezium/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/debezium/setup.sh",
        python.display()
    );
    let set = |k: &str, v: &str| format!("--set=debezium.{k}={v}");
    let mut child = Command::new(python)
        .arg(root.join("scripts/debezium/server.py"))
        .arg("--state-dir")
        .arg(dir.join("debezium"))
        .args([
            set("source.database.hostname", "127.0.0.1"),
            set("source.database.port", &pg_port().to_string()),
            set("source.database.dbname", &db.name),
            set("source.slot.name", &db.slot),
            set("source.topic.prefix", prefix),
            set(
                "source.offset.storage.file.filename",
                &dir.join("offsets.dat").display().to_string(),
            ),
            set("sink.pubsub.address", &common::pubsub_host()),
        ])
        .env_remove("DEBEZIUM_SINK_PUBSUB_ADDRESS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Copy its output to a log file; signal when it streams.
    let (tx, rx) = mpsc::channel();
    let log = dir.join("debezium.log");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_log = std::fs::File::create(dir.join("debezium.stderr.log")).unwrap();
    std::thread::spawn(move || {
        let mut err_log = err_log;
        let _ = std::io::copy(&mut BufReader::new(stderr), &mut err_log);
    });
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::File::create(log).unwrap();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            if line.contains("[debezium] STREAMING") {
                let _ = tx.send(());
            }
        }
    });
    let proc = Proc(child);
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            panic!(
                "Debezium did not start streaming; see {}",
                dir.join("debezium.log").display()
            )
        });
    proc
}

fn write_host_config(dir: &Path, prefix: &str, api_port: u16, dataset: &str) -> PathBuf {
    let toml = format!(
        r#"pubsub_emulator_host = "{emulator}"
content_topic = "{prefix}.public.content"
events_topic = "{prefix}.public.engagement_events"
content_subscription = "{prefix}-content-sub"
events_subscription = "{prefix}-events-sub"
dead_letter_topic = "{prefix}-dead-letters"
pubsub_ack_deadline_secs = 10
default_emit_interval_secs = 0.2
pending_ttl_secs = 120
state_dir = "{state}"
dead_letter_file = "{dead}"
plugin_dir = "{plugins}"
plugin_cache_dir = "{cache}"
redis_db = {REDIS_DB}
bigquery_enabled = true
bigquery_emulator_url = "{bigquery}"
bigquery_dataset = "{dataset}"
# v2 adds a field: the host adds its column before the swap.
bigquery_allow_schema_update = true
api_enabled = true
third_party_api_url = "http://127.0.0.1:{api_port}"
api_batch_size = 100
admin_listen = "127.0.0.1:0"
"#,
        emulator = common::pubsub_host(),
        state = dir.join("state").display(),
        dead = dir.join("dead.ndjson").display(),
        plugins = dir.join("plugins").display(),
        cache = common::cache_dir().display(),
        bigquery = common::bigquery_url(),
    );
    let path = dir.join("host.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn host(config: &Path) -> Command {
    let mut cmd = common::bin();
    cmd.env_remove("PUBSUB_EMULATOR_HOST")
        .env_remove("BIGQUERY_EMULATOR_URL")
        .env_remove("REDIS_PORT")
        .env_remove("REDIS_HOST")
        .arg("--log-level")
        .arg("info");
    cmd.env("ENGAGEMENT_HOST_CONFIG", config);
    cmd
}

fn start_host(config: &Path, log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        host(config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn redis() -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{REDIS_DB}")).unwrap();
    client.get_connection().expect("Redis on 127.0.0.1:6379")
}

/// What the rules must give, computed here: Python's `round()` is half-even
/// on the exact binary value, which is what Rust's `{:.N}` formatting does.
fn py_round(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap()
}

#[derive(Debug, PartialEq)]
struct Expected {
    content_id: String,
    duration_ms: Option<i64>,
    content_type: Option<String>,
    length_seconds: Option<i64>,
    engagement_seconds: Option<f64>,
    engagement_pct: Option<f64>,
}

/// Every live engagement row with its content, from PostgreSQL.
fn expected_rows(db: &Database) -> BTreeMap<i64, Expected> {
    let out = psql(
        &db.name,
        "debezium",
        "SELECT json_build_object('id', e.id, 'content_id', e.content_id, 'duration_ms', e.duration_ms,
                'content_type', c.content_type, 'length_seconds', c.length_seconds)
         FROM engagement_events e LEFT JOIN content c ON c.id = e.content_id",
    );
    out.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            let duration_ms = row["duration_ms"].as_i64();
            let length_seconds = row["length_seconds"].as_i64();
            let engagement_seconds = duration_ms
                .filter(|d| *d >= 0)
                .map(|d| py_round(d as f64 / 1000.0, 3));
            let engagement_pct = match (engagement_seconds, length_seconds) {
                (Some(s), Some(len)) if len > 0 => Some(py_round(s / len as f64 * 100.0, 2)),
                _ => None,
            };
            let expected = Expected {
                content_id: row["content_id"].as_str().unwrap().to_string(),
                duration_ms,
                content_type: row["content_type"].as_str().map(str::to_string),
                length_seconds,
                engagement_seconds,
                engagement_pct,
            };
            (row["id"].as_i64().unwrap(), expected)
        })
        .collect()
}

fn as_expected(record: &Value) -> Expected {
    Expected {
        content_id: record["content_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        duration_ms: record["duration_ms"].as_i64(),
        content_type: record["content_type"].as_str().map(str::to_string),
        length_seconds: record["length_seconds"].as_i64(),
        engagement_seconds: record["engagement_seconds"].as_f64(),
        engagement_pct: record["engagement_pct"].as_f64(),
    }
}

/// Redis records by event id, or why they are not (yet) what is expected.
fn redis_matches(
    conn: &mut redis::Connection,
    expected: &BTreeMap<i64, Expected>,
) -> Result<Vec<Value>, String> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("eng:*").query(conn).unwrap();
    if keys.len() != expected.len() {
        return Err(format!(
            "{} keys in Redis, {} live rows in PostgreSQL",
            keys.len(),
            expected.len()
        ));
    }
    let mut records = Vec::new();
    for (id, want) in expected {
        let key = format!("eng:{{{}}}:{id}", want.content_id);
        let value: Option<String> = redis::cmd("GET").arg(&key).query(conn).unwrap();
        let Some(value) = value else {
            return Err(format!("{key} missing"));
        };
        let record: Value = serde_json::from_str(&value).unwrap();
        let got = as_expected(&record);
        if &got != want {
            return Err(format!("{key}: got {got:?}, want {want:?}"));
        }
        records.push(record);
    }
    Ok(records)
}

fn bigquery_current(dataset: &str) -> Vec<Value> {
    let sql = format!(
        "SELECT id, content_id, duration_ms, content_type, length_seconds, engagement_seconds, engagement_pct \
         FROM `{dataset}.enriched_events_current`"
    );
    let cells = block_on(common::bigquery_rows(&sql));
    let names = [
        "id",
        "content_id",
        "duration_ms",
        "content_type",
        "length_seconds",
        "engagement_seconds",
        "engagement_pct",
    ];
    cells
        .iter()
        .map(|cells| {
            let mut obj = serde_json::Map::new();
            for (name, cell) in names.iter().zip(cells) {
                // The REST API returns every cell as a string.
                let v = match cell {
                    Value::String(s) if *name != "content_id" && *name != "content_type" => {
                        serde_json::from_str(s).unwrap_or(Value::String(s.clone()))
                    }
                    v => v.clone(),
                };
                obj.insert(name.to_string(), v);
            }
            Value::Object(obj)
        })
        .collect()
}

#[test]
fn database_rows_reach_every_sink_through_real_debezium_with_a_swap_and_a_kill() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("{}_{}", std::process::id(), nanos % 100_000);
    let prefix = format!("e2e{tag}");
    // Kept when the test fails (logs of Debezium and the host), removed when it passes.
    let kept = tempfile::Builder::new()
        .prefix("e2e-")
        .tempdir_in(common::repo_root().join("target"))
        .unwrap()
        .keep();
    let dir = kept.as_path();
    eprintln!("e2e work dir: {}", dir.display());
    let db = Database::create(&tag);
    let _debezium = start_debezium(&db, &prefix, dir);

    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(common::decoder_wasm(), plugins.join("decoder.wasm")).unwrap();
    std::fs::copy(common::enricher_wasm(), plugins.join("enricher.wasm")).unwrap();
    let api_port = common::free_port();
    let _api = Proc(
        common::bin()
            .args(["api-sim", "--listen", &format!("127.0.0.1:{api_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dataset = format!("e2e_{tag}");
    let config = write_host_config(dir, &prefix, api_port, &dataset);
    let setup = host(&config)
        .args(["setup-pubsub", "--wait-secs", "30"])
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "setup-pubsub: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let mut conn = redis();
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();

    let host_log = dir.join("host.log");
    let mut running_host = start_host(&config, &host_log);
    let datagen = Proc(
        common::bin()
            .args([
                "datagen",
                "--host",
                "127.0.0.1",
                "--port",
                &pg_port().to_string(),
                "--database",
                &db.name,
            ])
            .args([
                "-c",
                "240",
                "-e",
                "2400",
                "-d",
                "0.3",
                "--prefer-new",
                "--seed",
                "42",
            ])
            .args([
                "--updates",
                "0.1",
                "--deletes",
                "0.05",
                "--early-events",
                "0.3",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    // Mid-run, once v1 has written some records: a new rule version (adds
    // engagement_tier), then a SIGKILL once v2 has written some too.
    wait_for_keys(&mut conn, 60, &host_log);
    let staged = plugins.join("enricher.wasm.new");
    std::fs::copy(common::plugin("examples/enricher-v2.wasm"), &staged).unwrap();
    std::fs::rename(&staged, plugins.join("enricher.wasm")).unwrap();
    wait_for_keys(&mut conn, 200, &host_log);
    running_host.0.kill().unwrap();
    running_host.0.wait().unwrap();
    running_host = start_host(&config, &host_log);

    let out = datagen.wait_with_output_owned();
    let summary: Value = serde_json::from_slice(&out).expect("datagen summary");
    assert!(
        summary["events_inserted"].as_u64().unwrap() >= 300,
        "{summary}"
    );
    assert!(summary["events_deleted"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        summary["content_after_events"].as_u64().unwrap() > 0,
        "{summary}"
    );

    // Everything PostgreSQL holds, in Redis with the right values.
    let expected = expected_rows(&db);
    let deadline = Instant::now() + Duration::from_secs(150);
    let records = loop {
        match redis_matches(&mut conn, &expected) {
            Ok(records) => break records,
            Err(why) if Instant::now() > deadline => {
                panic!(
                    "Redis never matched PostgreSQL: {why}; host log {}",
                    host_log.display()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };

    // The swap: records by v2 carry its new field, v1's do not; both exist.
    let mut versions = BTreeMap::<String, usize>::new();
    for record in &records {
        let enricher = record["enricher_plugin"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            record.get("engagement_tier").is_some(),
            enricher.ends_with("@2.0.0"),
            "{record}"
        );
        *versions.entry(enricher).or_default() += 1;
    }
    assert_eq!(
        versions.len(),
        2,
        "records by enricher version: {versions:?}"
    );

    // BigQuery's current view: exactly one row per live event, same values.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = bigquery_current(&dataset);
        let ids: HashSet<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
        let complete = rows.len() == expected.len() && ids.len() == rows.len();
        if complete {
            for row in &rows {
                let id = row["id"].as_i64().unwrap();
                assert_eq!(&as_expected(row), &expected[&id], "BigQuery row {id}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "BigQuery current view: {} rows ({} ids), {} live events",
            rows.len(),
            ids.len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The API saw every event ever inserted (deleted ones too).
    let inserted: u64 = psql(
        &db.name,
        "debezium",
        "SELECT last_value FROM engagement_events_id_seq",
    )
    .parse()
    .unwrap();
    let stats: Value = block_on(async {
        reqwest::get(format!("http://127.0.0.1:{api_port}/stats"))
            .await?
            .json()
            .await
    })
    .unwrap();
    assert_eq!(
        stats["unique_event_ids"].as_u64(),
        Some(inserted),
        "{stats}"
    );

    let dead = std::fs::read_to_string(dir.join("dead.ndjson")).unwrap_or_default();
    assert!(dead.trim().is_empty(), "dead letters: {dead}");
    drop(running_host);
    let _ = std::fs::remove_dir_all(&kept);
}

fn wait_for_keys(conn: &mut redis::Connection, n: usize, host_log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS").arg("eng:*").query(conn).unwrap();
        if keys.len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} keys in Redis after 90 s; see {}",
            keys.len(),
            host_log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

trait WaitOwned {
    fn wait_with_output_owned(self) -> Vec<u8>;
}

impl WaitOwned for Proc {
    fn wait_with_output_owned(mut self) -> Vec<u8> {
        let mut stdout = Vec::new();
        if let Some(mut out) = self.0.stdout.take() {
            std::io::Read::read_to_end(&mut out, &mut stdout).unwrap();
        }
        let status = self.0.wait().unwrap();
        assert!(status.success(), "datagen failed: {status}");
        stdout
    }
}
