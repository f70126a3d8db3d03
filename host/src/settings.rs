//! Settings shared by commands, built once from the command line (and, for
//! `run`, the config file), then validated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{LimitArgs, PluginArgs};
use crate::wasm::{ArtifactCache, PluginEngine, PluginLimits, PluginLoader, PluginSet, WasmError};

/// Where the plugins are and how they run.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    pub dir: PathBuf,
    pub decoder_file: String,
    pub enricher_file: String,
    pub watch: bool,
    pub cache_dir: Option<PathBuf>,
    pub limits: PluginLimits,
    pub grants: Vec<String>,
}

impl PluginSettings {
    pub fn decoder_path(&self) -> PathBuf {
        self.dir.join(&self.decoder_file)
    }

    pub fn enricher_path(&self) -> PathBuf {
        self.dir.join(&self.enricher_file)
    }

    /// Builds the engine and loader.
    pub fn loader(&self) -> Result<PluginLoader, WasmError> {
        Ok(PluginLoader {
            engine: PluginEngine::new(self.limits.clone())?,
            cache: self.cache_dir.clone().map(ArtifactCache::new),
            grants: self.grants.clone(),
        })
    }

    /// Loads both plugins.
    pub fn load(&self) -> Result<Arc<PluginSet>, WasmError> {
        PluginSet::load(self.loader()?, self.decoder_path(), self.enricher_path())
    }
}

impl From<&LimitArgs> for PluginLimits {
    fn from(args: &LimitArgs) -> Self {
        PluginLimits {
            call_deadline: Duration::from_millis(args.call_deadline_ms.max(1)),
            memory_cap_bytes: args.memory_cap_mib.max(1) << 20,
            ..PluginLimits::default()
        }
    }
}

impl From<&PluginArgs> for PluginSettings {
    fn from(args: &PluginArgs) -> Self {
        let cache_dir = if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        };
        PluginSettings {
            dir: args.plugins.clone(),
            decoder_file: args.decoder.clone(),
            enricher_file: args.enricher.clone(),
            watch: !args.no_watch,
            cache_dir,
            limits: PluginLimits::from(&args.limits),
            grants: args.limits.grants.clone(),
        }
    }
}

/// `$XDG_CACHE_HOME/engagement-host/plugins`, else `~/.cache/...`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("engagement-host").join("plugins"))
}
