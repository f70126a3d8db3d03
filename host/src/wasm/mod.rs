//! The WebAssembly plugin runtime.
//!
//! - [`engine`]: one wasmtime engine (pooling allocator, epoch deadlines) and
//!   the linker with the only imports a plugin gets.
//! - [`plugin`]: a file becomes a [`LoadedPlugin`]: compiled (or read from the
//!   [`artifact_cache`]), checked by the capability [`policy`], matched to a
//!   world, validated by a smoke call.
//! - [`instance`]: a live instance and the typed calls into it; a trap is an
//!   error value, never a host crash.
//! - [`registry`]: the plugin serving each world, swapped atomically;
//!   [`reload`] watches the directory and triggers swaps.
//!
//! Nothing here knows about Debezium, state or sinks.

pub mod artifact_cache;
pub mod bindings;
pub mod engine;
mod host;
pub mod instance;
pub mod plugin;
mod policy;
pub mod registry;
pub mod reload;
pub mod runner;
pub mod shadow;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use artifact_cache::ArtifactCache;
pub use engine::PluginEngine;
pub use instance::PluginInstance;
pub use plugin::{LoadedPlugin, PluginId, PluginKind, PluginLoader};
pub use registry::{AdmissionCheck, PluginSet, PluginSlot, Rejection, ReloadOutcome};
pub use runner::PluginRunner;
pub use shadow::{Shadow, ShadowPolicy, ShadowStats};

/// Per-call and per-instance limits.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// Wall time one call may take (a batch call counts as one).
    pub call_deadline: Duration,
    /// Linear memory one instance may grow to.
    pub memory_cap_bytes: usize,
    /// Instances alive at once (pool size).
    pub max_instances: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            call_deadline: Duration::from_millis(250),
            memory_cap_bytes: 128 << 20,
            max_instances: 64,
        }
    }
}

/// Loading a plugin failed: the file is not (or not yet) a usable plugin.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot create the WebAssembly engine: {0:#}")]
    Engine(wasmtime::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// Every import the policy refused, in the component's order.
    #[error("{}", policy::denied_message(imports))]
    CapabilityDenied { imports: Vec<String> },
    #[error("cannot link the plugin's imports: {0}")]
    Link(String),
    #[error("wrong world: {0}")]
    WrongWorld(String),
    #[error("failed validation: {0}")]
    Validation(String),
    #[error("cannot watch the plugin directory: {0}")]
    Watch(String),
    #[error("no previous version to roll back to")]
    NothingToRollBack,
    #[error("no version in shadow")]
    NoShadow,
    #[error("{path}: {source}")]
    At {
        path: PathBuf,
        #[source]
        source: Box<WasmError>,
    },
}

impl WasmError {
    /// A short, bounded label for metrics (`reason` of
    /// `engagement_plugin_rejected_total`).
    pub fn category(&self) -> &'static str {
        match self {
            WasmError::Read { .. } => "read",
            WasmError::Compile(_) => "compile",
            WasmError::CapabilityDenied { .. } => "capability",
            WasmError::Link(_) => "link",
            WasmError::WrongWorld(_) => "wrong_world",
            WasmError::Validation(_) => "validation",
            WasmError::At { source, .. } => source.category(),
            WasmError::Engine(_)
            | WasmError::Thread(_)
            | WasmError::Watch(_)
            | WasmError::NothingToRollBack
            | WasmError::NoShadow => "other",
        }
    }

    /// Names the file the error is about.
    pub fn at(self, path: &Path) -> Self {
        match self {
            WasmError::Read { .. } | WasmError::At { .. } => self,
            other => WasmError::At {
                path: path.to_path_buf(),
                source: Box::new(other),
            },
        }
    }
}

/// A call into a plugin failed (as opposed to returning a typed error).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginCallError {
    #[error("plugin trapped: {message}")]
    Trap { message: String },
    #[error("plugin exceeded its {deadline_ms} ms deadline")]
    Timeout { deadline_ms: u64 },
    #[error("plugin ran out of memory: {message}")]
    OutOfMemory { message: String },
    #[error("plugin instance is unusable after an earlier failure")]
    Spent,
}

impl PluginCallError {
    /// A short, bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginCallError::Trap { .. } => "trap",
            PluginCallError::Timeout { .. } => "timeout",
            PluginCallError::OutOfMemory { .. } => "out_of_memory",
            PluginCallError::Spent => "spent",
        }
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
