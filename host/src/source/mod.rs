//! Where messages come from. Every source yields [`Message`]s (the decoder's
//! input, as the broker delivered them) with an [`Origin`] saying where each
//! came from; acknowledging is the source's business, not the pipeline's.

pub mod ndjson;
pub mod pubsub;
pub mod pubsub_grpc_admin;

use serde::{Deserialize, Serialize};

pub use crate::wasm::bindings::Message;

/// Where a message came from: for dead letters and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The source, e.g. `file:changes.ndjson` or `pubsub:cdc-content-sub`.
    pub source: String,
    /// Position within it: line number, message id.
    pub position: String,
}

/// Messages read together, processed together.
#[derive(Debug, Default)]
pub struct SourceBatch {
    pub messages: Vec<Message>,
    pub origins: Vec<Origin>,
}

impl SourceBatch {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn push(&mut self, message: Message, origin: Origin) {
        self.messages.push(message);
        self.origins.push(origin);
    }
}
