//! Enrich stage: event + content rows in, derived fields out, through the
//! enricher plugin. Failure handling mirrors the decode stage: one call per
//! batch, and one call per event only when the batch call failed.

use std::sync::Arc;

use crate::decode::StageError;
use crate::wasm::bindings::{EnrichError, EnrichInput, Row};
use crate::wasm::{PluginId, PluginKind, PluginRunner, PluginSet};

/// An enricher: the WASM plugin in service, or a native build for benchmarks.
pub trait EnrichStep: Send {
    /// Starts a batch; returns the version that will enrich all of it.
    fn begin_batch(&mut self) -> Arc<PluginId>;
    /// One result per input, in order: the fields to add.
    fn enrich_batch(&mut self, inputs: &[EnrichInput]) -> Vec<Result<Row, StageError>>;
}

/// The enricher plugin.
pub struct WasmEnricher {
    runner: PluginRunner,
}

impl WasmEnricher {
    pub fn new(plugins: Arc<PluginSet>) -> Self {
        Self {
            runner: PluginRunner::new(plugins, PluginKind::Enricher),
        }
    }
}

impl EnrichStep for WasmEnricher {
    fn begin_batch(&mut self) -> Arc<PluginId> {
        self.runner.begin_batch()
    }

    fn enrich_batch(&mut self, inputs: &[EnrichInput]) -> Vec<Result<Row, StageError>> {
        if inputs.is_empty() {
            return Vec::new();
        }
        match self
            .runner
            .call(inputs.len(), |instance| instance.enrich_batch(inputs))
        {
            Ok(results) => results.into_iter().map(typed).collect(),
            Err(_) => inputs
                .iter()
                .map(
                    |input| match self.runner.call(1, |instance| instance.enrich(input)) {
                        Ok(result) => typed(result),
                        Err(err) => Err(err.into()),
                    },
                )
                .collect(),
        }
    }
}

fn typed(result: Result<Row, EnrichError>) -> Result<Row, StageError> {
    result.map_err(|err| match err {
        EnrichError::InvalidField(e) => StageError {
            kind: "invalid_field",
            reason: format!(
                "field `{}` should be {}, found {}",
                e.field, e.expected, e.found
            ),
        },
        EnrichError::Failed(m) => StageError {
            kind: "enrich_failed",
            reason: m,
        },
    })
}
