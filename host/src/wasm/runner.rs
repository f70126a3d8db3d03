//! Keeps one instance of a slot's current plugin and replaces it when the
//! slot swaps or a call leaves the instance spent.

use std::sync::Arc;
use std::time::Instant;

use super::instance::PluginInstance;
use super::plugin::{LoadedPlugin, PluginId};
use super::registry::PluginSlot;
use super::{PluginCallError, PluginEngine, PluginSet};
use crate::telemetry::events;

/// Runs calls against whatever version a slot serves, one batch at a time.
pub struct PluginRunner {
    engine: Arc<PluginEngine>,
    plugins: Arc<PluginSet>,
    kind: super::PluginKind,
    active: Arc<LoadedPlugin>,
    instance: Option<PluginInstance>,
}

impl PluginRunner {
    pub fn new(plugins: Arc<PluginSet>, kind: super::PluginKind) -> Self {
        let active = plugins.slot(kind).current();
        Self {
            engine: plugins.loader.engine.clone(),
            plugins,
            kind,
            active,
            instance: None,
        }
    }

    fn slot(&self) -> &PluginSlot {
        self.plugins.slot(self.kind)
    }

    /// Picks up a swapped-in version. Call between batches only: every call
    /// of one batch then runs on one version.
    pub fn begin_batch(&mut self) -> Arc<PluginId> {
        let current = self.slot().current();
        if !Arc::ptr_eq(&current, &self.active) {
            self.active = current;
            self.instance = None;
        }
        self.active.id.clone()
    }

    /// The version this batch runs on.
    pub fn active(&self) -> &Arc<LoadedPlugin> {
        &self.active
    }

    /// Runs one call; counts it, and reports failures for rollback.
    pub fn call<R>(
        &mut self,
        items: usize,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, PluginCallError>,
    ) -> Result<R, PluginCallError> {
        let started = Instant::now();
        let result = match self.ensure_instance() {
            Ok(instance) => f(instance),
            Err(err) => Err(err),
        };
        match &result {
            Ok(_) => {
                events::plugin_batch_called(self.kind, &self.active.id, items, started.elapsed());
                self.slot().report_success(&self.active);
            }
            Err(err) => {
                events::plugin_call_failed(self.kind, &self.active.id, err);
                self.instance = None;
                // A rollback takes effect at the next batch, like a swap.
                self.slot().report_failure(&self.active);
            }
        }
        result
    }

    fn ensure_instance(&mut self) -> Result<&mut PluginInstance, PluginCallError> {
        if self.instance.as_ref().is_none_or(PluginInstance::is_spent) {
            self.instance = Some(PluginInstance::new(&self.engine, &self.active)?);
        }
        self.instance.as_mut().ok_or(PluginCallError::Spent)
    }
}
