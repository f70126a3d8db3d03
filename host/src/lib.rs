//! engagement-host: Debezium change events in, enriched engagement records
//! out, with the business rules in hot-swappable WebAssembly plugins.
//!
//! The flow is one-way and the module list follows it:
//! [`source`] -> [`decode`] -> [`state`] -> [`enrich`] -> [`sinks`], wired by
//! [`pipeline`]; [`wasm`] runs the plugins, [`telemetry`] reports.

pub mod api_sim;
pub mod cli;
pub mod commands;
pub mod config;
pub mod datagen;
pub mod decode;
pub mod enrich;
pub mod pipeline;
pub mod settings;
pub mod sinks;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod wasm;
