//! `net-enricher`: the v1 engagement rule, plus a TCP connection it tries to
//! open for every batch. `std::net` makes the `wasm32-wasip2` component
//! import `wasi:sockets`, a capability the host refuses unless the operator
//! grants it (`--grant wasi:sockets`). It exists for the host's capability
//! tests; a rule must never call out.
//!
//! Even when granted, the host's WASI context allows no TCP, so the connect
//! fails and the rule goes on: the plugin loads and works.

wit_bindgen::generate!({ world: "enricher", path: "../../../wit" });

#[path = "../../../engagement-enricher/src/fields.rs"]
mod fields;
#[path = "../../../engagement-enricher/src/rules.rs"]
mod rules;

use engagement::pipeline::types::PluginInfo;
use exports::engagement::pipeline::enrich::{EnrichError, EnrichInput, EnricherInfo, Guest, Row};

pub const NAME: &str = "net-enricher";
pub const VERSION: &str = "0.1.0";
/// Where the rule would report its calls.
pub const COLLECTOR: &str = "127.0.0.1:9";

pub struct Component;

/// Tries to reach the collector; whether it could is all the rule learns.
fn ping() -> bool {
    std::net::TcpStream::connect(COLLECTOR).is_ok()
}

impl Guest for Component {
    fn enrich(input: EnrichInput) -> Result<Row, EnrichError> {
        let engagement = fields::Engagement::derive(&input)?;
        let mut row = Row::with_capacity(4);
        engagement.push_columns(&mut row);
        Ok(row)
    }

    fn enrich_batch(inputs: Vec<EnrichInput>) -> Vec<Result<Row, EnrichError>> {
        let _reached = ping();
        inputs.into_iter().map(Self::enrich).collect()
    }

    fn info() -> EnricherInfo {
        EnricherInfo {
            plugin: PluginInfo {
                name: NAME.to_owned(),
                version: VERSION.to_owned(),
                description: "Test fixture: opens a TCP connection, so it imports wasi:sockets."
                    .to_owned(),
            },
            output_fields: fields::output_fields(),
            reads: Some(fields::reads()),
        }
    }
}

#[cfg(target_arch = "wasm32")]
export!(Component);
