//! The default enricher component reproduces the original rules bit for
//! bit. The cases (`plugins/engagement-enricher/cases.ndjson`) were computed
//! by Python itself (`scripts/gen_enricher_cases.py`), so Python's `round()`
//! is the oracle: ties, zero/null/negative durations, null/zero lengths,
//! missing content, huge values.

mod common;

use engagement_host::wasm::PluginInstance;
use engagement_host::wasm::bindings::{Column, EnrichInput, Value};
use serde_json::Value as Json;

fn to_value(json: &Json) -> Value {
    common::json_to_value(json)
}

fn to_row(json: &Json) -> Vec<Column> {
    json.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| Column {
            name: k.clone(),
            value: to_value(v),
        })
        .collect()
}

/// Exact comparison: floats by their bits, so 0.12 is not 0.12000000000000001.
fn same(actual: &Value, expected: &Json) -> bool {
    match (actual, expected) {
        (Value::Float(a), Json::Number(n)) => {
            n.as_f64().is_some_and(|e| a.to_bits() == e.to_bits())
        }
        (a, e) => *a == to_value(e),
    }
}

#[test]
fn every_case_matches_python() {
    let cases_path = common::repo_root().join("plugins/engagement-enricher/cases.ndjson");
    let cases = common::read_ndjson(&cases_path);
    assert!(cases.len() > 100, "the case file has the random cases too");

    let loader = common::loader();
    let plugin = loader.load(&common::enricher_wasm(), None).unwrap();
    let mut enricher = PluginInstance::new(&loader.engine, &plugin).unwrap();

    let inputs: Vec<EnrichInput> = cases
        .iter()
        .map(|case| EnrichInput {
            event: to_row(&case["event"]),
            content: (!case["content"].is_null()).then(|| to_row(&case["content"])),
        })
        .collect();
    let batch = enricher.enrich_batch(&inputs).unwrap();

    let mut failures = Vec::new();
    for ((case, input), batch_result) in cases.iter().zip(&inputs).zip(batch) {
        let single = enricher.enrich(input).unwrap();
        assert_eq!(
            single, batch_result,
            "{}: batch and single calls agree",
            case["name"]
        );
        let fields = single.unwrap_or_else(|e| panic!("{}: {e:?}", case["name"]));
        let expected = case["expected"].as_object().unwrap();
        let names: Vec<&str> = fields.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "content_type",
                "length_seconds",
                "engagement_seconds",
                "engagement_pct"
            ],
            "field order"
        );
        for field in &fields {
            if !same(&field.value, &expected[&field.name]) {
                failures.push(format!(
                    "{}: {} = {:?}, Python says {}",
                    case["name"], field.name, field.value, expected[&field.name]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn reports_its_output_fields() {
    let loader = common::loader();
    let plugin = loader.load(&common::enricher_wasm(), None).unwrap();
    let names: Vec<&str> = plugin
        .output_fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "content_type",
            "length_seconds",
            "engagement_seconds",
            "engagement_pct"
        ]
    );
    assert_eq!(plugin.id.name, "engagement-enricher");
}
