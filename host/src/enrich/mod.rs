//! Enrich stage: event + content rows in, derived fields out, through the
//! enricher plugin. Failure handling mirrors the decode stage: one call per
//! batch, and one call per event only when the batch call failed.

mod shadow;

use std::sync::Arc;

use crate::decode::StageError;
use crate::wasm::bindings::{Column, ColumnSet, EnrichError, EnrichInput, Row};
use crate::wasm::{PluginId, PluginKind, PluginRunner, PluginSet};

/// One event to enrich, as the pipeline holds it: the whole event, and the
/// content row shared with the cache (not copied per event).
#[derive(Debug, Clone)]
pub struct EnrichRequest {
    pub event: Row,
    pub content: Option<Arc<Row>>,
}

/// An enricher: the WASM plugin in service, or a native build for benchmarks.
pub trait EnrichStep: Send {
    /// Starts a batch; returns the version that will enrich all of it.
    fn begin_batch(&mut self) -> Arc<PluginId>;
    /// One result per request, in order: the fields to add.
    fn enrich_batch(&mut self, requests: &[EnrichRequest]) -> Vec<Result<Row, StageError>>;
}

/// What a rule gets of a request: the columns it declared it reads (in row
/// order), or whole rows when it declared nothing.
pub fn project(request: &EnrichRequest, reads: Option<&ColumnSet>) -> EnrichInput {
    fn pick(row: &[Column], names: Option<&[String]>) -> Row {
        match names {
            Some(names) => row
                .iter()
                .filter(|c| names.contains(&c.name))
                .cloned()
                .collect(),
            None => row.to_vec(),
        }
    }
    EnrichInput {
        event: pick(&request.event, reads.map(|r| r.event.as_slice())),
        content: request
            .content
            .as_deref()
            .map(|content| pick(content, reads.map(|r| r.content.as_slice()))),
    }
}

/// The enricher plugin, and its shadow version when one runs (see
/// [`shadow`]): compared on every batch, never written.
pub struct WasmEnricher {
    runner: PluginRunner,
    plugins: Arc<PluginSet>,
    shadow: shadow::ShadowRunner,
}

impl WasmEnricher {
    pub fn new(plugins: Arc<PluginSet>) -> Self {
        Self {
            runner: PluginRunner::new(plugins.clone(), PluginKind::Enricher),
            plugins,
            shadow: shadow::ShadowRunner::default(),
        }
    }
}

impl EnrichStep for WasmEnricher {
    fn begin_batch(&mut self) -> Arc<PluginId> {
        self.runner.begin_batch()
    }

    fn enrich_batch(&mut self, requests: &[EnrichRequest]) -> Vec<Result<Row, StageError>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let reads = self.runner.active().reads.clone();
        let inputs: Vec<EnrichInput> = requests
            .iter()
            .map(|r| project(r, reads.as_ref()))
            .collect();
        let results = self.serve(&inputs);
        self.shadow.compare(&self.plugins, requests, &results);
        results
    }
}

impl WasmEnricher {
    /// The serving version's results: one batch call, or one call per
    /// event when the batch call failed.
    fn serve(&mut self, inputs: &[EnrichInput]) -> Vec<Result<Row, StageError>> {
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
