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
#[path = "support/service.rs"]
mod service;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use engagement_host::source::pubsub;
use serde_json::Value;
use service::*;

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
    wait_for(
        "the admin endpoint",
        Duration::from_secs(60),
        &setup,
        || async { setup.enricher().await.is_some() },
    )
    .await;

    publish(&setup, &bulk_lines(0, 52)).await;
    wait_for(
        "50 events in BigQuery",
        Duration::from_secs(60),
        &setup,
        || async { ids_by_version(&setup).await.get(V1) == Some(&50) },
    )
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
        metrics.contains(
            r#"engagement_plugin_rejected_total{kind="enricher",reason="sink_schema"} 1"#
        ),
        "{metrics}"
    );
    let log = setup.log();
    assert!(
        log.contains("plugin refused") && log.contains("engagement_tier"),
        "{log}"
    );

    // The next events are written by v1, and the table is unchanged.
    publish(&setup, &bulk_lines(52, 102)).await;
    wait_for(
        "100 events in BigQuery",
        Duration::from_secs(60),
        &setup,
        || async { ids_by_version(&setup).await.get(V1) == Some(&100) },
    )
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
    wait_for(
        "50 events by v2",
        Duration::from_secs(60),
        &setup,
        || async { ids_by_version(&setup).await.get(V2) == Some(&50) },
    )
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
