//! Watches the plugin directory and reloads a slot when its file changes.
//!
//! Events are debounced (an editor or `cp` writes a file in several steps);
//! compiling and validating run on the watcher's own thread, never on the
//! thread that processes events. Deploy by writing a new file and renaming it
//! over the old one: a half-written file fails validation and is refused
//! anyway, but a rename makes the change a single event.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::WasmError;
use super::registry::{PluginSet, ReloadOutcome};

/// How long a file must be quiet before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Keeps the watch alive; dropping it stops watching.
pub struct PluginWatcher {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// Starts watching `dir` for changes to the files of `plugins`.
pub fn watch(dir: &Path, plugins: Arc<PluginSet>) -> Result<PluginWatcher, WasmError> {
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) => {
            let mut seen = Vec::new();
            for event in events {
                if seen.contains(&event.path) {
                    continue;
                }
                seen.push(event.path.clone());
                if let Some((kind, outcome)) = plugins.reload_path(&event.path) {
                    match outcome {
                        ReloadOutcome::Unchanged => {
                            tracing::debug!(%kind, path = %event.path.display(), "plugin file touched, content unchanged");
                        }
                        // Swaps and refusals are logged where they happen.
                        ReloadOutcome::Swapped { .. }
                        | ReloadOutcome::Rejected { .. }
                        | ReloadOutcome::Shadowing { .. } => {}
                    }
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "plugin directory watch error"),
    };
    let mut debouncer =
        new_debouncer(DEBOUNCE, handler).map_err(|e| WasmError::Watch(e.to_string()))?;
    debouncer
        .watcher()
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| WasmError::Watch(format!("{}: {e}", dir.display())))?;
    Ok(PluginWatcher {
        _debouncer: debouncer,
    })
}
