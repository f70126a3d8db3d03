//! Shadow deploys: a new enricher version runs beside the serving one on
//! the same events, its outputs compared and never written, until it is
//! promoted (automatically after N events, or by command); a rollback
//! returns to the previous version. Outputs switch between two batches:
//! no event lost or doubled.
//!
//! The replay test is deterministic (`replay --shadow`); the service test
//! drives the admin endpoint and `engagement-host plugin rollback` against
//! the emulators (`scripts/emulators/start.sh all`).

mod common;
#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use engagement_host::source::pubsub;
use serde_json::Value;
use service::*;

const V1: &str = "engagement-enricher@1.0.0";
const V2: &str = "engagement-enricher@2.0.0";
const BATCH: u64 = 512;
const PROMOTE_AFTER: u64 = 20_000;
const ROLLBACK_AFTER: u64 = 60_000;

/// The tier enricher-v2 gives a percentage (its rule, restated).
fn tier(pct: Option<f64>) -> Value {
    match pct {
        None => Value::Null,
        Some(p) if p >= 90.0 => "complete".into(),
        Some(p) if p >= 25.0 => "engaged".into(),
        Some(_) => "sampled".into(),
    }
}

/// Drops what may differ between a v1 and a v2 record of the same event.
fn without_rule_version(record: &Value) -> Value {
    let mut r = record.clone();
    let map = r.as_object_mut().unwrap();
    for key in ["engagement_tier", "enricher_plugin", "enricher_sha256"] {
        map.remove(key);
    }
    r
}

#[test]
fn replay_shadow_then_promotion_then_rollback_switch_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let input = common::fixture("bulk_schemas_off.ndjson.gz");
    let v2 = common::plugin("examples/enricher-v2.wasm");
    let batch = BATCH.to_string();

    // The same stream with v1 alone: what every record must be, in order.
    let baseline_out = tmp.path().join("baseline.ndjson");
    common::replay(
        &plugins,
        &input,
        &baseline_out,
        &["--no-watch", "--batch-size", &batch],
    );
    let baseline = common::read_ndjson(&baseline_out);
    assert_eq!(baseline.len(), 80_000);

    let output = tmp.path().join("out.ndjson");
    let out = common::replay(
        &plugins,
        &input,
        &output,
        &[
            "--no-watch",
            "--batch-size",
            &batch,
            "--shadow",
            v2.to_str().unwrap(),
            "--shadow-promote-after",
            &PROMOTE_AFTER.to_string(),
            "--rollback-after-messages",
            &ROLLBACK_AFTER.to_string(),
        ],
    );
    let summary = common::summary(&out);
    let records = common::read_ndjson(&output);

    // None lost, none doubled, in the order v1 alone gives.
    assert_eq!(records.len(), 80_000, "{summary}");
    let ids: Vec<&Value> = records.iter().map(|r| &r["id"]).collect();
    let baseline_ids: Vec<&Value> = baseline.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, baseline_ids, "each event once, in order");

    // v1, then v2 from the promotion, then v1 again from the rollback.
    let versions: Vec<&str> = records
        .iter()
        .map(|r| r["enricher_plugin"].as_str().unwrap())
        .collect();
    let first_v2 = versions.iter().position(|v| *v == V2).expect("promoted");
    let after_v2 = first_v2
        + versions[first_v2..]
            .iter()
            .position(|v| *v == V1)
            .expect("rolled back");
    assert!(versions[..first_v2].iter().all(|v| *v == V1));
    assert!(versions[first_v2..after_v2].iter().all(|v| *v == V2));
    assert!(versions[after_v2..].iter().all(|v| *v == V1));

    // Independently: the shadow compared every event v1 enriched before
    // the promotion, and each differs (v2 adds engagement_tier, null or
    // not, to every event). Promotion comes at the end of the first batch
    // that reaches the count: batch k holds 512 messages, the first batch
    // two contents and 510 events.
    let compared = first_v2 as u64;
    let events_after = |batches: u64| batches * BATCH - 2;
    let promoted_after_batches = (PROMOTE_AFTER + 2).div_ceil(BATCH);
    assert_eq!(compared, events_after(promoted_after_batches));
    let shadow = &summary["shadow"];
    assert_eq!(shadow["events"], compared, "{shadow}");
    assert_eq!(shadow["differing"], compared, "{shadow}");
    assert_eq!(shadow["errors"], 0);
    assert_eq!(shadow["promoted"], true);
    assert_eq!(shadow["rolled_back"], true);
    // The rollback lands after the first batch that reaches its count.
    let rolled_back_after_batches = ROLLBACK_AFTER.div_ceil(BATCH);
    assert_eq!(after_v2 as u64, events_after(rolled_back_after_batches));

    // No v2 output before the promotion; v2's records carry its tier; all
    // else is what v1 alone wrote.
    let samples = shadow["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 20);
    for sample in samples {
        let id = sample["event_id"].as_i64().unwrap();
        assert!(
            id as u64 <= compared,
            "sampled before the promotion: {sample}"
        );
        assert_eq!(sample["fields"][0]["field"], "engagement_tier");
        assert!(sample["fields"][0].get("serving").is_none());
    }
    for (i, (r, b)) in records.iter().zip(&baseline).enumerate() {
        let is_v2 = (first_v2..after_v2).contains(&i);
        assert_eq!(r.get("engagement_tier").is_some(), is_v2, "record {i}");
        if is_v2 {
            assert_eq!(
                r["engagement_tier"],
                tier(r["engagement_pct"].as_f64()),
                "record {i}"
            );
        }
        assert_eq!(
            without_rule_version(r),
            without_rule_version(b),
            "record {i}"
        );
    }
    assert_eq!(summary["plugin_swaps"], 1);
}

/// The service: a shadow file dropped next to the enricher runs in shadow
/// (its outputs not written), `GET /plugins/enricher/shadow` counts and
/// samples the differences, `engagement-host plugin promote` makes it serve,
/// `plugin discard` drops a shadow, and
/// `engagement-host plugin rollback` returns to v1.
#[tokio::test(flavor = "multi_thread")]
async fn service_shadow_promote_and_cli_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let v2 = common::plugin("examples/enricher-v2.wasm");
    common::loader().load(&v2, None).expect("v2 loads");
    let setup = setup(
        tmp.path(),
        &plugins,
        "bigquery_allow_schema_update = true\n",
    );
    pubsub::setup(&setup.pubsub(), Duration::from_secs(30))
        .await
        .expect("Pub/Sub emulator (scripts/emulators/start.sh pubsub)");
    let mut host = setup.start();
    wait_for(
        "the admin endpoint",
        Duration::from_secs(60),
        &setup,
        || async { setup.enricher().await.is_some() },
    )
    .await;

    // In shadow: written by v1 only, compared with v2.
    common::deploy(&v2, &plugins.join("enricher.shadow.wasm"));
    wait_for("the shadow", Duration::from_secs(60), &setup, || async {
        setup
            .enricher()
            .await
            .is_some_and(|e| e["shadow"]["version"] == "2.0.0")
    })
    .await;
    publish(&setup, &bulk_lines(0, 52)).await;
    wait_for(
        "50 events by v1",
        Duration::from_secs(60),
        &setup,
        || async { ids_by_version(&setup).await.get(V1) == Some(&50) },
    )
    .await;
    let status: Value =
        serde_json::from_str(&setup.admin_get("/plugins/enricher/shadow").await.unwrap()).unwrap();
    assert_eq!(
        status["serving"].as_str().unwrap().split(' ').next(),
        Some(V1)
    );
    let shadow = &status["shadow"];
    assert_eq!(shadow["events"], 50, "{status}");
    assert_eq!(shadow["differing"], 50, "{status}");
    assert_eq!(shadow["errors"], 0);
    assert_eq!(shadow["samples"].as_array().unwrap().len(), 20);
    assert_eq!(
        shadow["samples"][19]["fields"][0]["field"], "engagement_tier",
        "{status}"
    );
    let metrics = setup.admin_get("/metrics").await.unwrap();
    assert!(
        metrics.contains(&format!(
            "engagement_shadow_diffs_total{{plugin=\"{V2}\"}} 50"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "engagement_shadow_events_total{{plugin=\"{V2}\"}} 50"
    )));
    assert_eq!(ids_by_version(&setup).await.len(), 1, "v2 wrote nothing");

    // Promoted by command: the next events are v2's; the shadow file
    // becomes the serving file.
    let out = common::bin()
        .args([
            "plugin",
            "promote",
            "--admin",
            &setup.admin,
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(V2));
    assert!(setup.enricher().await.unwrap()["shadow"].is_null());
    assert!(!plugins.join("enricher.shadow.wasm").exists());
    assert_eq!(
        std::fs::read(plugins.join("enricher.wasm")).unwrap(),
        std::fs::read(&v2).unwrap()
    );
    publish(&setup, &bulk_lines(52, 102)).await;
    wait_for(
        "50 events by v2",
        Duration::from_secs(60),
        &setup,
        || async { ids_by_version(&setup).await.get(V2) == Some(&50) },
    )
    .await;

    // The CLI rollback: v1 again, at once.
    let out = common::bin()
        .args(["plugin", "rollback", "enricher", "--admin", &setup.admin])
        .args(["--token", TOKEN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(V1));
    assert_eq!(setup.enricher().await.unwrap()["version"], "1.0.0");
    publish(&setup, &bulk_lines(102, 152)).await;
    wait_for(
        "50 more events by v1",
        Duration::from_secs(60),
        &setup,
        || async { ids_by_version(&setup).await.get(V1) == Some(&100) },
    )
    .await;
    assert_eq!(ids_by_version(&setup).await.get(V2), Some(&50));
    // Without the token, refused.
    let out = common::bin()
        .args(["plugin", "rollback", "--admin", &setup.admin])
        .env_remove("ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());

    // A shadow can also be dropped: `plugin discard`, and v1 serves on.
    common::deploy(&v2, &plugins.join("enricher.shadow.wasm"));
    wait_for(
        "the shadow again",
        Duration::from_secs(60),
        &setup,
        || async {
            setup
                .enricher()
                .await
                .is_some_and(|e| e["shadow"]["version"] == "2.0.0")
        },
    )
    .await;
    let out = common::bin()
        .args([
            "plugin",
            "discard",
            "--admin",
            &setup.admin,
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let enricher = setup.enricher().await.unwrap();
    assert!(enricher["shadow"].is_null(), "{enricher}");
    assert_eq!(enricher["version"], "1.0.0");

    let status = sigterm(&mut host);
    assert!(status.success(), "{}", setup.log());
}
