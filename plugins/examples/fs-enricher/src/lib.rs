//! `fs-enricher`: the v1 engagement rule, plus a threshold it tries to read
//! from a file. `std::fs` makes the `wasm32-wasip2` component import
//! `wasi:filesystem`, a capability the host refuses unless the operator
//! grants it (`--grant wasi:filesystem`, `plugin_grants`). It exists for the
//! host's capability tests; a real rule gets its parameters from its inputs.
//!
//! Even when granted, the host preopens no directory, so the read fails and
//! the rule falls back to its built-in value: the plugin loads and works.

wit_bindgen::generate!({ world: "enricher", path: "../../../wit" });

#[path = "../../../engagement-enricher/src/fields.rs"]
mod fields;
#[path = "../../../engagement-enricher/src/rules.rs"]
mod rules;

use engagement::pipeline::types::{PluginInfo, Value, ValueKind};
use exports::engagement::pipeline::enrich::{EnrichError, EnrichInput, EnricherInfo, Guest, Row};

pub const NAME: &str = "fs-enricher";
pub const VERSION: &str = "0.1.0";
/// Where the rule looks for its threshold.
pub const THRESHOLD_FILE: &str = "/etc/engagement/complete_from_pct";
/// The threshold when the file cannot be read.
pub const DEFAULT_THRESHOLD: f64 = 90.0;

pub struct Component;

/// The threshold from [`THRESHOLD_FILE`], else [`DEFAULT_THRESHOLD`].
fn threshold() -> f64 {
    std::fs::read_to_string(THRESHOLD_FILE)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_THRESHOLD)
}

impl Guest for Component {
    fn enrich(input: EnrichInput) -> Result<Row, EnrichError> {
        let engagement = fields::Engagement::derive(&input)?;
        let complete = engagement.engagement_pct.map(|pct| pct >= threshold());
        let mut row = Row::with_capacity(5);
        engagement.push_columns(&mut row);
        row.push(fields::field(
            "complete",
            complete.map_or(Value::Null, Value::Boolean),
        ));
        Ok(row)
    }

    fn enrich_batch(inputs: Vec<EnrichInput>) -> Vec<Result<Row, EnrichError>> {
        inputs.into_iter().map(Self::enrich).collect()
    }

    fn info() -> EnricherInfo {
        let mut output_fields = fields::output_fields();
        output_fields.push(fields::spec(
            "complete",
            ValueKind::Boolean,
            "engagement_pct at or above the threshold read from a file (90 without it).",
        ));
        EnricherInfo {
            plugin: PluginInfo {
                name: NAME.to_owned(),
                version: VERSION.to_owned(),
                description: "Test fixture: reads a file, so it imports wasi:filesystem."
                    .to_owned(),
            },
            output_fields,
            reads: Some(fields::reads()),
        }
    }
}

#[cfg(target_arch = "wasm32")]
export!(Component);
