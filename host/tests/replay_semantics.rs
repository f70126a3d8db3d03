//! `replay` end to end with the real plugins: schemas on and off give the
//! same records; an event that arrives before its content waits for it; one
//! whose content never comes is emitted with `content_missing`; updates,
//! deletes (key only) and redelivered old versions behave.

mod common;

use serde_json::{Value, json};

/// Records without the fields that legitimately differ between two captures.
fn comparable(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let map = r.as_object_mut().unwrap();
            map.remove("source_lsn");
            map.remove("source_ts_ms");
            r
        })
        .collect()
}

fn run(lines: &[Value], extra: &[&str]) -> (Vec<Value>, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let input = tmp.path().join("in.ndjson");
    common::write_ndjson(&input, lines);
    let output = tmp.path().join("out.ndjson");
    let out = common::replay(&plugins, &input, &output, extra);
    (common::read_ndjson(&output), common::summary(&out))
}

fn ids_and_ops(records: &[Value]) -> Vec<(i64, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["op"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn schemas_on_and_off_replay_to_the_same_records() {
    let (off, _) = run(&common::fixture_lines("schemas_off.ndjson"), &[]);
    let (on, _) = run(&common::fixture_lines("schemas_on.ndjson"), &[]);
    assert_eq!(comparable(&off), comparable(&on));
    assert_eq!(
        ids_and_ops(&off),
        vec![
            (1, "c".into()),
            (2, "c".into()),
            (3, "c".into()),
            (1, "u".into()),
            (2, "d".into()),
            (1, "u".into()),
            (1, "d".into()),
        ]
    );
    // Rules, from SEED.md: 45000 ms of a 3600 s podcast.
    assert_eq!(off[0]["engagement_seconds"], json!(45.0));
    assert_eq!(off[0]["engagement_pct"], json!(1.25));
    assert_eq!(off[0]["content_type"], "podcast");
    // The update after the content's length changed uses the new length.
    assert_eq!(off[3]["length_seconds"], 3725);
    assert_eq!(off[3]["engagement_pct"], json!(1.61));
    // Newsletter: no length, no percentage.
    assert_eq!(off[1]["engagement_pct"], Value::Null);
    // A key-only delete still names its content (from the state).
    assert_eq!(off[4]["content_id"], "d4e5f6a7-b8c9-4d0e-9f10-223344556677");
    assert!(off.iter().all(|r| r["content_missing"] == false));
    assert!(
        off.iter()
            .all(|r| r["decoder_sha256"].as_str().unwrap().len() == 64)
    );
}

/// The fixture with the contents moved after the events that need them.
fn events_first() -> Vec<Value> {
    let lines = common::fixture_lines("schemas_off.ndjson");
    let (content, events): (Vec<Value>, Vec<Value>) = lines
        .into_iter()
        .partition(|l| l["destination"] == "pgcdc.public.content");
    events.into_iter().take(3).chain(content).collect()
}

#[test]
fn an_event_before_its_content_is_enriched_when_the_content_arrives() {
    let (records, summary) = run(&events_first(), &[]);
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|r| r["content_missing"] == false),
        "{records:#?}"
    );
    assert_eq!(records[0]["engagement_pct"], json!(1.25));
    assert_eq!(summary["state"]["pending_parked"], 3);
    assert_eq!(summary["content_missing"], 0);
}

#[test]
fn an_event_whose_content_never_arrives_comes_out_content_missing() {
    let lines: Vec<Value> = events_first().into_iter().take(3).collect();
    let (records, summary) = run(&lines, &[]);
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!(r["content_missing"], true);
        assert_eq!(r["content_type"], Value::Null);
        assert_eq!(r["engagement_pct"], Value::Null);
    }
    // Seconds do not need the content.
    assert_eq!(records[0]["engagement_seconds"], json!(45.0));
    assert_eq!(summary["content_missing"], 3);
    assert_eq!(summary["pending_left"], 0);
}

#[test]
fn the_pending_ttl_runs_on_source_time() {
    // Event 1 waits; 11 s of source time later (another event's timestamp)
    // it is given up on before its content arrives.
    let mut lines = events_first();
    let mut late: Value = serde_json::from_str(lines[1]["value"].as_str().unwrap()).unwrap();
    late["source"]["ts_ms"] = json!(late["source"]["ts_ms"].as_i64().unwrap() + 11_000);
    lines[1]["value"] = json!(late.to_string());
    let (records, _) = run(&lines, &["--batch-size", "1"]);
    let first = records.iter().find(|r| r["id"] == 1).unwrap();
    assert_eq!(first["content_missing"], true, "waited past the TTL");
    let third = records.iter().find(|r| r["id"] == 3).unwrap();
    assert_eq!(
        third["content_missing"], false,
        "still within the TTL when its content came"
    );
}

#[test]
fn a_redelivered_old_version_does_not_overwrite_a_newer_one() {
    let lines = common::fixture_lines("schemas_off.ndjson");
    // Deliver everything, then the first insert of event 1 and of the
    // podcast content again (Pub/Sub redelivery after a lost ack).
    let mut again = lines.clone();
    again.push(lines[2].clone());
    again.push(lines[5].clone());
    let (records, summary) = run(&again, &[]);
    assert_eq!(records.len(), 7, "the stale redeliveries emit nothing");
    assert_eq!(summary["state"]["stale_ignored"], 2);
}

#[test]
fn an_event_moved_to_another_content_removes_its_old_key() {
    let lines = common::fixture_lines("schemas_off.ndjson");
    let mut moved: Value = serde_json::from_str(lines[9]["value"].as_str().unwrap()).unwrap();
    moved["after"]["content_id"] = json!("e5f6a7b8-c9d0-4e1f-a021-334455667788");
    let mut input: Vec<Value> = lines[..9].to_vec();
    let mut line = lines[9].clone();
    line["value"] = json!(moved.to_string());
    input.push(line);
    let (records, _) = run(&input, &[]);
    let last_two = &records[records.len() - 2..];
    assert_eq!(last_two[0]["op"], "u");
    assert_eq!(
        last_two[0]["content_id"],
        "c3d4e5f6-a7b8-4c9d-8e0f-112233445566"
    );
    assert_eq!(
        last_two[0]["enricher_plugin"],
        Value::Null,
        "a delete of the old key"
    );
    assert_eq!(
        last_two[1]["content_id"],
        "e5f6a7b8-c9d0-4e1f-a021-334455667788"
    );
    assert_eq!(last_two[1]["content_type"], "video");
}
