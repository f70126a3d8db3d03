//! A service under test (`engagement-host run` against the Pub/Sub and
//! BigQuery emulators, the BigQuery sink only, the admin endpoint on a
//! port of its own) and what the tests ask it. Included with `#[path]` by
//! `sink_schema.rs` and `shadow.rs`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use engagement_host::source::pubsub::{self, PubSubConfig, SubscriptionConfig};
use google_cloud_pubsub::model::Message as PubsubMessage;
use serde_json::Value;

use super::common;

pub const TOKEN: &str = "schema-test-token";

pub use super::common::{
    bigquery_rows as rows, bigquery_url, free_port, pubsub_host, unique_suffix as suffix,
};

/// One service under test: its names, config, admin address.
pub struct Setup {
    pub names: HashMap<&'static str, String>,
    pub dataset: String,
    pub admin: String,
    pub config: std::path::PathBuf,
    pub log: std::path::PathBuf,
}

pub fn setup(dir: &Path, plugins: &Path, extra: &str) -> Setup {
    let run = format!("schema-{}-{}", std::process::id(), suffix());
    let mut names = HashMap::new();
    names.insert("content_topic", format!("content-{run}"));
    names.insert("events_topic", format!("events-{run}"));
    names.insert("content_subscription", format!("content-sub-{run}"));
    names.insert("events_subscription", format!("events-sub-{run}"));
    names.insert("dead_letter_topic", String::new());
    let dataset = format!("schema_{}", suffix());
    let admin = format!("127.0.0.1:{}", free_port());
    let mut toml = format!(
        "pubsub_emulator_host = \"{}\"\nstate_dir = \"{}\"\ndead_letter_file = \"{}\"\n\
         plugin_dir = \"{}\"\nplugin_cache_dir = \"{}\"\ndefault_emit_interval_secs = 0.2\n\
         admin_listen = \"{admin}\"\nadmin_token = \"{TOKEN}\"\nredis_enabled = false\n\
         bigquery_enabled = true\nbigquery_dataset = \"{dataset}\"\nbigquery_emulator_url = \"{}\"\n",
        pubsub_host(),
        dir.join("state").display(),
        dir.join("dead.ndjson").display(),
        plugins.display(),
        common::cache_dir().display(),
        bigquery_url(),
    );
    for (k, v) in &names {
        toml.push_str(&format!("{k} = \"{v}\"\n"));
    }
    toml.push_str(extra);
    let config = dir.join("host.toml");
    std::fs::write(&config, toml).unwrap();
    Setup {
        names,
        dataset,
        admin,
        config,
        log: dir.join("host.log"),
    }
}

impl Setup {
    pub fn pubsub(&self) -> PubSubConfig {
        PubSubConfig {
            endpoint: Some(format!("http://{}", pubsub_host())),
            subscriptions: vec![
                SubscriptionConfig {
                    subscription: self.names["content_subscription"].clone(),
                    topic: self.names["content_topic"].clone(),
                },
                SubscriptionConfig {
                    subscription: self.names["events_subscription"].clone(),
                    topic: self.names["events_topic"].clone(),
                },
            ],
            dead_letter_topic: None,
            ack_deadline_secs: 10,
            ..PubSubConfig::default()
        }
    }

    pub fn start(&self) -> Child {
        common::bin()
            .env("RUST_LOG", "info")
            .env_remove("PUBSUB_EMULATOR_HOST")
            .env_remove("BIGQUERY_EMULATOR_URL")
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn table(&self) -> String {
        format!("`streaming-project.{}.enriched_events`", self.dataset)
    }

    pub async fn admin_get(&self, path: &str) -> Option<String> {
        let response = reqwest::Client::new()
            .get(format!("http://{}{path}", self.admin))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }

    pub async fn plugins(&self) -> Option<Value> {
        serde_json::from_str(&self.admin_get("/plugins").await?).ok()
    }

    pub async fn enricher(&self) -> Option<Value> {
        let plugins = self.plugins().await?;
        plugins["plugins"]
            .as_array()?
            .iter()
            .find(|p| p["kind"] == "enricher")
            .cloned()
    }

    /// The table's columns as (name, type, mode).
    pub async fn columns(&self) -> Vec<(String, String, String)> {
        let table: Value = reqwest::Client::new()
            .get(format!(
                "{}/projects/streaming-project/datasets/{}/tables/enriched_events",
                bigquery_url(),
                self.dataset
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        table["schema"]["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .map(|f| {
                        (
                            f["name"].as_str().unwrap_or_default().to_string(),
                            f["type"].as_str().unwrap_or_default().to_string(),
                            f["mode"].as_str().unwrap_or("NULLABLE").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn has_column(&self, name: &str) -> bool {
        self.columns().await.iter().any(|c| c.0 == name)
    }
}

/// Distinct event ids per enricher version in the table.
pub async fn ids_by_version(setup: &Setup) -> HashMap<String, u64> {
    rows(&format!(
        "SELECT enricher_plugin, COUNT(DISTINCT id) FROM {} GROUP BY enricher_plugin",
        setup.table()
    ))
    .await
    .into_iter()
    .map(|r| {
        (
            r[0].as_str().unwrap_or("null").to_string(),
            r[1].as_str().unwrap().parse().unwrap(),
        )
    })
    .collect()
}

/// Lines `from..to` of the bulk fixture (2 contents, then events 1, 2, ...).
pub fn bulk_lines(from: usize, to: usize) -> Vec<Value> {
    let file = std::fs::File::open(common::fixture("bulk_schemas_off.ndjson.gz")).unwrap();
    let reader =
        std::io::BufRead::lines(std::io::BufReader::new(flate2::read::GzDecoder::new(file)));
    reader
        .skip(from)
        .take(to - from)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

pub async fn publish(setup: &Setup, lines: &[Value]) {
    let config = setup.pubsub();
    let content = pubsub::publisher(&config, &setup.names["content_topic"])
        .await
        .unwrap();
    let events = pubsub::publisher(&config, &setup.names["events_topic"])
        .await
        .unwrap();
    let mut sent = Vec::new();
    for line in lines {
        let msg = PubsubMessage::new()
            .set_data(line["value"].as_str().unwrap().to_string())
            .set_ordering_key(line["key"].as_str().unwrap_or_default().to_string());
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

pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, setup: &Setup, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; host log:\n{}",
            setup.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub use super::common::sigterm;
