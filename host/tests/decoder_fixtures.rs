//! Every real Debezium message in the fixtures decodes, through the real
//! decoder component, to the change the message describes; schemas on and
//! off decode to the same rows. The expected values are read from the
//! fixture JSON here, independently of the plugin.

mod common;

use engagement_host::wasm::PluginInstance;
use engagement_host::wasm::bindings::{Column, Message, Op, RowChange, Value};
use serde_json::Value as Json;

const CONTENT_COLUMNS: &[&str] = &[
    "id",
    "slug",
    "title",
    "content_type",
    "length_seconds",
    "publish_ts",
];
const EVENT_COLUMNS: &[&str] = &[
    "id",
    "content_id",
    "user_id",
    "event_type",
    "event_ts",
    "duration_ms",
    "device",
    "raw_payload",
];

fn decoder() -> PluginInstance {
    let loader = common::loader();
    let plugin = loader
        .load(&common::decoder_wasm(), None)
        .expect("decoder loads");
    PluginInstance::new(&loader.engine, &plugin).expect("instantiate")
}

fn message(line: &Json) -> Message {
    Message {
        topic: line["destination"].as_str().unwrap().to_string(),
        key: line["key"].as_str().map(str::to_string),
        data: line["value"].as_str().map(|v| v.as_bytes().to_vec()),
        attributes: Vec::new(),
    }
}

fn expected_value(json: &Json) -> Value {
    common::json_to_value(json)
}

fn assert_row(actual: &[Column], expected: &Json, columns: &[&str], what: &str) {
    let names: Vec<&str> = actual.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, columns, "{what}: columns in table order");
    for column in actual {
        assert_eq!(
            column.value,
            expected_value(&expected[&column.name]),
            "{what}: column {}",
            column.name
        );
    }
}

/// The envelope as the fixture has it (payload of schemas-on, or the value).
fn envelope(line: &Json) -> Json {
    let value: Json = serde_json::from_str(line["value"].as_str().unwrap()).unwrap();
    match value.get("payload") {
        Some(payload) if value.get("schema").is_some() => payload.clone(),
        _ => value,
    }
}

fn check_fixture(name: &str) -> Vec<RowChange> {
    let mut decoder = decoder();
    let mut all = Vec::new();
    for (n, line) in common::fixture_lines(name).iter().enumerate() {
        let what = format!("{name} line {}", n + 1);
        let changes = decoder
            .decode(&message(line))
            .expect("no trap")
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(changes.len(), 1, "{what}: one change per message");
        let change = changes.into_iter().next().unwrap();
        let env = envelope(line);

        let expected_op = match env["op"].as_str().unwrap() {
            "r" => Op::Read,
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            other => panic!("fixture op {other}"),
        };
        assert_eq!(change.op, expected_op, "{what}: op");
        assert_eq!(
            change.table,
            env["source"]["table"].as_str().unwrap(),
            "{what}: table"
        );
        assert_eq!(change.schema, "public", "{what}: schema");
        assert_eq!(change.lsn, env["source"]["lsn"].as_u64(), "{what}: lsn");
        assert_eq!(
            change.source_ts_ms,
            env["source"]["ts_ms"].as_i64(),
            "{what}: ts"
        );

        let columns = if change.table == "content" {
            CONTENT_COLUMNS
        } else {
            EVENT_COLUMNS
        };
        match (&change.after, env.get("after")) {
            (Some(row), Some(after)) if !after.is_null() => assert_row(row, after, columns, &what),
            (None, None) | (None, Some(Json::Null)) => {}
            (a, e) => panic!("{what}: after {a:?} vs {e:?}"),
        }
        match (&change.before, env.get("before")) {
            (Some(row), Some(before)) if !before.is_null() => {
                assert_row(row, before, columns, &what)
            }
            (None, None) | (None, Some(Json::Null)) => {}
            (a, e) => panic!("{what}: before {a:?} vs {e:?}"),
        }

        // The key comes from the record key, schemas on or off.
        let key: Json = serde_json::from_str(line["key"].as_str().unwrap()).unwrap();
        let key = key.get("payload").cloned().unwrap_or(key);
        assert_eq!(change.key.len(), 1, "{what}: key columns");
        assert_eq!(change.key[0].name, "id");
        assert_eq!(
            change.key[0].value,
            expected_value(&key["id"]),
            "{what}: key"
        );
        all.push(change);
    }
    all
}

#[test]
fn schemas_off_fixture_decodes_to_the_described_changes() {
    let changes = check_fixture("schemas_off.ndjson");
    assert_eq!(changes.len(), 13);
    // Delete under the default replica identity: only the key is real.
    let delete = &changes[10];
    assert_eq!(delete.op, Op::Delete);
    assert_eq!(delete.key[0].value, Value::Int(2));
    assert!(delete.after.is_none());
    let before = delete.before.as_ref().unwrap();
    assert_eq!(
        before[1].value,
        Value::Null,
        "content_id is not in a key-only delete"
    );
    assert_eq!(before[4].value, Value::Text("1970-01-01T00:00:00Z".into()));
    // Update under REPLICA IDENTITY FULL carries the old row.
    let full = &changes[11];
    assert_eq!(full.op, Op::Update);
    assert_eq!(full.before.as_ref().unwrap()[5].value, Value::Int(60000));
    assert_eq!(full.after.as_ref().unwrap()[5].value, Value::Int(90000));
}

#[test]
fn schemas_on_fixture_decodes_to_the_described_changes() {
    assert_eq!(check_fixture("schemas_on.ndjson").len(), 13);
}

#[test]
fn schemas_on_and_off_give_the_same_rows() {
    let off = check_fixture("schemas_off.ndjson");
    let on = check_fixture("schemas_on.ndjson");
    for (i, (a, b)) in off.iter().zip(&on).enumerate() {
        assert_eq!(a.op, b.op, "line {}", i + 1);
        assert_eq!(a.key, b.key, "line {}", i + 1);
        assert_eq!(a.before, b.before, "line {}", i + 1);
        assert_eq!(a.after, b.after, "line {}", i + 1);
    }
}

#[test]
fn headers_as_attributes_do_not_change_the_result() {
    let mut decoder = decoder();
    let lines = common::fixture_lines("schemas_off.ndjson");
    let headers = common::fixture_lines("schemas_off.headers.ndjson");
    for (line, header) in lines.iter().zip(&headers) {
        let plain = decoder.decode(&message(line)).unwrap().unwrap();
        let mut with = message(line);
        with.attributes = header["attributes(headers)"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(decoder.decode(&with).unwrap().unwrap(), plain);
    }
}

#[test]
fn tombstones_and_truncates() {
    let mut decoder = decoder();
    // A null record value (tombstone) is no change, schemas on or off.
    for data in [
        None,
        Some(b"null".to_vec()),
        Some(br#"{"schema":{"type":"struct"},"payload":null}"#.to_vec()),
    ] {
        let msg = Message {
            topic: "pgcdc.public.engagement_events".into(),
            key: Some(r#"{"id":2}"#.into()),
            data,
            attributes: Vec::new(),
        };
        assert_eq!(decoder.decode(&msg).unwrap().unwrap(), Vec::new());
    }
    // A truncate: null key, null before/after, op t.
    let truncate = Message {
        topic: "pgcdc.public.engagement_events".into(),
        key: None,
        data: Some(
            br#"{"before":null,"after":null,"source":{"schema":"public","table":"engagement_events","lsn":99,"ts_ms":5},"op":"t","ts_ms":6}"#
                .to_vec(),
        ),
        attributes: Vec::new(),
    };
    let changes = decoder.decode(&truncate).unwrap().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].op, Op::Truncate);
    assert_eq!(changes[0].table, "engagement_events");
    assert!(changes[0].key.is_empty());
}

#[test]
fn batch_and_single_calls_agree() {
    let mut decoder = decoder();
    let messages: Vec<Message> = common::fixture_lines("schemas_on.ndjson")
        .iter()
        .map(message)
        .collect();
    let batch = decoder.decode_batch(&messages).unwrap();
    for (msg, result) in messages.iter().zip(batch) {
        assert_eq!(decoder.decode(msg).unwrap(), result);
    }
}
