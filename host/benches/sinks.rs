//! Sink throughput over the 80,000-event bulk fixture, against real
//! services: Redis on 127.0.0.1:6379 (database 14, flushed) and `api-sim`
//! (this crate's binary, a separate process on a free port).
//!
//! Each sink is measured two ways in the same run:
//! - the host: `replay` with the sink (batches of 512 messages, one
//!   pipelined Redis round trip / one POST per batch, retries on);
//! - the original pipeline's write pattern, on the same records: one
//!   `SET key json EX 3600` round trip per event, one POST with a single
//!   event per request (what its Beam DoFns did), written here in Rust, so
//!   the baseline is faster than the Python original was.
//!
//! `cargo bench -p engagement-host --bench sinks` (BENCH_ROUNDS=3 by
//! default). Under `cargo test --benches` it runs once on 2,000 events.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engagement_host::commands::replay;
use engagement_host::sinks::http::HttpSinkConfig;
use engagement_host::sinks::redis::RedisSinkConfig;
use support::{replay_settings as settings, root};

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REDIS_URL: &str = "redis://127.0.0.1:6379/14";

struct ApiSim(Child, String);

impl ApiSim {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_engagement-host"))
            .args([
                "--log-level",
                "warn",
                "api-sim",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "api-sim did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child, url)
    }
}

impl Drop for ApiSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn flush_redis() -> redis::Connection {
    let mut conn = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_connection()
        .expect("Redis on 127.0.0.1:6379");
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    conn
}

/// The first `events` messages of the bulk fixture (2 contents first).
fn input_file(events: usize, dir: &Path) -> PathBuf {
    let path = dir.join(format!("bulk-{events}.ndjson"));
    let file =
        std::fs::File::open(root().join("tests/fixtures/bulk_schemas_off.ndjson.gz")).unwrap();
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let text: Vec<String> = lines.take(events + 2).map(Result::unwrap).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    path
}

fn events_per_sec(events: u64, took: Duration) -> f64 {
    events as f64 / took.as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (events, rounds, post_sample) = if quick {
        (2_000, 1, 200)
    } else {
        let rounds = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
        (80_000, rounds, 5_000)
    };
    let dir = root().join("target/bench-sinks");
    std::fs::create_dir_all(&dir).unwrap();
    let input = input_file(events, &dir);
    let records_file = dir.join("records.ndjson");
    let api = ApiSim::start();

    // The records themselves, for the per-event baselines.
    replay::run(&settings(input.clone(), records_file.clone()))
        .expect("replay (run scripts/build-plugins.sh)");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&records_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("replay, no sink", vec![]),
        ("replay + Redis sink (pipelined per batch)", vec![]),
        ("original pattern: one SET round trip per event", vec![]),
        ("replay + API sink (one POST per batch)", vec![]),
        ("original pattern: one POST per event", vec![]),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..rounds {
        let s = replay::run(&settings(input.clone(), PathBuf::from("/dev/null"))).unwrap();
        results[0].1.push(events_per_sec(
            s.records,
            Duration::from_secs_f64(s.seconds),
        ));

        flush_redis();
        let mut with_redis = settings(input.clone(), PathBuf::from("/dev/null"));
        with_redis.redis = Some(RedisSinkConfig {
            url: REDIS_URL.into(),
            ..RedisSinkConfig::default()
        });
        let s = replay::run(&with_redis).unwrap();
        results[1].1.push(events_per_sec(
            s.records,
            Duration::from_secs_f64(s.seconds),
        ));

        let mut conn = flush_redis();
        let started = Instant::now();
        for record in &records {
            let key = format!(
                "eng:{{{}}}:{}",
                record["content_id"].as_str().unwrap_or_default(),
                record["id"]
            );
            redis::cmd("SET")
                .arg(key)
                .arg(record.to_string())
                .arg("EX")
                .arg(3600)
                .exec(&mut conn)
                .unwrap();
        }
        results[2]
            .1
            .push(events_per_sec(records.len() as u64, started.elapsed()));

        let mut with_api = settings(input.clone(), PathBuf::from("/dev/null"));
        with_api.api = Some(HttpSinkConfig {
            base_url: api.1.clone(),
            ..HttpSinkConfig::default()
        });
        let s = replay::run(&with_api).unwrap();
        results[3].1.push(events_per_sec(
            s.records,
            Duration::from_secs_f64(s.seconds),
        ));

        let client = reqwest::Client::new();
        let url = format!("{}/events", api.1);
        let sample = &records[..post_sample.min(records.len())];
        let started = Instant::now();
        runtime.block_on(async {
            for record in sample {
                let response = client
                    .post(&url)
                    .json(&serde_json::json!({"events": [record]}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
            }
        });
        results[4]
            .1
            .push(events_per_sec(sample.len() as u64, started.elapsed()));
    }

    println!("sinks over {events} events, median of {rounds} round(s), events/s:");
    let medians: Vec<f64> = results.iter().map(|(_, xs)| median(xs.clone())).collect();
    for ((name, _), m) in results.iter().zip(&medians) {
        println!("  {name:<50} {m:>10.0}");
    }
    println!(
        "  Redis: host / original pattern = {:.1}x",
        medians[1] / medians[2]
    );
    println!(
        "  API:   host / original pattern = {:.1}x",
        medians[3] / medians[4]
    );
    println!("  (the original Beam pipeline with its Redis writer: 3.0k events/s on this machine)");
}
