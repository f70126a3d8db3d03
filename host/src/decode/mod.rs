//! Decode stage: messages in, row changes out, through the decoder plugin.
//!
//! A batch goes to the plugin in one call. If that call fails (trap,
//! timeout, out of memory), the batch is retried one message at a time on a
//! fresh instance, so only the message that caused it is dead-lettered.

use std::sync::Arc;

use crate::wasm::bindings::{DecodeError, Message, RowChange};
use crate::wasm::{PluginId, PluginKind, PluginRunner, PluginSet};

/// Why a message or event was not processed: a bounded kind for metrics and
/// the words for the dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct StageError {
    pub kind: &'static str,
    pub reason: String,
}

impl From<crate::wasm::PluginCallError> for StageError {
    fn from(err: crate::wasm::PluginCallError) -> Self {
        StageError {
            kind: err.kind(),
            reason: err.to_string(),
        }
    }
}

/// A decoder: the WASM plugin in service, or a native build for benchmarks.
pub trait DecodeStep: Send {
    /// Starts a batch; returns the version that will decode all of it.
    fn begin_batch(&mut self) -> Arc<PluginId>;
    /// One result per message, in order.
    fn decode_batch(&mut self, messages: &[Message]) -> Vec<Result<Vec<RowChange>, StageError>>;
}

/// The decoder plugin.
pub struct WasmDecoder {
    runner: PluginRunner,
}

impl WasmDecoder {
    pub fn new(plugins: Arc<PluginSet>) -> Self {
        Self {
            runner: PluginRunner::new(plugins, PluginKind::Decoder),
        }
    }
}

impl DecodeStep for WasmDecoder {
    fn begin_batch(&mut self) -> Arc<PluginId> {
        self.runner.begin_batch()
    }

    fn decode_batch(&mut self, messages: &[Message]) -> Vec<Result<Vec<RowChange>, StageError>> {
        if messages.is_empty() {
            return Vec::new();
        }
        match self
            .runner
            .call(messages.len(), |instance| instance.decode_batch(messages))
        {
            Ok(results) => results.into_iter().map(typed).collect(),
            Err(_) => messages
                .iter()
                .map(
                    |message| match self.runner.call(1, |instance| instance.decode(message)) {
                        Ok(result) => typed(result),
                        Err(err) => Err(err.into()),
                    },
                )
                .collect(),
        }
    }
}

fn typed(result: Result<Vec<RowChange>, DecodeError>) -> Result<Vec<RowChange>, StageError> {
    result.map_err(|err| describe(&err))
}

/// The kind and words of a decoder's typed error.
pub fn describe(err: &DecodeError) -> StageError {
    let (kind, reason) = match err {
        DecodeError::Empty => ("empty", "the message value is empty".to_string()),
        DecodeError::InvalidJson(m) => {
            ("invalid_json", format!("the value is not valid JSON: {m}"))
        }
        DecodeError::NotAnEnvelope(m) => ("not_an_envelope", format!("not a change envelope: {m}")),
        DecodeError::MissingField(f) => {
            ("missing_field", format!("required field `{f}` is missing"))
        }
        DecodeError::WrongType(e) => (
            "wrong_type",
            format!(
                "field `{}` should be {}, found {}",
                e.field, e.expected, e.found
            ),
        ),
        DecodeError::UnknownOp(op) => (
            "unknown_op",
            format!("unknown op `{op}` (expected r, c, u, d or t)"),
        ),
        DecodeError::InvalidKey(m) => ("invalid_key", format!("invalid record key: {m}")),
    };
    StageError { kind, reason }
}
