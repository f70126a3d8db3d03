//! `engagement:pipeline/log`: plugin log lines go to the host's `tracing`
//! log, tagged with the plugin that wrote them, under a per-instance budget so
//! a chatty plugin cannot flood the log.

use crate::wasm::bindings::LogLevel;
use crate::wasm::bindings::decoder::engagement::pipeline::{log, types};
use crate::wasm::store::PluginState;

/// Lines one instance may log between two resets of its budget (per call batch).
pub(crate) const LOG_LINES_PER_CALL: u32 = 100;

impl log::Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.log_budget == 0 {
            return;
        }
        self.log_budget -= 1;
        let plugin = &*self.label;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl types::Host for PluginState {}
