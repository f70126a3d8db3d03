//! Malformed messages: each gives a clear typed error from the real decoder
//! component (never a trap), and, in a replay, a dead letter with the reason
//! and the original message while the messages around it go through.

mod common;

use engagement_host::decode::describe;
use engagement_host::wasm::PluginInstance;
use engagement_host::wasm::bindings::Message;
use serde_json::json;

fn msg(data: Option<Vec<u8>>, key: Option<&str>) -> Message {
    Message {
        topic: "pgcdc.public.engagement_events".into(),
        key: key.map(str::to_string),
        data,
        attributes: Vec::new(),
    }
}

fn text(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

/// (name, message, expected error kind, words the reason must contain)
fn cases() -> Vec<(&'static str, Message, &'static str, &'static str)> {
    let key = Some(r#"{"id":7}"#);
    let good_after = r#"{"id":7,"content_id":"x","duration_ms":1}"#;
    let big = format!(
        r#"{{"before":null,"after":{{"id":7,"raw_payload":"{}"}},"source":{{"table":"engagement_events","lsn":1}},"op":"c"}}"#,
        "x".repeat(10 << 20)
    );
    vec![
        ("empty", msg(text(""), key), "empty", "empty"),
        (
            "white space",
            msg(text("  \n"), key),
            "invalid_json",
            "white space",
        ),
        (
            "not JSON",
            msg(text("hello {"), key),
            "invalid_json",
            "not valid JSON",
        ),
        (
            "truncated JSON",
            msg(text(r#"{"op":"c","after":{"id":1"#), key),
            "invalid_json",
            "EOF",
        ),
        (
            "JSON array",
            msg(text("[1,2,3]"), key),
            "not_an_envelope",
            "an array",
        ),
        (
            "JSON number",
            msg(text("42"), key),
            "not_an_envelope",
            "integer 42",
        ),
        (
            "JSON string",
            msg(text(r#""c""#), key),
            "not_an_envelope",
            "string",
        ),
        (
            "missing op",
            msg(text(&format!(r#"{{"after":{good_after}}}"#)), key),
            "missing_field",
            "`op`",
        ),
        (
            "unknown op",
            msg(text(&format!(r#"{{"op":"x","after":{good_after}}}"#)), key),
            "unknown_op",
            "`x`",
        ),
        (
            "op not a string",
            msg(text(&format!(r#"{{"op":3,"after":{good_after}}}"#)), key),
            "wrong_type",
            "field `op`",
        ),
        (
            "after not an object",
            msg(text(r#"{"op":"c","after":[1]}"#), key),
            "wrong_type",
            "field `after`",
        ),
        (
            "insert without after",
            msg(text(r#"{"op":"c","after":null}"#), key),
            "missing_field",
            "`after`",
        ),
        (
            "lsn not a number",
            msg(
                text(&format!(
                    r#"{{"op":"c","after":{good_after},"source":{{"table":"t","lsn":"abc"}}}}"#
                )),
                key,
            ),
            "wrong_type",
            "source.lsn",
        ),
        (
            "source not an object",
            msg(
                text(&format!(
                    r#"{{"op":"c","after":{good_after},"source":"pg"}}"#
                )),
                key,
            ),
            "wrong_type",
            "field `source`",
        ),
        (
            "payload not an object",
            msg(text(r#"{"schema":{},"payload":7}"#), key),
            "wrong_type",
            "payload",
        ),
        (
            "key not JSON",
            msg(
                text(&format!(r#"{{"op":"c","after":{good_after}}}"#)),
                Some("id=7"),
            ),
            "invalid_key",
            "not JSON",
        ),
        (
            "key not an object",
            msg(
                text(&format!(r#"{{"op":"c","after":{good_after}}}"#)),
                Some("7"),
            ),
            "invalid_key",
            "integer 7",
        ),
        (
            "invalid UTF-8",
            msg(
                Some(b"{\"op\":\"c\",\"after\":{\"id\":\"\xff\xfe\"}}".to_vec()),
                key,
            ),
            "invalid_json",
            "not valid JSON",
        ),
        ("10 MB value", msg(Some(big.into_bytes()), key), "ok", ""),
    ]
}

#[test]
fn each_malformed_message_is_a_typed_error_not_a_trap() {
    let loader = common::loader();
    let plugin = loader.load(&common::decoder_wasm(), None).unwrap();
    let mut decoder = PluginInstance::new(&loader.engine, &plugin).unwrap();
    for (name, message, kind, words) in cases() {
        let result = decoder
            .decode(&message)
            .unwrap_or_else(|trap| panic!("{name}: the plugin trapped: {trap}"));
        match result {
            Err(err) => {
                let stage = describe(&err);
                assert_eq!(stage.kind, kind, "{name}: {}", stage.reason);
                assert!(
                    stage.reason.contains(words),
                    "{name}: reason `{}` lacks `{words}`",
                    stage.reason
                );
            }
            // A 10 MB value is valid Debezium; the host's size limit (not the
            // decoder) is what refuses it, see the replay test below.
            Ok(changes) => assert_eq!(kind, "ok", "{name}: decoded to {changes:?}"),
        }
    }
}

#[test]
fn replay_dead_letters_each_malformed_message_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = common::plugin_dir(tmp.path());
    let good = common::fixture_lines("schemas_off.ndjson");
    let mut lines = Vec::new();
    // Good, bad, good, bad, ...: the run must go on past every bad one.
    for (i, (name, message, _, _)) in cases().into_iter().enumerate() {
        lines.push(good[i % good.len()].clone());
        let mut line = engagement_host::sinks::dead_letter::message_json(&message);
        line["attributes"] = json!({"case": name});
        lines.push(line);
    }
    lines.extend(good.iter().cloned());
    lines.push(json!("not an object"));
    let input = tmp.path().join("in.ndjson");
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push_str("{broken line\n");
    std::fs::write(&input, text).unwrap();

    let output = tmp.path().join("out.ndjson");
    let dead = tmp.path().join("dead.ndjson");
    let out = common::replay(
        &plugins,
        &input,
        &output,
        &[
            "--dead-letters",
            dead.to_str().unwrap(),
            "--max-message-bytes",
            "4194304",
        ],
    );
    let summary = common::summary(&out);
    let letters = common::read_ndjson(&dead);

    // Every malformed message (all 19, the 10 MB one by the size limit) and
    // both bad lines are dead letters with a reason.
    assert_eq!(letters.len(), cases().len() + 2, "{letters:#?}");
    assert_eq!(
        summary["dead_letters"].as_u64().unwrap() as usize,
        letters.len()
    );
    for letter in &letters {
        assert!(!letter["reason"].as_str().unwrap().is_empty());
        assert!(letter["stage"].is_string());
        assert!(
            letter["origin"]["position"]
                .as_str()
                .unwrap()
                .starts_with("line ")
        );
    }
    let by_case = |case: &str| {
        letters
            .iter()
            .find(|l| l["message"]["attributes"]["case"] == case)
            .unwrap_or_else(|| panic!("no dead letter for {case}"))
    };
    let big = by_case("10 MB value");
    assert_eq!(big["stage"], "host");
    assert_eq!(big["error_type"], "too_large");
    let missing = by_case("missing op");
    assert_eq!(missing["stage"], "decode");
    assert_eq!(missing["plugin"]["name"], "debezium-decoder");
    assert_eq!(missing["plugin"]["sha256"].as_str().unwrap().len(), 64);
    // The original message is kept as it came, so the letter can be replayed.
    let utf8 = by_case("invalid UTF-8");
    assert!(utf8["message"]["value_base64"].is_string());

    // The good messages went through: 7 records from the final full pass.
    assert!(summary["records"].as_u64().unwrap() >= 7, "{summary}");
}
