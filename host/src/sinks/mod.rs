//! Where records and dead letters go. Each sink writes a batch idempotently;
//! the pipeline acknowledges a message only after every sink confirmed it.

pub mod dead_letter;
pub mod ndjson;
