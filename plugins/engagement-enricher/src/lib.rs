//! `engagement-enricher`: the default enricher plugin, the original Python
//! pipeline's engagement rule reproduced bit for bit.
//!
//! Place in the flow: the host's `enrich` stage calls this component (built for
//! `wasm32-wasip2`) with each engagement event and its content row, and appends
//! the returned fields (`content_type`, `length_seconds`, `engagement_seconds`,
//! `engagement_pct`) to the event. It does not look at `op`, keep state, or
//! decide what a missing content means: the host does.
//!
//! The crate is also an rlib so the host's benchmark and tests can call
//! `<Component as Guest>::enrich_batch` natively; only the wasm32 build
//! exports the component. The `log` import is never called: natively it is an
//! unreachable stub, and the rule has nothing worth logging per event.

wit_bindgen::generate!({ world: "enricher", path: "../../wit" });

#[cfg(test)]
mod cases;
mod fields;
mod rules;

use engagement::pipeline::types::PluginInfo;
use exports::engagement::pipeline::enrich::{EnrichError, EnrichInput, EnricherInfo, Guest, Row};

/// Plugin name the host records with every output.
pub const NAME: &str = "engagement-enricher";
/// Version of the rule; bump it whenever an output can change.
pub const VERSION: &str = "1.0.0";

/// The component: stateless, every call is a pure function of its input.
pub struct Component;

impl Guest for Component {
    fn enrich(input: EnrichInput) -> Result<Row, EnrichError> {
        let engagement = fields::Engagement::derive(&input)?;
        let mut row = Row::with_capacity(4);
        engagement.push_columns(&mut row);
        Ok(row)
    }

    fn enrich_batch(inputs: Vec<EnrichInput>) -> Vec<Result<Row, EnrichError>> {
        inputs.into_iter().map(Self::enrich).collect()
    }

    fn info() -> EnricherInfo {
        EnricherInfo {
            plugin: PluginInfo {
                name: NAME.to_owned(),
                version: VERSION.to_owned(),
                description: "Engagement seconds and percentage of content length per event, \
                              with the content's type and length (the original pipeline's rule)."
                    .to_owned(),
            },
            output_fields: fields::output_fields(),
            reads: Some(fields::reads()),
        }
    }
}

// Natively there is nothing to export, and the exported symbols would clash
// with those of any other plugin crate linked into the same test binary.
#[cfg(target_arch = "wasm32")]
export!(Component);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engagement::pipeline::types::{Column, Value, ValueKind};

    fn col(name: &str, value: Value) -> Column {
        Column {
            name: name.to_owned(),
            value,
        }
    }

    fn input(duration: Value, content: Option<Vec<Column>>) -> EnrichInput {
        EnrichInput {
            event: vec![col("id", Value::Int(1)), col("duration_ms", duration)],
            content,
        }
    }

    fn video(length: Value) -> Option<Vec<Column>> {
        Some(vec![
            col("content_type", Value::Text("video".into())),
            col("length_seconds", length),
        ])
    }

    /// `(engagement_seconds, engagement_pct)` as debug text, for asserts.
    fn derived(input: EnrichInput) -> String {
        match Component::enrich(input) {
            Ok(row) => format!("{:?} {:?}", row[2].value, row[3].value),
            Err(err) => format!("error {err:?}"),
        }
    }

    #[test]
    fn matches_python_on_every_case() {
        let cases = cases::load();
        assert!(
            cases.len() > 300,
            "only {} cases in cases.ndjson",
            cases.len()
        );
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|case| cases::check(case, &Component::enrich(case.input.clone())).err())
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} cases differ from Python:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn batch_is_enrich_per_input() {
        let cases = cases::load();
        let inputs: Vec<EnrichInput> = cases.iter().map(|c| c.input.clone()).collect();
        let results = Component::enrich_batch(inputs);
        assert_eq!(results.len(), cases.len());
        for (case, result) in cases.iter().zip(&results) {
            if let Err(msg) = cases::check(case, result) {
                panic!("batch: {msg}");
            }
        }
    }

    #[test]
    fn info_describes_the_output_in_order() {
        let info = Component::info();
        assert_eq!(
            (info.plugin.name.as_str(), info.plugin.version.as_str()),
            ("engagement-enricher", "1.0.0")
        );
        let fields: Vec<(&str, ValueKind, bool)> = info
            .output_fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.nullable))
            .collect();
        assert_eq!(
            fields,
            [
                ("content_type", ValueKind::Text, true),
                ("length_seconds", ValueKind::Int, true),
                ("engagement_seconds", ValueKind::Float, true),
                ("engagement_pct", ValueKind::Float, true),
            ]
        );
        let row = Component::enrich(input(Value::Int(1), None)).unwrap_or_default();
        let names: Vec<&str> = row.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "content_type",
                "length_seconds",
                "engagement_seconds",
                "engagement_pct"
            ]
        );
    }

    #[test]
    fn unusable_values_give_null() {
        let length = || video(Value::Int(60));
        assert_eq!(
            derived(input(Value::Boolean(true), length())),
            "Value::Null Value::Null"
        );
        assert_eq!(
            derived(input(Value::Text("1500".into()), length())),
            "Value::Null Value::Null"
        );
        assert_eq!(
            derived(input(Value::Json("{\"ms\":1}".into()), length())),
            "Value::Null Value::Null"
        );
        assert_eq!(
            derived(input(Value::Json("[1500]".into()), length())),
            "Value::Null Value::Null"
        );
        assert_eq!(
            derived(input(Value::Float(f64::NAN), length())),
            "Value::Null Value::Null"
        );
        assert_eq!(
            derived(input(Value::Int(3000), video(Value::Boolean(true)))),
            "Value::Float(3.0) Value::Null"
        );
        assert_eq!(
            derived(input(Value::Int(3000), video(Value::Text("60".into())))),
            "Value::Float(3.0) Value::Null"
        );
        assert_eq!(
            derived(input(Value::Int(3000), Some(vec![]))),
            "Value::Float(3.0) Value::Null"
        );
        // No columns at all.
        let empty = EnrichInput {
            event: vec![],
            content: Some(vec![]),
        };
        let row = Component::enrich(empty).unwrap_or_default();
        assert_eq!(row.len(), 4);
        assert!(row.iter().all(|c| matches!(c.value, Value::Null)));
    }

    #[test]
    fn json_numbers_count_as_python_numbers() {
        // Python: round(10**20 / 1000.0, 3) == 1e+17; round(1e+17 / 60 * 100, 2)
        // == 1.666666666666667e+17; an int JSON value is an int there.
        let big = Value::Json("100000000000000000000".into());
        assert_eq!(
            derived(input(big, video(Value::Int(60)))),
            "Value::Float(1e17) Value::Float(1.666666666666667e17)"
        );
        assert_eq!(
            derived(input(Value::Json("1500".into()), video(Value::Int(1200)))),
            "Value::Float(1.5) Value::Float(0.12)"
        );
        // A big length still divides; it is not an int, so it is not copied.
        let row = Component::enrich(input(
            Value::Int(1000),
            video(Value::Json("100000000000000000000".into())),
        ))
        .unwrap_or_default();
        assert!(matches!(row[1].value, Value::Null));
        // Python: round(1.0 / 10**20 * 100, 2) == 0.0
        assert!(matches!(row[3].value, Value::Float(pct) if pct == 0.0));
    }

    #[test]
    fn ints_beyond_floats_are_invalid_fields() {
        // Python raises OverflowError: int too large to convert to float.
        let huge = format!("1{}", "0".repeat(400));
        match Component::enrich(input(Value::Json(huge.clone()), None)) {
            Err(EnrichError::InvalidField(e)) => {
                assert_eq!(e.field, "event.duration_ms");
                assert!(e.found.contains("401 digits"), "{}", e.found);
            }
            other => panic!("expected invalid-field, got {other:?}"),
        }
        match Component::enrich(input(Value::Int(1), video(Value::Json(huge)))) {
            Err(EnrichError::InvalidField(e)) => assert_eq!(e.field, "content.length_seconds"),
            other => panic!("expected invalid-field, got {other:?}"),
        }
    }
}
