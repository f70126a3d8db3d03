//! Hot swap while events flow: v1 -> v2 (v2 adds a field) mid-stream, every
//! event out exactly once, v1 before the swap and v2 after it by the
//! recorded version. Bad files never replace the serving version, and a
//! version that keeps failing is rolled back.

mod common;

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use engagement_host::wasm::{PluginKind, PluginSet, ReloadOutcome};
use serde_json::Value;

/// The bulk fixture: 2 contents then 80,000 events.
fn bulk() -> std::path::PathBuf {
    common::fixture("bulk_schemas_off.ndjson.gz")
}

fn versions(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["enricher_plugin"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn swap_v1_to_v2_under_load_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let output = tmp.path().join("out.ndjson");
    let enricher = plugins.join("enricher.wasm");
    let v2 = common::plugin("examples/enricher-v2.wasm");
    // Compile v2 into the shared artifact cache first, so the swap does not
    // wait on a debug-build Cranelift on a loaded machine.
    common::loader().load(&v2, None).expect("v2 loads");

    let deployer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1500));
        common::deploy(&v2, &enricher);
    });
    // ~10 s at this rate: the swap lands well inside the stream.
    let out = common::replay(
        &plugins,
        &bulk(),
        &output,
        &["--rate", "8000", "--batch-size", "256"],
    );
    deployer.join().unwrap();
    let summary = common::summary(&out);

    let records = common::read_ndjson(&output);
    assert_eq!(records.len(), 80_000, "{summary}");
    let ids: HashSet<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 80_000, "no event doubled");

    let versions = versions(&records);
    let first_v2 = versions
        .iter()
        .position(|v| v == "engagement-enricher@2.0.0")
        .expect("v2 served part of the stream");
    assert!(first_v2 > 0, "v1 served the start");
    assert!(
        versions[..first_v2]
            .iter()
            .all(|v| v == "engagement-enricher@1.0.0")
    );
    assert!(
        versions[first_v2..]
            .iter()
            .all(|v| v == "engagement-enricher@2.0.0"),
        "no going back after the swap"
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.get("engagement_tier").is_some(),
            i >= first_v2,
            "record {i}: the field comes with v2 only"
        );
        assert!(
            r.get("engagement_seconds").is_some(),
            "record {i}: enriched"
        );
    }
    assert_eq!(summary["plugin_swaps"], 1);
}

#[test]
fn bad_files_never_replace_the_serving_version() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::plugin_dir(tmp.path());
    let set = PluginSet::load(
        common::loader(),
        dir.join("decoder.wasm"),
        dir.join("enricher.wasm"),
    )
    .unwrap();
    let serving = set.enricher.current().id.clone();
    let slot = &set.enricher;

    type Write = Box<dyn Fn(&std::path::Path)>;
    let cases: Vec<(&str, Write, &str)> = vec![
        (
            "garbage",
            Box::new(|p| std::fs::write(p, b"\0asm garbage that is not a component").unwrap()),
            "not a valid WebAssembly component",
        ),
        (
            "text file",
            Box::new(|p| std::fs::write(p, b"hello").unwrap()),
            "no `\\0asm` header",
        ),
        (
            "empty file",
            Box::new(|p| std::fs::write(p, b"").unwrap()),
            "no `\\0asm` header",
        ),
        (
            "wrong world",
            Box::new(|p| common::deploy(&common::decoder_wasm(), p)),
            "decoder plugin where an enricher was expected",
        ),
        (
            "traps on every call",
            Box::new(|p| common::deploy(&common::plugin("examples/always-trap-enricher.wasm"), p)),
            "failed validation: plugin trapped",
        ),
    ];
    for (name, write, reason) in cases {
        write(slot.path());
        match slot.reload(&set.loader) {
            ReloadOutcome::Rejected { reason: why } => {
                assert!(why.contains(reason), "{name}: {why}")
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            slot.current().id,
            serving,
            "{name}: the serving version stays"
        );
    }
    // Missing file: also refused, version stays.
    std::fs::remove_file(slot.path()).unwrap();
    assert!(matches!(
        slot.reload(&set.loader),
        ReloadOutcome::Rejected { .. }
    ));
    assert_eq!(slot.current().id, serving);
    assert_eq!(slot.swaps(), 0);

    // And a good one still goes in afterwards.
    common::deploy(&common::plugin("examples/enricher-v2.wasm"), slot.path());
    assert!(matches!(
        slot.reload(&set.loader),
        ReloadOutcome::Swapped { .. }
    ));
    assert_eq!(slot.current().id.version, "2.0.0");
    assert_eq!(set.slot(PluginKind::Decoder).swaps(), 0);
}

#[test]
fn bad_files_dropped_during_a_replay_leave_v1_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let output = tmp.path().join("out.ndjson");
    let enricher = plugins.join("enricher.wasm");
    let dropper = thread::spawn(move || {
        for bad in [
            common::plugin("plugins/decoder.wasm"),
            common::plugin("examples/always-trap-enricher.wasm"),
        ] {
            thread::sleep(Duration::from_millis(800));
            common::deploy(&bad, &enricher);
        }
        thread::sleep(Duration::from_millis(800));
        std::fs::write(&enricher, b"garbage").unwrap();
    });
    let out = common::replay(&plugins, &bulk(), &output, &["--rate", "20000"]);
    dropper.join().unwrap();
    let records = common::read_ndjson(&output);
    assert_eq!(records.len(), 80_000);
    assert!(
        versions(&records)
            .iter()
            .all(|v| v == "engagement-enricher@1.0.0")
    );
    assert_eq!(common::summary(&out)["plugin_swaps"], 0);
}

#[test]
fn a_version_that_keeps_failing_is_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::plugin_dir(tmp.path());
    let set = PluginSet::load(
        common::loader(),
        dir.join("decoder.wasm"),
        dir.join("enricher.wasm"),
    )
    .unwrap();
    let v1 = set.enricher.current();
    // The faulty plugin passes validation (its sample is well-behaved) ...
    common::deploy(
        &common::plugin("examples/faulty-enricher.wasm"),
        set.enricher.path(),
    );
    assert!(matches!(
        set.enricher.reload(&set.loader),
        ReloadOutcome::Swapped { .. }
    ));
    let faulty = set.enricher.current();
    assert_eq!(faulty.id.name, "faulty-enricher");
    // ... then fails call after call on live traffic.
    for i in 1..engagement_host::wasm::registry::ROLLBACK_AFTER_FAILURES {
        assert!(!set.enricher.report_failure(&faulty), "not yet after {i}");
    }
    assert!(set.enricher.report_failure(&faulty));
    assert_eq!(set.enricher.current().id, v1.id, "back to v1");
    // The same file is not taken again.
    match set.enricher.reload(&set.loader) {
        ReloadOutcome::Rejected { reason } => assert!(reason.contains("rolled back"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
