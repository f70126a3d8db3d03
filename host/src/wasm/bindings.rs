//! Host-side bindings generated from `wit/` (the only copy of the contract).
//!
//! Both worlds share the `types` and `log` interfaces: the enricher bindings
//! reuse the decoder's generated types, so a row decoded by one plugin is
//! handed to the other without conversion.

/// The `decoder` world.
pub mod decoder {
    wasmtime::component::bindgen!({
        world: "decoder",
        path: "../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

/// The `enricher` world.
pub mod enricher {
    wasmtime::component::bindgen!({
        world: "enricher",
        path: "../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        with: {
            "engagement:pipeline/types": super::decoder::engagement::pipeline::types,
            "engagement:pipeline/log": super::decoder::engagement::pipeline::log,
        },
    });
}

pub use decoder::engagement::pipeline::log::Level as LogLevel;
pub use decoder::engagement::pipeline::types::{
    Column, FieldError, FieldSpec, PluginInfo, Value, ValueKind,
};
pub use decoder::exports::engagement::pipeline::decode::{DecodeError, Message, Op, RowChange};
pub use enricher::exports::engagement::pipeline::enrich::{
    ColumnSet, EnrichError, EnrichInput, EnricherInfo,
};

/// A row: columns in order, names unique.
pub type Row = Vec<Column>;

/// The WIT name of a value kind (`text`, `int`, ...).
pub fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Boolean => "boolean",
        ValueKind::Int => "int",
        ValueKind::Float => "float",
        ValueKind::Text => "text",
        ValueKind::Json => "json",
    }
}
