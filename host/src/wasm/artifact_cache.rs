//! Precompiled plugins on disk, keyed by the file's sha256 and the engine's
//! compatibility hash, so a restart or a swap back to a known version skips
//! Cranelift (seconds for a large component) and deserialises instead.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use super::WasmError;
use super::engine::PluginEngine;

/// A directory of `<sha256>-<engine hash>.cwasm` files.
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Loads the precompiled component, or compiles and stores it. The bool
    /// says whether it came from the cache.
    pub(crate) fn load_or_compile(
        &self,
        engine: &PluginEngine,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, bool), WasmError> {
        let mut hasher = DefaultHasher::new();
        engine
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let path = self
            .dir
            .join(format!("{sha256}-{:016x}.cwasm", hasher.finish()));

        if path.exists() {
            // SAFETY: the file was written by `precompile_component` below
            // into a directory only this host writes to; its name binds it to
            // this engine's settings and to the source file's hash.
            match unsafe { Component::deserialize_file(&engine.engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "discarding unreadable precompiled plugin");
                    let _ = fs::remove_file(&path);
                }
            }
        }

        let artifact = engine
            .engine
            .precompile_component(bytes)
            .map_err(|err| WasmError::Compile(format!("{err:#}")))?;
        // The cache only saves time; failing to write it is not an error.
        if let Err(err) = store(&self.dir, &path, &artifact) {
            tracing::warn!(path = %path.display(), error = %err, "could not cache precompiled plugin");
        }
        // SAFETY: `artifact` was produced just above by this engine.
        let component = unsafe { Component::deserialize(&engine.engine, &artifact) }
            .map_err(|err| WasmError::Compile(format!("{err:#}")))?;
        Ok((component, false))
    }
}

fn store(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    // Write then rename, so a crash never leaves half a file under the key.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, artifact)?;
    fs::rename(&tmp, path)
}

/// Compiles without the cache.
pub(crate) fn compile(engine: &PluginEngine, bytes: &[u8]) -> Result<Component, WasmError> {
    Component::new(&engine.engine, bytes).map_err(|err| WasmError::Compile(format!("{err:#}")))
}
