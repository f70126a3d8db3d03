//! Named, past-tense events: a log line and the matching metrics.
//!
//! Metric names follow `engagement_<name>_<unit>`; counters end in `_total`;
//! labels are bounded (plugin kind, stage, error type, version label).

use std::path::Path;
use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::wasm::{LoadedPlugin, PluginCallError, PluginId, PluginKind};

/// A plugin was loaded at start-up.
pub fn plugin_loaded(plugin: &LoadedPlugin) {
    tracing::info!(
        kind = %plugin.kind,
        plugin = %plugin.id,
        path = %plugin.path.display(),
        from_cache = plugin.from_cache,
        load_ms = format!("{:.1}", plugin.load_ms),
        "plugin loaded"
    );
    gauge!("engagement_plugin_loaded_timestamp_seconds", "kind" => plugin.kind.to_string())
        .set(unix_seconds());
}

/// A new plugin version went live.
pub fn plugin_swapped(
    kind: PluginKind,
    from: &PluginId,
    to: &PluginId,
    from_cache: bool,
    took: Duration,
) {
    tracing::info!(%kind, from = %from, to = %to, from_cache, took_ms = took.as_millis() as u64, "plugin swapped");
    counter!("engagement_plugin_swaps_total", "kind" => kind.to_string()).increment(1);
    histogram!("engagement_plugin_swap_duration_seconds", "kind" => kind.to_string())
        .record(took.as_secs_f64());
}

/// A plugin file was refused; the serving version stays. `category` is a
/// bounded label (`capability`, `validation`, `sink_schema`, ...).
pub fn plugin_rejected(kind: PluginKind, path: &Path, category: &'static str, reason: &str) {
    tracing::warn!(%kind, path = %path.display(), category, reason, "plugin refused, current version keeps serving");
    counter!("engagement_plugin_rejected_total", "kind" => kind.to_string(), "reason" => category)
        .increment(1);
}

/// A plugin version was rolled back.
pub fn plugin_rolled_back(kind: PluginKind, from: &PluginId, to: &PluginId, reason: &str) {
    tracing::warn!(%kind, from = %from, to = %to, reason, "plugin rolled back");
    counter!("engagement_plugin_rollbacks_total", "kind" => kind.to_string()).increment(1);
}

/// A plugin call failed (trap, timeout, out of memory).
pub fn plugin_call_failed(kind: PluginKind, plugin: &PluginId, error: &PluginCallError) {
    tracing::warn!(%kind, plugin = %plugin, error = %error, "plugin call failed");
    counter!(
        "engagement_plugin_call_errors_total",
        "kind" => kind.to_string(),
        "plugin" => plugin.label(),
        "error_type" => error.kind(),
    )
    .increment(1);
}

/// A batch of plugin calls finished.
pub fn plugin_batch_called(kind: PluginKind, plugin: &PluginId, items: usize, took: Duration) {
    counter!("engagement_plugin_calls_total", "kind" => kind.to_string(), "plugin" => plugin.label())
        .increment(items as u64);
    histogram!("engagement_plugin_call_duration_seconds", "kind" => kind.to_string(), "plugin" => plugin.label())
        .record(took.as_secs_f64());
}

/// A message or event went to the dead letters.
pub fn dead_lettered(stage: &'static str, reason: &str) {
    tracing::warn!(stage, reason, "dead letter");
    counter!("engagement_dead_letters_total", "stage" => stage).increment(1);
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
