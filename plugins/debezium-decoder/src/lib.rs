//! The Debezium decoder plugin: one Pub/Sub message in, neutral row changes out.
//!
//! Handles the JSON converter with `schemas.enable` on (`{"schema":..,"payload":..}`)
//! and off, ops `r`, `c`, `u`, `d`, `t`, and tombstones (a null value decodes to
//! no change). Anything malformed is a typed [`DecodeError`] naming the field,
//! never a panic: a trap would cost the host an instance re-creation.
//!
//! Values keep their JSON type: this plugin does not read the Connect schema,
//! so schemas-on and schemas-off messages decode to identical rows.

wit_bindgen::generate!({
    world: "decoder",
    path: "../../wit",
});

mod envelope;
mod json;

pub use engagement::pipeline::types::{Column, FieldError, PluginInfo, Row, Value};
pub use exports::engagement::pipeline::decode::{DecodeError, Guest, Message, Op, RowChange};

/// The component: implements the `decode` interface.
pub struct Component;

impl Guest for Component {
    fn decode(message: Message) -> Result<Vec<RowChange>, DecodeError> {
        envelope::decode(&message)
    }

    fn decode_batch(messages: Vec<Message>) -> Vec<Result<Vec<RowChange>, DecodeError>> {
        messages.iter().map(envelope::decode).collect()
    }

    fn info() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: env!("CARGO_PKG_DESCRIPTION").to_string(),
        }
    }
}

#[cfg(target_arch = "wasm32")]
export!(Component);
