//! The plugins in service: one slot per world, swapped atomically.
//!
//! Readers (the pipeline) `load()` the current plugin at the start of each
//! batch and keep that `Arc` for the whole batch, so a swap takes effect
//! between batches and in-flight work finishes on the version it started
//! with. A version that keeps failing after it went live is rolled back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;

use super::WasmError;
use super::plugin::{LoadedPlugin, PluginKind, PluginLoader};
use super::shadow::{Shadow, ShadowPolicy};
use crate::telemetry::events;

/// Consecutive failed calls after which a freshly swapped-in version is
/// rolled back to the one it replaced.
pub const ROLLBACK_AFTER_FAILURES: u32 = 5;

/// Decides whether a loaded, valid version may go live, e.g. whether every
/// sink accepts an enricher's output fields. `Err((category, reason))`
/// refuses it: `category` is a bounded metric label (`sink_schema`).
/// Called on the thread that reloads (the watcher's, or a blocking task),
/// never on the event path; it may block.
pub type AdmissionCheck =
    Arc<dyn Fn(&LoadedPlugin) -> Result<(), (&'static str, String)> + Send + Sync>;

/// The last file a slot refused, for `GET /plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// Bounded label, as in `engagement_plugin_rejected_total{reason}`.
    pub category: &'static str,
    pub reason: String,
    /// sha256 of the refused file, when it could be read.
    pub sha256: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// One world's plugin.
pub struct PluginSlot {
    kind: PluginKind,
    path: PathBuf,
    current: ArcSwap<LoadedPlugin>,
    previous: Mutex<Option<Arc<LoadedPlugin>>>,
    /// Files (by sha256) refused or rolled back, with why: not retried.
    rejected: Mutex<HashMap<String, String>>,
    swaps: AtomicU64,
    /// Asked before a new version goes live (see [`AdmissionCheck`]).
    admission: Mutex<Option<AdmissionCheck>>,
    last_rejection: Mutex<Option<Rejection>>,
    /// A version running beside the current one, outputs compared, never
    /// written (see `shadow`).
    shadow: ArcSwapOption<Shadow>,
    shadow_policy: Mutex<ShadowPolicy>,
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The new version serves from now on.
    Swapped {
        from: String,
        to: String,
        load_ms: f64,
    },
    /// The file is the version already serving.
    Unchanged,
    /// The file was refused; the current version keeps serving.
    Rejected { reason: String },
    /// The file runs in shadow beside the serving version.
    Shadowing {
        serving: String,
        shadow: String,
        load_ms: f64,
    },
}

impl PluginSlot {
    fn new(kind: PluginKind, path: PathBuf, plugin: LoadedPlugin) -> Self {
        Self {
            kind,
            path,
            current: ArcSwap::from_pointee(plugin),
            previous: Mutex::new(None),
            rejected: Mutex::new(HashMap::new()),
            swaps: AtomicU64::new(0),
            admission: Mutex::new(None),
            last_rejection: Mutex::new(None),
            shadow: ArcSwapOption::empty(),
            shadow_policy: Mutex::new(ShadowPolicy::default()),
        }
    }

    /// The plugin serving now.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.current.load_full()
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets (or clears) the check a new version must pass before it goes
    /// live. Versions refused by it are not remembered as refused: the
    /// cause is outside the file (a table without a column), so the same
    /// file is checked again on the next reload.
    pub fn set_admission(&self, check: Option<AdmissionCheck>) {
        *lock(&self.admission) = check;
    }

    /// The last file this slot refused (not counting "refused before").
    pub fn last_rejection(&self) -> Option<Rejection> {
        lock(&self.last_rejection).clone()
    }

    /// How many times a new version was swapped in.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Loads the slot's file and swaps it in if it is new and valid.
    pub fn reload(&self, loader: &PluginLoader) -> ReloadOutcome {
        let started = Instant::now();
        let bytes_sha = match std::fs::read(&self.path) {
            Ok(bytes) => super::sha256_hex(&bytes),
            Err(err) => {
                return self.refuse(
                    None,
                    "read",
                    format!("cannot read {}: {err}", self.path.display()),
                    false,
                );
            }
        };
        if bytes_sha == self.current().id.sha256 {
            return ReloadOutcome::Unchanged;
        }
        if let Some(reason) = lock(&self.rejected).get(&bytes_sha) {
            return ReloadOutcome::Rejected {
                reason: format!("refused before: {reason}"),
            };
        }
        match loader.load(&self.path, Some(self.kind)) {
            Ok(plugin) => {
                let admission = lock(&self.admission).clone();
                if let Some(check) = admission
                    && let Err((category, reason)) = check(&plugin)
                {
                    return self.refuse(
                        Some(bytes_sha),
                        category,
                        format!("{}: {reason}", plugin.id.label()),
                        false,
                    );
                }
                let plugin = Arc::new(plugin);
                let old = self.current.swap(plugin.clone());
                *lock(&self.previous) = Some(old.clone());
                self.swaps.fetch_add(1, Ordering::Relaxed);
                let outcome = ReloadOutcome::Swapped {
                    from: old.id.to_string(),
                    to: plugin.id.to_string(),
                    load_ms: started.elapsed().as_secs_f64() * 1000.0,
                };
                events::plugin_swapped(
                    self.kind,
                    &old.id,
                    &plugin.id,
                    plugin.from_cache,
                    started.elapsed(),
                );
                outcome
            }
            Err(err) => self.refuse(Some(bytes_sha), err.category(), err.to_string(), true),
        }
    }

    /// Logs and counts a refusal; `remember`: the file (by sha256) is not
    /// tried again.
    fn refuse(
        &self,
        sha: Option<String>,
        category: &'static str,
        reason: String,
        remember: bool,
    ) -> ReloadOutcome {
        events::plugin_rejected(self.kind, &self.path, category, &reason);
        *lock(&self.last_rejection) = Some(Rejection {
            category,
            reason: reason.clone(),
            sha256: sha.clone(),
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        });
        if remember && let Some(sha) = sha {
            lock(&self.rejected).insert(sha, reason.clone());
        }
        ReloadOutcome::Rejected { reason }
    }

    /// A call into `plugin` succeeded.
    pub fn report_success(&self, plugin: &LoadedPlugin) {
        plugin.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// A call into `plugin` trapped, timed out or ran out of memory. After
    /// [`ROLLBACK_AFTER_FAILURES`] in a row, a version that replaced another
    /// is rolled back to it. Returns whether it was.
    pub fn report_failure(&self, plugin: &Arc<LoadedPlugin>) -> bool {
        let failures = plugin.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < ROLLBACK_AFTER_FAILURES {
            return false;
        }
        let mut previous = lock(&self.previous);
        let Some(back) = previous.take() else {
            return false;
        };
        if !Arc::ptr_eq(&self.current.load(), plugin) {
            *previous = Some(back);
            return false;
        }
        let reason = format!("rolled back after {failures} consecutive failed calls");
        lock(&self.rejected).insert(plugin.id.sha256.clone(), reason.clone());
        self.current.store(back.clone());
        events::plugin_rolled_back(self.kind, &plugin.id, &back.id, &reason);
        true
    }

    /// `<name>.shadow.wasm` next to the slot's file: dropping a file there
    /// starts a shadow, removing it discards the shadow.
    pub fn shadow_path(&self) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.kind.to_string());
        self.path.with_file_name(format!("{stem}.shadow.wasm"))
    }

    /// The version in shadow, if any.
    pub fn shadow(&self) -> Option<Arc<Shadow>> {
        self.shadow.load_full()
    }

    pub fn shadow_policy(&self) -> ShadowPolicy {
        *lock(&self.shadow_policy)
    }

    pub fn set_shadow_policy(&self, policy: ShadowPolicy) {
        *lock(&self.shadow_policy) = policy;
    }

    /// Loads `path` as the shadow of this slot (replacing any shadow): the
    /// same checks as a swap (load, validate, admission), then it runs
    /// beside the current version from the next batch on.
    pub fn load_shadow(&self, loader: &PluginLoader, path: &Path) -> ReloadOutcome {
        let started = Instant::now();
        let sha = match std::fs::read(path) {
            Ok(bytes) => super::sha256_hex(&bytes),
            Err(err) => {
                return self.refuse(
                    None,
                    "read",
                    format!("cannot read {}: {err}", path.display()),
                    false,
                );
            }
        };
        if self.shadow().is_some_and(|s| s.plugin.id.sha256 == sha) {
            return ReloadOutcome::Unchanged;
        }
        if sha == self.current().id.sha256 {
            return ReloadOutcome::Rejected {
                reason: "the shadow file is the version serving".into(),
            };
        }
        let plugin = match loader.load(path, Some(self.kind)) {
            Ok(plugin) => plugin,
            Err(err) => return self.refuse(Some(sha), err.category(), err.to_string(), false),
        };
        let admission = lock(&self.admission).clone();
        if let Some(check) = admission
            && let Err((category, reason)) = check(&plugin)
        {
            return self.refuse(
                Some(sha),
                category,
                format!("{}: {reason}", plugin.id.label()),
                false,
            );
        }
        let current = self.current();
        tracing::info!(kind = %self.kind, serving = %current.id, shadow = %plugin.id, path = %path.display(), "shadow version started: outputs compared, not written");
        let shadow = plugin.id.to_string();
        self.shadow.store(Some(Arc::new(Shadow::new(plugin))));
        ReloadOutcome::Shadowing {
            serving: current.id.to_string(),
            shadow,
            load_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    /// Makes the shadow the current version (the previous one stays for a
    /// rollback). Takes effect at the next batch, like a swap. A shadow
    /// from [`Self::shadow_path`] is renamed over the slot's file, so a
    /// restart serves the promoted version.
    pub fn promote_shadow(&self, by: &str) -> Result<String, WasmError> {
        let shadow = self.shadow.swap(None).ok_or(WasmError::NoShadow)?;
        shadow.promoted.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let old = self.current.swap(shadow.plugin.clone());
        *lock(&self.previous) = Some(old.clone());
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let stats = shadow.stats();
        tracing::info!(kind = %self.kind, from = %old.id, to = %shadow.plugin.id, by, events = stats.events, differing = stats.differing, errors = stats.errors, "shadow version promoted");
        events::plugin_swapped(
            self.kind,
            &old.id,
            &shadow.plugin.id,
            shadow.plugin.from_cache,
            started.elapsed(),
        );
        if shadow.plugin.path == self.shadow_path()
            && let Err(err) = std::fs::rename(&shadow.plugin.path, &self.path)
        {
            tracing::warn!(error = %err, from = %shadow.plugin.path.display(), to = %self.path.display(), "promoted, but cannot move the shadow file over the serving one: a restart would serve the old file");
        }
        Ok(shadow.plugin.id.to_string())
    }

    /// Stops the shadow; returns what it was.
    pub fn discard_shadow(&self) -> Result<String, WasmError> {
        let shadow = self.shadow.swap(None).ok_or(WasmError::NoShadow)?;
        let stats = shadow.stats();
        tracing::info!(kind = %self.kind, shadow = %shadow.plugin.id, events = stats.events, differing = stats.differing, errors = stats.errors, "shadow version discarded");
        Ok(shadow.plugin.id.to_string())
    }

    /// Returns to the version before the current one, at once.
    pub fn rollback(&self) -> Result<String, WasmError> {
        let mut previous = lock(&self.previous);
        let back = previous.take().ok_or(WasmError::NothingToRollBack)?;
        let current = self.current.swap(back.clone());
        lock(&self.rejected).insert(current.id.sha256.clone(), "rolled back by operator".into());
        events::plugin_rolled_back(self.kind, &current.id, &back.id, "operator");
        Ok(back.id.to_string())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Both plugins and the loader that reloads them.
pub struct PluginSet {
    pub loader: PluginLoader,
    pub decoder: PluginSlot,
    pub enricher: PluginSlot,
}

impl PluginSet {
    /// Loads both plugins; either failing is a start-up error.
    pub fn load(
        loader: PluginLoader,
        decoder: PathBuf,
        enricher: PathBuf,
    ) -> Result<Arc<Self>, WasmError> {
        let d = loader
            .load(&decoder, Some(PluginKind::Decoder))
            .map_err(|err| err.at(&decoder))?;
        let e = loader
            .load(&enricher, Some(PluginKind::Enricher))
            .map_err(|err| err.at(&enricher))?;
        events::plugin_loaded(&d);
        events::plugin_loaded(&e);
        Ok(Arc::new(Self {
            decoder: PluginSlot::new(PluginKind::Decoder, decoder, d),
            enricher: PluginSlot::new(PluginKind::Enricher, enricher, e),
            loader,
        }))
    }

    pub fn slot(&self, kind: PluginKind) -> &PluginSlot {
        match kind {
            PluginKind::Decoder => &self.decoder,
            PluginKind::Enricher => &self.enricher,
        }
    }

    /// Reloads whichever slot `path` belongs to (none: `None`). The
    /// enricher's shadow file starts (or, removed, discards) a shadow.
    pub fn reload_path(&self, path: &Path) -> Option<(PluginKind, ReloadOutcome)> {
        let name = path.file_name()?;
        if self.enricher.shadow_path().file_name() == Some(name) {
            let slot = &self.enricher;
            if path.exists() {
                return Some((slot.kind, slot.load_shadow(&self.loader, path)));
            }
            if slot.discard_shadow().is_ok() {
                tracing::info!(path = %path.display(), "shadow file removed");
            }
            return Some((slot.kind, ReloadOutcome::Unchanged));
        }
        [&self.decoder, &self.enricher]
            .into_iter()
            .find(|slot| slot.path.file_name() == Some(name))
            .map(|slot| (slot.kind, slot.reload(&self.loader)))
    }
}
