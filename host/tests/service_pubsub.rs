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
use std::time::{Duration, Instant};

use engagement_host::source::pubsub::{self, PubSubConfig, SubscriptionConfig};
use google_cloud_pubsub::model::Message as PubsubMessage;
use serde_json::Value;

fn emulator() -> String {
    std::env::var("PUBSUB_EMULATOR_HOST").unwrap_or_else(|_| "127.0.0.1:8085".into())
}

/// Fresh topic and subscription names: the emulator keeps everything.
fn names(tag: &str) -> (String, HashMap<&'static str, String>) {
    let run = format!("{tag}-{}-{}", std::process::id(), rand_suffix());
    let mut n = HashMap::new();
    n.insert("content_topic", format!("content-{run}"));
    n.insert("events_topic", format!("events-{run}"));
    n.insert("content_subscription", format!("content-sub-{run}"));
    n.insert("events_subscription", format!("events-sub-{run}"));
    n.insert("dead_letter_topic", format!("dead-{run}"));
    (run, n)
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn write_config(
    dir: &Path,
    names: &HashMap<&str, String>,
    redis_db: u32,
    plugins: &Path,
) -> std::path::PathBuf {
    let mut toml = format!(
        "pubsub_emulator_host = \"{}\"\nredis_db = {redis_db}\nstate_dir = \"{}\"\ndead_letter_file = \"{}\"\n\
         plugin_dir = \"{}\"\nplugin_cache_dir = \"{}\"\ndefault_emit_interval_secs = 0.2\nadmin_listen = \"127.0.0.1:0\"\n",
        emulator(),
        dir.join("state").display(),
        dir.join("dead.ndjson").display(),
        plugins.display(),
        common::cache_dir().display(),
    );
    for (k, v) in names {
        toml.push_str(&format!("{k} = \"{v}\"\n"));
    }
    let path = dir.join("host.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn pubsub_config(names: &HashMap<&str, String>) -> PubSubConfig {
    PubSubConfig {
        endpoint: Some(format!("http://{}", emulator())),
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
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "host did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
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
        publisher.publish(msg).await.unwrap();
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
    let config_path = write_config(tmp.path(), &names, 11, &plugins);
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

    let status = sigterm(&mut host);
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
