//! One live instance of a plugin and the calls into it.
//!
//! Instances are reused call after call (instantiating per message would cost
//! more than the work). Every call gets a fresh epoch deadline; a trap, a
//! timeout or hitting the memory cap becomes a [`PluginCallError`] and marks
//! the instance spent, because a component instance cannot be entered again
//! after a trap. The owner then makes a new one from the same `InstancePre`.

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::PluginCallError;
use super::bindings::decoder::Decoder;
use super::bindings::enricher::Enricher;
use super::bindings::{
    DecodeError, EnrichError, EnrichInput, EnricherInfo, Message, PluginInfo, Row, RowChange,
};
use super::engine::PluginEngine;
use super::host::log::LOG_LINES_PER_CALL;
use super::plugin::{LoadedPlugin, PluginId, PluginPre};
use super::store::PluginState;

enum Bindings {
    Decoder(Decoder),
    Enricher(Enricher),
}

/// A plugin instance with its own store.
pub struct PluginInstance {
    id: Arc<PluginId>,
    store: Store<PluginState>,
    bindings: Bindings,
    deadline_ticks: u64,
    /// Set after a failed call: the instance must not be used again.
    spent: bool,
}

/// Results of a batch decode: one per message.
pub type DecodeResults = Vec<Result<Vec<RowChange>, DecodeError>>;
/// Results of a batch enrich: one per input.
pub type EnrichResults = Vec<Result<Row, EnrichError>>;

impl PluginInstance {
    /// Instantiates a validated plugin.
    pub fn new(engine: &Arc<PluginEngine>, plugin: &LoadedPlugin) -> Result<Self, PluginCallError> {
        Self::from_pre(
            engine,
            plugin.pre.clone(),
            plugin.label.clone(),
            plugin.id.clone(),
        )
    }

    pub(crate) fn from_pre(
        engine: &Arc<PluginEngine>,
        pre: PluginPre,
        label: Arc<str>,
        id: Arc<PluginId>,
    ) -> Result<Self, PluginCallError> {
        let mut store = Store::new(
            &engine.engine,
            PluginState::new(label, engine.limits.memory_cap_bytes),
        );
        store.limiter(|state| &mut state.limiter);
        let deadline_ticks = engine.deadline_ticks();
        // Start-up code (static initialisers) runs under the same deadline.
        store.set_epoch_deadline(deadline_ticks);
        let instantiated = match pre {
            PluginPre::Decoder(pre) => pre.instantiate(&mut store).map(Bindings::Decoder),
            PluginPre::Enricher(pre) => pre.instantiate(&mut store).map(Bindings::Enricher),
        };
        let bindings = instantiated.map_err(|err| classify(&mut store, err, deadline_ticks))?;
        Ok(Self {
            id,
            store,
            bindings,
            deadline_ticks,
            spent: false,
        })
    }

    /// Who this instance runs.
    pub fn id(&self) -> &Arc<PluginId> {
        &self.id
    }

    /// Whether a call failed and the instance must be replaced.
    pub fn is_spent(&self) -> bool {
        self.spent
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<PluginState>, &Bindings) -> wasmtime::Result<R>,
    ) -> Result<R, PluginCallError> {
        if self.spent {
            return Err(PluginCallError::Spent);
        }
        let state = self.store.data_mut();
        state.log_budget = LOG_LINES_PER_CALL;
        state.limiter.hit = false;
        self.store.set_epoch_deadline(self.deadline_ticks);
        match f(&mut self.store, &self.bindings) {
            Ok(value) => Ok(value),
            Err(err) => {
                self.spent = true;
                Err(classify(&mut self.store, err, self.deadline_ticks))
            }
        }
    }

    fn not_a(&self, world: &str) -> PluginCallError {
        PluginCallError::Trap {
            message: format!("{} is not a {world} plugin", self.id.label()),
        }
    }

    pub fn decoder_info(&mut self) -> Result<PluginInfo, PluginCallError> {
        let Bindings::Decoder(_) = self.bindings else {
            return Err(self.not_a("decoder"));
        };
        self.call(|store, b| match b {
            Bindings::Decoder(d) => d.engagement_pipeline_decode().call_info(store),
            Bindings::Enricher(_) => unreachable!("checked above"),
        })
    }

    pub fn decode(
        &mut self,
        message: &Message,
    ) -> Result<Result<Vec<RowChange>, DecodeError>, PluginCallError> {
        let Bindings::Decoder(_) = self.bindings else {
            return Err(self.not_a("decoder"));
        };
        self.call(|store, b| match b {
            Bindings::Decoder(d) => d.engagement_pipeline_decode().call_decode(store, message),
            Bindings::Enricher(_) => unreachable!("checked above"),
        })
    }

    pub fn decode_batch(&mut self, messages: &[Message]) -> Result<DecodeResults, PluginCallError> {
        let Bindings::Decoder(_) = self.bindings else {
            return Err(self.not_a("decoder"));
        };
        let results = self.call(|store, b| match b {
            Bindings::Decoder(d) => d
                .engagement_pipeline_decode()
                .call_decode_batch(store, messages),
            Bindings::Enricher(_) => unreachable!("checked above"),
        })?;
        check_len(results, messages.len())
    }

    pub fn enricher_info(&mut self) -> Result<EnricherInfo, PluginCallError> {
        let Bindings::Enricher(_) = self.bindings else {
            return Err(self.not_a("enricher"));
        };
        self.call(|store, b| match b {
            Bindings::Enricher(e) => e.engagement_pipeline_enrich().call_info(store),
            Bindings::Decoder(_) => unreachable!("checked above"),
        })
    }

    pub fn enrich(
        &mut self,
        input: &EnrichInput,
    ) -> Result<Result<Row, EnrichError>, PluginCallError> {
        let Bindings::Enricher(_) = self.bindings else {
            return Err(self.not_a("enricher"));
        };
        self.call(|store, b| match b {
            Bindings::Enricher(e) => e.engagement_pipeline_enrich().call_enrich(store, input),
            Bindings::Decoder(_) => unreachable!("checked above"),
        })
    }

    pub fn enrich_batch(
        &mut self,
        inputs: &[EnrichInput],
    ) -> Result<EnrichResults, PluginCallError> {
        let Bindings::Enricher(_) = self.bindings else {
            return Err(self.not_a("enricher"));
        };
        let results = self.call(|store, b| match b {
            Bindings::Enricher(e) => e
                .engagement_pipeline_enrich()
                .call_enrich_batch(store, inputs),
            Bindings::Decoder(_) => unreachable!("checked above"),
        })?;
        check_len(results, inputs.len())
    }
}

/// A batch call must answer every input: anything else is a plugin bug.
fn check_len<T>(results: Vec<T>, expected: usize) -> Result<Vec<T>, PluginCallError> {
    if results.len() == expected {
        Ok(results)
    } else {
        Err(PluginCallError::Trap {
            message: format!(
                "batch call returned {} results for {expected} inputs",
                results.len()
            ),
        })
    }
}

/// Turns a failed call into the reason an operator can act on.
fn classify(
    store: &mut Store<PluginState>,
    err: wasmtime::Error,
    deadline_ticks: u64,
) -> PluginCallError {
    let state = store.data_mut();
    let stderr = state.stderr.take();
    if state.limiter.hit {
        return PluginCallError::OutOfMemory {
            message: format!("{}", err.root_cause()),
        };
    }
    if let Some(Trap::Interrupt) = err.downcast_ref::<Trap>() {
        return PluginCallError::Timeout {
            deadline_ms: deadline_ticks * super::engine::EPOCH_TICK.as_millis() as u64,
        };
    }
    let trap = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{}", err.root_cause()),
    };
    // The panic message, when the plugin printed one, says more than the trap.
    let panic = stderr
        .lines()
        .skip_while(|line| !line.contains("panicked at"))
        .collect::<Vec<_>>()
        .join(" ");
    let message = if panic.is_empty() {
        trap
    } else {
        format!("{trap}: {panic}")
    };
    PluginCallError::Trap { message }
}
