//! Sink schema check before a swap, end to end: `engagement-host run` with
//! the BigQuery sink against the real emulators (Pub/Sub and BigQuery,
//! `scripts/emulators/start.sh all`; `BIGQUERY_EMULATOR_URL`,
//! `PUBSUB_EMULATOR_HOST`). enricher-v2 adds `engagement_tier`, which the
//! table (made from `bigquery/enriched_events_schema.json`) lacks:
//!
//! - dropped into the plugin directory, it is refused (log, metric
//!   `engagement_plugin_rejected_total{reason="sink_schema"}`, `GET /plugins`)
//!   and v1 keeps serving;
//! - with `bigquery_allow_schema_update = true`, the column is added
//!   (NULLABLE STRING) and v2 serves, its tier landing in the new column;
//! - as the enricher at start-up, the service refuses to start, unless
//!   schema updates are allowed.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use engagement_host::source::pubsub::{self, PubSubConfig, SubscriptionConfig};
use google_cloud_pubsub::model::Message as PubsubMessage;
use serde_json::Value;

const TOKEN: &str = "schema-test-token";

fn bigquery_url() -> String {
    let url =
        std::env::var("BIGQUERY_EMULATOR_URL").unwrap_or_else(|_| "http://127.0.0.1:9050".into());
    let url = url.trim_end_matches('/').to_string();
    if url.ends_with("/bigquery/v2") {
        url
    } else {
        format!("{url}/bigquery/v2")
    }
}

fn pubsub_host() -> String {
    std::env::var("PUBSUB_EMULATOR_HOST").unwrap_or_else(|_| "127.0.0.1:8085".into())
}

fn suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One service under test: its names, config, admin address.
struct Setup {
    names: HashMap<&'static str, String>,
    dataset: String,
    admin: String,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
}

fn setup(dir: &Path, plugins: &Path, extra: &str) -> Setup {
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
    fn pubsub(&self) -> PubSubConfig {
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

    fn start(&self) -> Child {
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn table(&self) -> String {
        format!("`streaming-project.{}.enriched_events`", self.dataset)
    }

    async fn admin_get(&self, path: &str) -> Option<String> {
        let response = reqwest::Client::new()
            .get(format!("http://{}{path}", self.admin))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }

    async fn plugins(&self) -> Option<Value> {
        serde_json::from_str(&self.admin_get("/plugins").await?).ok()
    }

    async fn enricher(&self) -> Option<Value> {
        let plugins = self.plugins().await?;
        plugins["plugins"]
            .as_array()?
            .iter()
            .find(|p| p["kind"] == "enricher")
            .cloned()
    }

    /// The table's columns as (name, type, mode).
    async fn columns(&self) -> Vec<(String, String, String)> {
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

    async fn has_column(&self, name: &str) -> bool {
        self.columns().await.iter().any(|c| c.0 == name)
    }
}

/// Rows of a query, each as the REST API's cell values.
async fn rows(sql: &str) -> Vec<Vec<Value>> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/projects/streaming-project/queries", bigquery_url()))
        .json(&serde_json::json!({"query": sql, "useLegacySql": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("errors").is_none(), "{sql}: {answer}");
    answer["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r["f"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["v"].clone())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Distinct event ids per enricher version in the table.
async fn ids_by_version(setup: &Setup) -> HashMap<String, u64> {
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
fn bulk_lines(from: usize, to: usize) -> Vec<Value> {
    let file = std::fs::File::open(common::fixture("bulk_schemas_off.ndjson.gz")).unwrap();
    let reader =
        std::io::BufRead::lines(std::io::BufReader::new(flate2::read::GzDecoder::new(file)));
    reader
        .skip(from)
        .take(to - from)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

async fn publish(setup: &Setup, lines: &[Value]) {
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

async fn wait_for<F, Fut>(what: &str, timeout: Duration, setup: &Setup, mut check: F)
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

const V1: &str = "engagement-enricher@1.0.0";
const V2: &str = "engagement-enricher@2.0.0";

/// Starts a v1 service, writes 50 events, drops v2 in; returns the host.
async fn start_v1_then_drop_v2(tmp: &Path, extra: &str) -> (Setup, Child, std::path::PathBuf) {
    let plugins = common::plugin_dir(tmp);
    // Compiled into the shared cache first: the swap does not wait on it.
    let v2 = common::plugin("examples/enricher-v2.wasm");
    common::loader().load(&v2, None).expect("v2 loads");
    let setup = setup(tmp, &plugins, extra);
    pubsub::setup(&setup.pubsub(), Duration::from_secs(30))
        .await
        .expect("Pub/Sub emulator (scripts/emulators/start.sh pubsub)");
    let host = setup.start();
    wait_for("the admin endpoint", Duration::from_secs(60), &setup, || async {
        setup.enricher().await.is_some()
    })
    .await;

    publish(&setup, &bulk_lines(0, 52)).await;
    wait_for("50 events in BigQuery", Duration::from_secs(60), &setup, || async {
        ids_by_version(&setup).await.get(V1) == Some(&50)
    })
    .await;
    assert!(!setup.has_column("engagement_tier").await);

    common::deploy(&v2, &plugins.join("enricher.wasm"));
    (setup, host, plugins)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_whose_field_the_table_lacks_is_refused_and_v1_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let (setup, mut host, _plugins) = start_v1_then_drop_v2(tmp.path(), "").await;

    wait_for(
        "the refusal in GET /plugins",
        Duration::from_secs(60),
        &setup,
        || async {
            setup
                .enricher()
                .await
                .is_some_and(|e| !e["last_rejection"].is_null())
        },
    )
    .await;
    let enricher = setup.enricher().await.unwrap();
    assert_eq!(enricher["version"], "1.0.0", "v1 keeps serving");
    assert_eq!(enricher["swaps"], 0);
    let rejection = &enricher["last_rejection"];
    assert_eq!(rejection["category"], "sink_schema", "{rejection}");
    let reason = rejection["reason"].as_str().unwrap();
    for part in [
        V2,
        "bigquery sink",
        "engagement_tier (STRING)",
        "bigquery_allow_schema_update = true",
    ] {
        assert!(reason.contains(part), "{part} in {reason}");
    }
    let metrics = setup.admin_get("/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"engagement_plugin_rejected_total{kind="enricher",reason="sink_schema"} 1"#),
        "{metrics}"
    );
    let log = setup.log();
    assert!(
        log.contains("plugin refused") && log.contains("engagement_tier"),
        "{log}"
    );

    // The next events are written by v1, and the table is unchanged.
    publish(&setup, &bulk_lines(52, 102)).await;
    wait_for("100 events in BigQuery", Duration::from_secs(60), &setup, || async {
        ids_by_version(&setup).await.get(V1) == Some(&100)
    })
    .await;
    assert_eq!(ids_by_version(&setup).await.len(), 1, "only v1 wrote");
    assert!(!setup.has_column("engagement_tier").await);

    // An operator-triggered reload is checked too (and refused again: the
    // cause is the table, so the file is not remembered as bad).
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{}/plugins/reload", setup.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let enricher_result = &answer[1]["result"];
    assert_eq!(enricher_result["outcome"], "rejected", "{answer}");
    assert!(
        enricher_result["reason"]
            .as_str()
            .unwrap()
            .contains("engagement_tier"),
        "{answer}"
    );

    let status = sigterm(&mut host);
    assert!(status.success(), "{}", setup.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_schema_updates_allowed_the_column_is_added_and_v2_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let (setup, mut host, _plugins) =
        start_v1_then_drop_v2(tmp.path(), "bigquery_allow_schema_update = true\n").await;

    wait_for("v2 serving", Duration::from_secs(60), &setup, || async {
        setup
            .enricher()
            .await
            .is_some_and(|e| e["version"] == "2.0.0")
    })
    .await;
    let columns = setup.columns().await;
    let tier = columns
        .iter()
        .find(|c| c.0 == "engagement_tier")
        .expect("column added");
    assert_eq!((tier.1.as_str(), tier.2.as_str()), ("STRING", "NULLABLE"));
    assert_eq!(
        columns.len(),
        22,
        "the 21 columns kept, one added: {columns:?}"
    );

    publish(&setup, &bulk_lines(52, 102)).await;
    wait_for("50 events by v2", Duration::from_secs(60), &setup, || async {
        ids_by_version(&setup).await.get(V2) == Some(&50)
    })
    .await;
    let by_version = ids_by_version(&setup).await;
    assert_eq!(by_version.get(V1), Some(&50), "{by_version:?}");
    // Every v2 row has its tier, the same the rule gives for its percentage.
    let tiers = rows(&format!(
        "SELECT engagement_pct, engagement_tier FROM {} WHERE enricher_plugin = '{V2}'",
        setup.table()
    ))
    .await;
    assert!(tiers.len() >= 50);
    for row in &tiers {
        let pct = row[0].as_str().map(|p| p.parse::<f64>().unwrap());
        let expected = pct.map(|p| {
            if p >= 90.0 {
                "complete"
            } else if p >= 25.0 {
                "engaged"
            } else {
                "sampled"
            }
        });
        assert_eq!(row[1].as_str(), expected, "{row:?}");
    }
    // v1's rows have no tier.
    let v1_tiers = rows(&format!(
        "SELECT COUNT(*) FROM {} WHERE enricher_plugin = '{V1}' AND engagement_tier IS NOT NULL",
        setup.table()
    ))
    .await;
    assert_eq!(v1_tiers[0][0], "0");
    assert!(setup.log().contains("BigQuery columns added"));

    let status = sigterm(&mut host);
    assert!(status.success(), "{}", setup.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn start_up_refuses_an_enricher_the_table_cannot_hold_unless_allowed() {
    for allowed in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let plugins = common::plugin_dir(tmp.path());
        common::deploy(
            &common::plugin("examples/enricher-v2.wasm"),
            &plugins.join("enricher.wasm"),
        );
        let extra = if allowed {
            "bigquery_allow_schema_update = true\n"
        } else {
            ""
        };
        let setup = setup(tmp.path(), &plugins, extra);
        pubsub::setup(&setup.pubsub(), Duration::from_secs(30))
            .await
            .unwrap();
        let mut host = setup.start();
        if allowed {
            wait_for("the column", Duration::from_secs(60), &setup, || {
                setup.has_column("engagement_tier")
            })
            .await;
            wait_for("v2 serving", Duration::from_secs(60), &setup, || async {
                setup
                    .enricher()
                    .await
                    .is_some_and(|e| e["version"] == "2.0.0")
            })
            .await;
            assert!(host.try_wait().unwrap().is_none(), "{}", setup.log());
            let status = sigterm(&mut host);
            assert!(status.success(), "{}", setup.log());
        } else {
            let deadline = Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(status) = host.try_wait().unwrap() {
                    break status;
                }
                assert!(Instant::now() < deadline, "still running: {}", setup.log());
                std::thread::sleep(Duration::from_millis(100));
            };
            let log = setup.log();
            assert!(!status.success(), "{log}");
            assert!(
                log.contains("the enricher engagement-enricher@2.0.0")
                    && log.contains("cannot serve")
                    && log.contains("engagement_tier (STRING)"),
                "{log}"
            );
            assert!(!setup.has_column("engagement_tier").await);
        }
    }
}
