//! The plugin authors' kit, end to end with real builds: the Python
//! enricher (`plugins/engagement-enricher-py`, built by
//! `scripts/build-plugins.sh` into `dist/examples/enricher-py.wasm`), the
//! `plugin test` bench, and the `plugin new` scaffolds in both languages.
//!
//! Compiling an ~18 MB Python component takes a while (minutes in a debug
//! build of the host), so every run goes through the shared
//! precompiled-artifact cache of the tests, and the tests that load the
//! Python enricher take turns so that it is compiled once per cache.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Held by the tests that load `enricher-py.wasm`: the first compiles it
/// into the cache, the others find it there.
static PYTHON_ENRICHER: Mutex<()> = Mutex::new(());

fn python_enricher() -> PathBuf {
    common::plugin("examples/enricher-py.wasm")
}

fn rust_cases() -> PathBuf {
    common::repo_root().join("plugins/engagement-enricher/cases.ndjson")
}

/// The componentize-py that `scripts/build-plugins.sh` installs.
fn componentize_py() -> PathBuf {
    let tool = common::repo_root().join(".venv/componentize-py/bin/componentize-py");
    assert!(
        tool.exists(),
        "{} is missing: run scripts/build-plugins.sh (it installs componentize-py)",
        tool.display()
    );
    tool
}

/// `engagement-host plugin test FILE --cases CASES` with the tests' cache.
fn plugin_test(file: &Path, cases: &Path) -> Output {
    plugin_test_cached_in(file, cases, &common::cache_dir())
}

fn plugin_test_cached_in(file: &Path, cases: &Path, cache: &Path) -> Output {
    common::bin()
        .args(["plugin", "test"])
        .arg(file)
        .arg("--cases")
        .arg(cases)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .expect("run engagement-host plugin test")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command; panics with its output when it fails.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn python_enricher_passes_every_case_of_the_rust_one() {
    let _turn = PYTHON_ENRICHER.lock().unwrap_or_else(|e| e.into_inner());
    let cases = common::read_ndjson(&rust_cases());
    let out = plugin_test(&python_enricher(), &rust_cases());
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with(&format!(
            "ok: {} passed, 0 failed (engagement-enricher-py@1.0.0",
            cases.len()
        )),
        "{stdout}"
    );
}

#[test]
fn plugin_test_fails_with_a_diff_on_wrong_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = common::read_ndjson(&rust_cases());
    // Case 1 is a tie: 1.5 / 1200 * 100 is exactly 0.125, which Python
    // rounds to 0.12 (to even); a round-half-up oracle would say 0.13.
    assert_eq!(cases[0]["name"], "tie_pct_1500ms_of_1200s");
    assert_eq!(cases[0]["expected"]["engagement_pct"], 0.12);
    cases[0]["expected"]["engagement_pct"] = serde_json::json!(0.13);
    // Case 2: one ulp away, and an int where the rule gives a float.
    cases[1]["expected"]["engagement_seconds"] = serde_json::json!(0.12500000000000003);
    cases[1]["expected"]["length_seconds"] = serde_json::json!(1200.0);
    // Case 3: a field the rule does not return.
    cases[2]["expected"]["engagement_tier"] = serde_json::json!("sampled");
    let wrong = tmp.path().join("wrong.ndjson");
    common::write_ndjson(&wrong, &cases);

    let out = plugin_test(&common::enricher_wasm(), &wrong);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let total = cases.len();
    for want in [
        format!("FAIL case 1 of {total} (line 1): tie_pct_1500ms_of_1200s"),
        "    event:   {\"duration_ms\": 1500}".to_owned(),
        "    content: {\"content_type\": \"video\", \"length_seconds\": 1200}".to_owned(),
        "float 0.13 (bits 0x3fc0a3d70a3d70a4)".to_owned(),
        "float 0.12 (bits 0x3fbeb851eb851eb8)".to_owned(),
        format!("FAIL case 2 of {total} (line 2): seconds_125ms"),
        "float 0.12500000000000003 (bits 0x3fc0000000000001)".to_owned(),
        "float 0.125 (bits 0x3fc0000000000000)".to_owned(),
        "float 1200.0".to_owned(),
        "int 1200".to_owned(),
        "engagement_tier".to_owned(),
        "(not returned)".to_owned(),
        format!(
            "FAILED: {} passed, 3 failed (engagement-enricher@1.0.0",
            total - 3
        ),
    ] {
        assert!(stdout.contains(&want), "missing {want:?} in:\n{stdout}");
    }
    // The expected/got table of case 1, in that order.
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("engagement_pct"))
        .expect("a diff line for engagement_pct");
    let (expected_at, got_at) = (line.find("0.13").unwrap(), line.find("0.12").unwrap());
    assert!(expected_at < got_at, "expected before got: {line}");
    assert!(
        stdout.lines().last().unwrap().starts_with("FAILED:"),
        "{stdout}"
    );
}

#[test]
fn plugin_test_refuses_what_is_not_an_enricher() {
    let tmp = tempfile::tempdir().unwrap();
    let out = plugin_test(&common::decoder_wasm(), &rust_cases());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("where an enricher was expected"),
        "{}",
        text(&out.stdout)
    );

    let bad_cases = tmp.path().join("bad.ndjson");
    std::fs::write(&bad_cases, "{\"event\": {}, \"content\": null}\n").unwrap();
    let out = plugin_test(&common::enricher_wasm(), &bad_cases);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 1: a case needs `expected`"),
        "{}",
        text(&out.stderr)
    );
}

/// `plugin new` into a fresh directory under `tmp`.
fn scaffold(tmp: &Path, lang: &str, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    let out = run_ok(
        common::bin()
            .args(["plugin", "new", "--lang", lang, name, "--dir"])
            .arg(&dir),
        "plugin new",
    );
    assert!(
        text(&out.stdout).contains("build.sh"),
        "{}",
        text(&out.stdout)
    );
    for file in [
        "build.sh",
        "README.md",
        "cases.ndjson",
        "wit/enricher.wit",
        "wit/types.wit",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    dir
}

/// Builds a scaffolded rule with its own build script and runs its golden
/// cases through `plugin test`, which loads it as the host does: with no
/// capability granted, so an import the policy refuses would fail it.
fn build_and_test(dir: &Path, name: &str, build: &mut Command) -> PathBuf {
    run_ok(build.current_dir(dir), &format!("{name}/build.sh"));
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(
        wasm.is_file(),
        "build.sh did not produce {}",
        wasm.display()
    );

    let golden = common::read_ndjson(&dir.join("cases.ndjson"));
    // A cache of its own, dropped with the directory: a componentize-py
    // build is a new file every time, and its precompiled copy is ~35 MB.
    let out = plugin_test_cached_in(&wasm, &dir.join("cases.ndjson"), &dir.join("cache"));
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "ok: {} passed, 0 failed ({name}@0.1.0",
            golden.len()
        )),
        "{stdout}"
    );
    wasm
}

#[test]
fn rust_scaffold_builds_and_passes_its_golden_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "kit-rust-rule";
    let dir = scaffold(tmp.path(), "rust", name);
    assert!(
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .contains("[workspace]")
    );
    let mut build = Command::new(dir.join("build.sh"));
    // One target dir for every run of this test: only the first compiles
    // wit-bindgen.
    build.env(
        "CARGO_TARGET_DIR",
        common::repo_root().join("target/plugin-kit-scaffold"),
    );
    let wasm = build_and_test(&dir, name, &mut build);
    // `plugin check` compiles without a cache: cheap for a Rust component
    // (the 18 MB of a Python one take minutes in a debug build).
    let check = run_ok(
        common::bin().args(["plugin", "check"]).arg(&wasm),
        "plugin check",
    );
    assert!(
        text(&check.stdout).contains(&format!("name:        {name}")),
        "{}",
        text(&check.stdout)
    );
}

#[test]
fn python_scaffold_builds_and_passes_its_golden_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "kit-python-rule";
    let dir = scaffold(tmp.path(), "python", name);
    let mut build = Command::new(dir.join("build.sh"));
    build.env("COMPONENTIZE_PY", componentize_py());
    build_and_test(&dir, name, &mut build);
}

/// Records without the fields naming the enricher (its name, version and
/// file sha256), as JSON text so floats compare by their shortest exact
/// representation.
fn records_without_enricher_id(path: &Path) -> Vec<String> {
    common::read_ndjson(path)
        .into_iter()
        .map(|mut record| {
            let object = record.as_object_mut().expect("a record is an object");
            for key in ["enricher_plugin", "enricher_sha256", "enricher_version"] {
                object.remove(key);
            }
            record.to_string()
        })
        .collect()
}

#[test]
fn python_enricher_equals_the_rust_one_on_the_bulk_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let rust_dir = common::plugin_dir(&tmp.path().join("rust"));
    let python_dir = common::plugin_dir(&tmp.path().join("python"));
    std::fs::copy(python_enricher(), python_dir.join("enricher.wasm")).unwrap();

    let input = common::fixture("bulk_schemas_off.ndjson.gz");
    let replay = |dir: &Path, name: &str| {
        let output = tmp.path().join(format!("{name}.ndjson"));
        let dead = tmp.path().join(format!("{name}-dead.ndjson"));
        let out = common::replay(
            dir,
            &input,
            &output,
            &["--no-watch", "--dead-letters", dead.to_str().unwrap()],
        );
        (output, common::summary(&out))
    };
    let (rust_out, rust_summary) = replay(&rust_dir, "rust");
    let (python_out, python_summary) = {
        let _turn = PYTHON_ENRICHER.lock().unwrap_or_else(|e| e.into_inner());
        replay(&python_dir, "python")
    };

    for key in [
        "messages",
        "records",
        "upserts",
        "deletes",
        "content_missing",
        "dead_letters",
    ] {
        assert_eq!(rust_summary[key], python_summary[key], "summary {key}");
    }
    // 2 contents, then 80,000 events.
    assert_eq!(rust_summary["messages"], 80_002);
    assert_eq!(rust_summary["records"], 80_000);

    let python_text = std::fs::read_to_string(&python_out).unwrap();
    assert!(python_text.contains("\"enricher_plugin\":\"engagement-enricher-py@1.0.0\""));
    let rust_records = records_without_enricher_id(&rust_out);
    let python_records = records_without_enricher_id(&python_out);
    assert_eq!(rust_records.len(), python_records.len());
    assert!(
        rust_records.len() > 40_000,
        "{} records",
        rust_records.len()
    );
    let differing: Vec<(usize, &String, &String)> = rust_records
        .iter()
        .zip(&python_records)
        .enumerate()
        .filter(|(_, (r, p))| r != p)
        .map(|(i, (r, p))| (i + 1, r, p))
        .collect();
    assert!(
        differing.is_empty(),
        "{} of {} records differ; first: line {}\n  rust:   {}\n  python: {}",
        differing.len(),
        rust_records.len(),
        differing[0].0,
        differing[0].1,
        differing[0].2
    );
}
