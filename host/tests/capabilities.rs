//! Capabilities: a rule that imports `wasi:filesystem` or `wasi:sockets` is
//! refused by `plugin check` and by the hot-swap path, with a message naming
//! the import, while the serving version stays; a grant makes it load.
//!
//! The plugins are `plugins/examples/fs-enricher` (std::fs) and
//! `plugins/examples/net-enricher` (std::net::TcpStream).

mod common;

use std::path::Path;
use std::thread;
use std::time::Duration;

use engagement_host::wasm::{
    ArtifactCache, PluginEngine, PluginLimits, PluginLoader, PluginSet, ReloadOutcome,
};

fn fs_enricher() -> std::path::PathBuf {
    common::plugin("examples/fs-enricher.wasm")
}

fn net_enricher() -> std::path::PathBuf {
    common::plugin("examples/net-enricher.wasm")
}

/// `plugin check FILE [args]`: exit code and stdout.
fn check(file: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = common::bin()
        .args(["plugin", "check"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn loader_granting(grants: &[&str]) -> PluginLoader {
    PluginLoader {
        engine: PluginEngine::new(PluginLimits::default()).expect("engine"),
        cache: Some(ArtifactCache::new(common::cache_dir())),
        grants: grants.iter().map(|g| g.to_string()).collect(),
    }
}

#[test]
fn plugin_check_refuses_filesystem_and_sockets_naming_the_import() {
    let (code, text) = check(&fs_enricher(), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not a valid plugin"), "{text}");
    assert!(
        text.contains("`wasi:filesystem/types@0.2.6`")
            && text.contains("`wasi:filesystem/preopens@0.2.6`"),
        "{text}"
    );
    assert!(text.contains("--grant wasi:filesystem"), "{text}");
    // `wasi:clocks/wall-clock` comes only for filesystem's `datetime` type:
    // it brings no function, so it is not a capability of its own.
    assert!(!text.contains("wall-clock"), "{text}");

    let (code, json) = check(&net_enricher(), &["--json"]);
    assert_eq!(code, Some(1), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["valid"], false);
    let reason = report["reason"].as_str().unwrap();
    for import in [
        "`wasi:sockets/tcp@0.2.6`",
        "`wasi:sockets/tcp-create-socket@0.2.6`",
        "`wasi:sockets/ip-name-lookup@0.2.6`",
    ] {
        assert!(reason.contains(import), "{import} in {reason}");
    }
    assert!(reason.contains("--grant wasi:sockets"), "{reason}");
}

#[test]
fn plugin_check_with_a_grant_loads_the_rule() {
    let (code, json) = check(&fs_enricher(), &["--json", "--grant", "wasi:filesystem"]);
    assert_eq!(code, Some(0), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["name"], "fs-enricher");
    let imports: Vec<&str> = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        imports.contains(&"wasi:filesystem/preopens@0.2.6"),
        "{imports:?}"
    );

    // A grant for one capability does not cover another.
    let (code, text) = check(&net_enricher(), &["--grant", "wasi:filesystem"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("wasi:sockets/tcp@0.2.6"), "{text}");
    assert!(!text.contains("wasi:filesystem/"), "granted: {text}");
    let (code, text) = check(
        &net_enricher(),
        &[
            "--grant",
            "wasi:sockets",
            "--grant",
            "wasi:filesystem",
            "--grant",
            "wasi:clocks",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_swap_to_a_capability_is_refused_and_the_old_version_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::plugin_dir(tmp.path());
    let set = PluginSet::load(
        common::loader(),
        dir.join("decoder.wasm"),
        dir.join("enricher.wasm"),
    )
    .unwrap();
    let v1 = set.enricher.current().id.clone();
    for (file, import) in [
        (fs_enricher(), "wasi:filesystem/preopens@0.2.6"),
        (net_enricher(), "wasi:sockets/tcp@0.2.6"),
    ] {
        common::deploy(&file, set.enricher.path());
        match set.enricher.reload(&set.loader) {
            ReloadOutcome::Rejected { reason } => {
                assert!(reason.contains(import), "{reason}");
                assert!(reason.contains("not granted"), "{reason}");
            }
            other => panic!("{}: {other:?}", file.display()),
        }
        assert_eq!(set.enricher.current().id, v1, "v1 keeps serving");
    }
    assert_eq!(set.enricher.swaps(), 0);
}

#[test]
fn a_granted_capability_swaps_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::plugin_dir(tmp.path());
    // As `plugin_grants = ["wasi:filesystem"]` in the service's config.
    let set = PluginSet::load(
        loader_granting(&["wasi:filesystem"]),
        dir.join("decoder.wasm"),
        dir.join("enricher.wasm"),
    )
    .unwrap();
    common::deploy(&fs_enricher(), set.enricher.path());
    assert!(
        matches!(
            set.enricher.reload(&set.loader),
            ReloadOutcome::Swapped { .. }
        ),
        "granted"
    );
    assert_eq!(set.enricher.current().id.name, "fs-enricher");
    // The filesystem grant does not let the sockets rule in.
    common::deploy(&net_enricher(), set.enricher.path());
    assert!(matches!(
        set.enricher.reload(&set.loader),
        ReloadOutcome::Rejected { .. }
    ));
    assert_eq!(set.enricher.current().id.name, "fs-enricher");
}

/// The whole path of a deploy: the watcher of a running replay sees the
/// file, refuses it with a log line naming the import, v1 serves every
/// event; with `--grant` the same drop swaps in and the rule works (no
/// directory is preopened, so its read fails and it uses its default).
#[test]
fn dropped_into_a_running_replay_refused_without_grant_served_with_it() {
    let input = common::fixture("bulk_schemas_off.ndjson.gz");
    for grant in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let plugins = common::plugin_dir(tmp.path());
        let output = tmp.path().join("out.ndjson");
        let enricher = plugins.join("enricher.wasm");
        let fs = fs_enricher();
        // Compiled once into the shared cache: the swap does not wait on it.
        loader_granting(&["wasi:filesystem"])
            .load(&fs, None)
            .expect("fs-enricher loads with the grant");
        let dropper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(1500));
            common::deploy(&fs, &enricher);
        });
        let mut args = vec!["--rate", "16000", "--batch-size", "256"];
        if grant {
            args.extend(["--grant", "wasi:filesystem"]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_engagement-host"))
            .env("RUST_LOG", "warn")
            .arg("replay")
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("--plugins")
            .arg(&plugins)
            .arg("--cache-dir")
            .arg(common::cache_dir())
            .arg("--summary-json")
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success());
        dropper.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary = common::summary(&out);
        let records = common::read_ndjson(&output);
        assert_eq!(records.len(), 80_000, "{summary}");
        let by_fs = records
            .iter()
            .filter(|r| r["enricher_plugin"] == "fs-enricher@0.1.0")
            .count();
        if grant {
            assert_eq!(summary["plugin_swaps"], 1, "{stderr}");
            assert!(by_fs > 0 && by_fs < 80_000, "{by_fs}");
            let r = records.last().unwrap();
            assert_eq!(r["enricher_plugin"], "fs-enricher@0.1.0");
            let pct = r["engagement_pct"].as_f64();
            assert_eq!(r["complete"].as_bool(), pct.map(|p| p >= 90.0), "{r}");
        } else {
            assert_eq!(summary["plugin_swaps"], 0, "{stderr}");
            assert_eq!(by_fs, 0);
            assert!(
                stderr.contains("plugin refused") && stderr.contains("wasi:filesystem/types@0.2.6"),
                "{stderr}"
            );
        }
    }
}
