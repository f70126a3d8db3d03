//! State survives a restart: stop a replay half way, start again with the
//! same state directory, and content seen before the stop still enriches
//! events after it; events still waiting are kept too.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn content_seen_before_a_restart_enriches_events_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let state = tmp.path().join("state");
    let lines = common::fixture_lines("schemas_off.ndjson");
    // First half: the contents (and the first events); second half: the rest.
    let first = tmp.path().join("first.ndjson");
    let second = tmp.path().join("second.ndjson");
    common::write_ndjson(&first, &lines[..6]);
    common::write_ndjson(&second, &lines[6..]);

    let out1 = tmp.path().join("out1.ndjson");
    let out2 = tmp.path().join("out2.ndjson");
    let state_arg = ["--state-dir", state.to_str().unwrap()];
    common::replay(&plugins, &first, &out1, &state_arg);
    common::replay(&plugins, &second, &out2, &state_arg);
    let records = common::read_ndjson(&out2);
    assert_eq!(records.len(), 6);
    assert!(
        records.iter().all(|r| r["content_missing"] == false),
        "{records:#?}"
    );
    // The update of event 1 uses the podcast's length from the first half.
    let update = records.iter().find(|r| r["op"] == "u").unwrap();
    assert_eq!(update["length_seconds"], 3725);
    // The key-only delete of event 2 finds its content id in the saved index.
    let delete = records
        .iter()
        .find(|r| r["op"] == "d" && r["id"] == 2)
        .unwrap();
    assert_eq!(delete["content_id"], "d4e5f6a7-b8c9-4d0e-9f10-223344556677");
}

#[test]
fn a_killed_replay_keeps_what_it_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let state = tmp.path().join("state");
    // The bulk fixture starts with its two contents; kill the replay after it
    // has written some records, then replay only later events.
    let output = tmp.path().join("out.ndjson");
    let mut child = common::bin()
        .args(["replay", "--input"])
        .arg(common::fixture("bulk_schemas_off.ndjson.gz"))
        .arg("--output")
        .arg(&output)
        .arg("--plugins")
        .arg(&plugins)
        .arg("--cache-dir")
        .arg(common::cache_dir())
        .args(["--rate", "2000", "--batch-size", "100", "--state-dir"])
        .arg(&state)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0) < 100_000 {
        assert!(Instant::now() < deadline, "replay produced nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no flush, no clean shutdown.
    child.wait().unwrap();

    // Events only (no content in this input): they must find the content
    // the killed run stored.
    let gz = std::fs::File::open(common::fixture("bulk_schemas_off.ndjson.gz")).unwrap();
    let reader = std::io::BufRead::lines(std::io::BufReader::new(flate2::read::GzDecoder::new(gz)));
    let tail: Vec<Value> = reader
        .skip(79_000)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(
        tail.iter()
            .all(|l| l["destination"] == "pgcdc.public.engagement_events")
    );
    let rest = tmp.path().join("rest.ndjson");
    common::write_ndjson(&rest, &tail);
    let out2 = tmp.path().join("out2.ndjson");
    common::replay(
        &plugins,
        &rest,
        &out2,
        &["--state-dir", state.to_str().unwrap()],
    );
    let records = common::read_ndjson(&out2);
    assert_eq!(records.len(), tail.len());
    assert!(records.iter().all(|r| r["content_missing"] == false));
}
