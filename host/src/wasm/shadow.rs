//! Shadow deploys: a new version runs beside the serving one on the same
//! live events, its outputs compared with the serving version's and never
//! written. What the comparison found is kept here ([`Shadow`]); the
//! comparison itself is the enrich stage's (`crate::enrich::shadow`), the
//! promotion and discard are the slot's (`registry`).
//!
//! Promotion policy ([`ShadowPolicy`]): after `promote_after` compared
//! events (0: never automatically) with no shadow error, and with at most
//! `max_diff_ratio` of them differing. Differences are what a new version is
//! for (a new field differs on every event), so by default any ratio is
//! fine; an operator who expects a refactoring to change nothing sets
//! `max_diff_ratio = 0`. A shadow that misses the bar keeps running,
//! unpromoted, until promoted or discarded by hand.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use super::plugin::LoadedPlugin;

/// When a shadow is promoted by itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShadowPolicy {
    /// Compared events after which a shadow that qualifies is promoted;
    /// 0: only by command.
    pub promote_after: u64,
    /// Most share (0..=1) of compared events that may differ.
    pub max_diff_ratio: f64,
    /// Differences kept for `GET /plugins/enricher/shadow`.
    pub samples: usize,
}

impl Default for ShadowPolicy {
    fn default() -> Self {
        Self {
            promote_after: 0,
            max_diff_ratio: 1.0,
            samples: 20,
        }
    }
}

/// What the comparison found so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowStats {
    /// Events run by both versions and compared.
    pub events: u64,
    /// Of those, events whose outputs differ.
    pub differing: u64,
    /// Events the shadow failed on (call failure, or a typed error where
    /// the serving version succeeded).
    pub errors: u64,
    /// The last differences, newest last.
    pub samples: VecDeque<serde_json::Value>,
    /// Why the shadow was not promoted when it reached `promote_after`.
    pub held_back: Option<String>,
}

impl ShadowStats {
    /// Share of compared events that differ.
    pub fn diff_ratio(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.differing as f64 / self.events as f64
        }
    }
}

/// A version in shadow.
pub struct Shadow {
    pub plugin: Arc<LoadedPlugin>,
    pub started_at: SystemTime,
    pub(crate) stats: Mutex<ShadowStats>,
    /// Set when it became the serving version.
    pub(crate) promoted: AtomicBool,
}

impl Shadow {
    pub(crate) fn new(plugin: LoadedPlugin) -> Self {
        Self {
            plugin: Arc::new(plugin),
            started_at: SystemTime::now(),
            stats: Mutex::new(ShadowStats::default()),
            promoted: AtomicBool::new(false),
        }
    }

    /// Whether it was promoted to serving.
    pub fn promoted(&self) -> bool {
        self.promoted.load(Ordering::Relaxed)
    }

    /// A copy of the counts and samples.
    pub fn stats(&self) -> ShadowStats {
        lock(&self.stats).clone()
    }

    /// Adds one batch's comparison: `events` compared, `differing` of them
    /// different, `errors` shadow failures, `samples` new differences.
    pub fn record(
        &self,
        events: u64,
        differing: u64,
        errors: u64,
        samples: Vec<serde_json::Value>,
        keep: usize,
    ) {
        let mut stats = lock(&self.stats);
        stats.events += events;
        stats.differing += differing;
        stats.errors += errors;
        for sample in samples {
            stats.samples.push_back(sample);
        }
        while stats.samples.len() > keep {
            stats.samples.pop_front();
        }
    }

    /// Whether `policy` promotes the shadow now: `Ok(true)` yes,
    /// `Ok(false)` not yet, `Err(why)` it reached the count but does not
    /// qualify (kept in `held_back`).
    pub fn due(&self, policy: &ShadowPolicy) -> Result<bool, String> {
        let mut stats = lock(&self.stats);
        if policy.promote_after == 0 || stats.events < policy.promote_after {
            return Ok(false);
        }
        let why = if stats.errors > 0 {
            Some(format!("{} shadow errors", stats.errors))
        } else if stats.diff_ratio() > policy.max_diff_ratio {
            Some(format!(
                "{:.4} of events differ, over shadow_max_diff_ratio {}",
                stats.diff_ratio(),
                policy.max_diff_ratio
            ))
        } else {
            None
        };
        match why {
            None => Ok(true),
            // Said once; re-evaluated every batch (the ratio may fall).
            Some(why) => {
                let first = stats.held_back.is_none();
                stats.held_back = Some(why.clone());
                if first { Err(why) } else { Ok(false) }
            }
        }
    }

    /// JSON for `GET /plugins/enricher/shadow`.
    pub fn to_json(&self) -> serde_json::Value {
        let stats = self.stats();
        serde_json::json!({
            "name": self.plugin.id.name,
            "version": self.plugin.id.version,
            "sha256": self.plugin.id.sha256,
            "path": self.plugin.path,
            "started_at": humantime::format_rfc3339_millis(self.started_at).to_string(),
            "events": stats.events,
            "differing": stats.differing,
            "errors": stats.errors,
            "diff_ratio": stats.diff_ratio(),
            "held_back": stats.held_back,
            "samples": stats.samples,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
