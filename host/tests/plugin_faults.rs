//! A plugin that loops forever is stopped by the deadline, one that
//! allocates without bound by the memory cap, one that panics traps: each
//! is that event's dead letter with the reason, and the host carries on
//! with the next events on a fresh instance.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

/// An engagement insert whose `device` tells the faulty plugin what to do.
fn event(id: i64, device: &str, content: &str) -> serde_json::Value {
    let value = json!({
        "before": null,
        "after": {"id": id, "content_id": content, "user_id": "u", "event_type": "play",
                  "event_ts": "2024-05-01T12:05:00.000000Z", "duration_ms": 1500, "device": device,
                  "raw_payload": null},
        "source": {"schema": "public", "table": "engagement_events", "lsn": 1000 + id, "ts_ms": 1000 + id},
        "op": "c"
    });
    json!({"destination": "pgcdc.public.engagement_events", "key": json!({"id": id}).to_string(),
           "value": value.to_string()})
}

fn content(id: &str) -> serde_json::Value {
    let value = json!({
        "before": null,
        "after": {"id": id, "slug": id, "title": "T", "content_type": "video", "length_seconds": 1200,
                  "publish_ts": "2024-01-01T00:00:00.000000Z"},
        "source": {"schema": "public", "table": "content", "lsn": 10, "ts_ms": 10},
        "op": "c"
    });
    json!({"destination": "pgcdc.public.content", "key": json!({"id": id}).to_string(), "value": value.to_string()})
}

#[test]
fn loop_oom_and_panic_are_dead_letters_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    common::deploy(
        &common::plugin("examples/faulty-enricher.wasm"),
        &plugins.join("enricher.wasm"),
    );

    let mut lines = vec![content("c1")];
    let mut id = 0;
    for bad in ["__loop__", "__oom__", "__trap__"] {
        for _ in 0..3 {
            id += 1;
            lines.push(event(id, "ios", "c1"));
        }
        id += 1;
        lines.push(event(id, bad, "c1"));
    }
    id += 1;
    lines.push(event(id, "web", "c1"));
    let input = tmp.path().join("in.ndjson");
    common::write_ndjson(&input, &lines);
    let output = tmp.path().join("out.ndjson");
    let dead = tmp.path().join("dead.ndjson");

    let started = Instant::now();
    common::replay(
        &plugins,
        &input,
        &output,
        &[
            "--dead-letters",
            dead.to_str().unwrap(),
            // A deadline long enough that the allocating event reaches
            // the memory cap first even on a loaded machine.
            "--call-deadline-ms",
            "1000",
            "--memory-cap-mib",
            "32",
        ],
    );
    // Two deadline hits (batch call, then the single retry) bound the stall.
    assert!(started.elapsed() < Duration::from_secs(60));

    let records = common::read_ndjson(&output);
    let letters = common::read_ndjson(&dead);
    let good: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(
        good,
        vec![1, 2, 3, 5, 6, 7, 9, 10, 11, 13],
        "every good event, in order"
    );
    for r in &records {
        assert_eq!(
            r["engagement_pct"],
            json!(0.12),
            "1500 ms of 1200 s is 0.12 % (half-even)"
        );
    }

    assert_eq!(letters.len(), 3, "{letters:#?}");
    let reason = |device: &str| {
        let letter = letters
            .iter()
            .find(|l| l["message"]["value"].as_str().unwrap().contains(device))
            .unwrap_or_else(|| panic!("no dead letter for {device}"));
        assert_eq!(letter["stage"], "enrich");
        assert_eq!(letter["plugin"]["name"], "faulty-enricher");
        (
            letter["error_type"].as_str().unwrap().to_string(),
            letter["reason"].as_str().unwrap().to_string(),
        )
    };
    let (kind, why) = reason("__loop__");
    assert_eq!(kind, "timeout", "{why}");
    assert!(why.contains("1000 ms deadline"), "{why}");
    let (kind, why) = reason("__oom__");
    assert_eq!(kind, "out_of_memory", "{why}");
    assert!(why.contains("memory cap of 32 MiB"), "{why}");
    let (kind, why) = reason("__trap__");
    assert_eq!(kind, "trap", "{why}");
    assert!(
        why.contains("panicked at"),
        "the panic message is kept: {why}"
    );
}
