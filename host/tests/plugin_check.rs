//! `engagement-host plugin check`: what a component is, or exactly why it is
//! not a plugin, with the exit status saying which.

mod common;

fn check(file: &std::path::Path, json: bool) -> (bool, String) {
    let mut cmd = common::bin();
    cmd.args(["plugin", "check"]).arg(file);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_valid_decoder_and_enricher() {
    let (ok, text) = check(&common::decoder_wasm(), false);
    assert!(ok, "{text}");
    assert!(text.contains("valid decoder plugin"), "{text}");
    assert!(text.contains("debezium-decoder"));

    let (ok, json) = check(&common::enricher_wasm(), true);
    assert!(ok);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["kind"], "enricher");
    assert_eq!(report["name"], "engagement-enricher");
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report["output_fields"][3]["name"], "engagement_pct");
    assert_eq!(report["output_fields"][3]["kind"], "float");
    assert!(
        report["imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !i.as_str().unwrap().starts_with("wasi:filesystem"))
    );
}

#[test]
fn invalid_files_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm").unwrap();
    let (ok, text) = check(&garbage, false);
    assert!(!ok);
    assert!(text.contains("not a WebAssembly file"), "{text}");

    let (ok, json) = check(&common::plugin("examples/always-trap-enricher.wasm"), true);
    assert!(!ok);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["valid"], false);
    assert!(
        report["reason"].as_str().unwrap().contains("trapped"),
        "{report}"
    );

    let missing = tmp.path().join("missing.wasm");
    let out = common::bin()
        .args(["plugin", "check"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
