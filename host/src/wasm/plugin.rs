//! A plugin file turned into something ready to instantiate: compiled,
//! checked against the capability policy, matched to a world, and validated
//! by a smoke call. A file that fails any step never becomes a plugin.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Instant, SystemTime};

use wasmtime::component::{Component, InstancePre};

use super::artifact_cache::{self, ArtifactCache};
use super::bindings::decoder::DecoderPre;
use super::bindings::enricher::EnricherPre;
use super::bindings::{Column, ColumnSet, EnrichInput, FieldSpec, Message, Value};
use super::engine::PluginEngine;
use super::instance::PluginInstance;
use super::store::PluginState;
use super::{WasmError, policy};

/// The two plugin worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Decoder,
    Enricher,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Decoder => "decoder",
            PluginKind::Enricher => "enricher",
        })
    }
}

/// Who produced an output: recorded with every output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginId {
    pub name: String,
    pub version: String,
    /// sha256 of the component file, lowercase hex.
    pub sha256: String,
}

impl PluginId {
    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (sha256 {})",
            self.name,
            self.version,
            &self.sha256[..12]
        )
    }
}

/// The ready-to-instantiate form of a component.
#[derive(Clone)]
pub(crate) enum PluginPre {
    Decoder(DecoderPre<PluginState>),
    Enricher(EnricherPre<PluginState>),
}

/// A validated plugin.
pub struct LoadedPlugin {
    pub id: Arc<PluginId>,
    pub kind: PluginKind,
    pub description: String,
    pub path: PathBuf,
    pub loaded_at: SystemTime,
    /// Everything the component imports, versioned names.
    pub imports: Vec<String>,
    /// Fields an enricher adds (empty for a decoder).
    pub output_fields: Vec<FieldSpec>,
    /// Columns an enricher reads (`None`: whole rows).
    pub reads: Option<ColumnSet>,
    /// Whether compilation was skipped thanks to the artifact cache.
    pub from_cache: bool,
    /// Time from reading the file to a validated plugin.
    pub load_ms: f64,
    pub(crate) pre: PluginPre,
    /// `name@version`, for log lines from the plugin.
    pub(crate) label: Arc<str>,
    /// Consecutive failed calls since the last good one (for rollback).
    pub(crate) consecutive_failures: AtomicU32,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Loads plugins with one engine, cache and set of grants.
pub struct PluginLoader {
    pub engine: Arc<PluginEngine>,
    pub cache: Option<ArtifactCache>,
    /// Capabilities the operator granted beyond the default (see `policy`).
    pub grants: Vec<String>,
}

impl PluginLoader {
    /// Reads, compiles, checks and validates a plugin file. With `expected`,
    /// a component of the other world is refused.
    pub fn load(
        &self,
        path: &Path,
        expected: Option<PluginKind>,
    ) -> Result<LoadedPlugin, WasmError> {
        let started = Instant::now();
        let bytes = std::fs::read(path).map_err(|source| WasmError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(path, &bytes, expected, started)
    }

    fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        expected: Option<PluginKind>,
        started: Instant,
    ) -> Result<LoadedPlugin, WasmError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(WasmError::Compile(
                "not a WebAssembly file (no `\\0asm` header)".into(),
            ));
        }
        let sha256 = super::sha256_hex(bytes);
        let (component, from_cache) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes, &sha256)?,
            None => (artifact_cache::compile(&self.engine, bytes)?, false),
        };

        let imports = import_names(&self.engine, &component);
        let type_only = type_only_imports(&self.engine, &component);
        policy::check_imports(&imports, &type_only, &self.grants)?;

        let instance_pre = self
            .engine
            .linker
            .instantiate_pre(&component)
            .map_err(|err| WasmError::Link(format!("{err:#}")))?;
        let pre = match_world(&self.engine, &component, instance_pre, expected)?;

        let placeholder = Arc::new(PluginId {
            name: "unvalidated".into(),
            version: "0".into(),
            sha256: sha256.clone(),
        });
        let mut plugin = LoadedPlugin {
            kind: match pre {
                PluginPre::Decoder(_) => PluginKind::Decoder,
                PluginPre::Enricher(_) => PluginKind::Enricher,
            },
            id: placeholder,
            description: String::new(),
            path: path.to_path_buf(),
            loaded_at: SystemTime::now(),
            imports,
            output_fields: Vec::new(),
            reads: None,
            from_cache,
            load_ms: 0.0,
            pre,
            label: Arc::from(path.display().to_string()),
            consecutive_failures: AtomicU32::new(0),
        };
        validate(&self.engine, &mut plugin, sha256)?;
        plugin.load_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(plugin)
    }
}

fn import_names(engine: &PluginEngine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(&engine.engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Imported instances that bring types only, no function: they reach
/// nothing (e.g. `wasi:clocks/wall-clock` for `wasi:filesystem`'s `datetime`).
fn type_only_imports(engine: &PluginEngine, component: &Component) -> Vec<String> {
    use wasmtime::component::types::ComponentItem;
    component
        .component_type()
        .imports(&engine.engine)
        .filter(|(_, import)| match &import.ty {
            ComponentItem::ComponentInstance(instance) => {
                instance.exports(&engine.engine).all(|(_, item)| {
                    matches!(item.ty, ComponentItem::Type(_) | ComponentItem::Resource(_))
                })
            }
            _ => false,
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

fn export_names(engine: &PluginEngine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(&engine.engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn match_world(
    engine: &PluginEngine,
    component: &Component,
    instance_pre: InstancePre<PluginState>,
    expected: Option<PluginKind>,
) -> Result<PluginPre, WasmError> {
    let decoder = DecoderPre::new(instance_pre.clone());
    let enricher = EnricherPre::new(instance_pre);
    let found = match (decoder, enricher) {
        (Ok(pre), _) => PluginPre::Decoder(pre),
        (_, Ok(pre)) => PluginPre::Enricher(pre),
        (Err(decoder_err), Err(enricher_err)) => {
            let exports = export_names(engine, component);
            return Err(WasmError::WrongWorld(format!(
                "implements neither the decoder nor the enricher world of \
                 engagement:pipeline@0.1.0; it exports [{}] (decoder: {decoder_err:#}; \
                 enricher: {enricher_err:#})",
                exports.join(", ")
            )));
        }
    };
    let kind = match found {
        PluginPre::Decoder(_) => PluginKind::Decoder,
        PluginPre::Enricher(_) => PluginKind::Enricher,
    };
    match expected {
        Some(want) if want != kind => Err(WasmError::WrongWorld(format!(
            "this is a {kind} plugin where an {want} was expected"
        ))),
        _ => Ok(found),
    }
}

/// Instantiates once, reads `info`, and makes a smoke call on a built-in
/// sample. A trap, timeout or out-of-memory here refuses the plugin; a typed
/// error is fine (a decoder of another format may reject our sample).
fn validate(
    engine: &Arc<PluginEngine>,
    plugin: &mut LoadedPlugin,
    sha256: String,
) -> Result<(), WasmError> {
    let pre = plugin.pre.clone();
    let label = plugin.label.clone();
    let mut instance = PluginInstance::from_pre(engine, pre, label, Arc::clone(&plugin.id))
        .map_err(|err| WasmError::Validation(err.to_string()))?;
    let fail = |err: super::PluginCallError| WasmError::Validation(err.to_string());
    let (info, fields, reads) = match plugin.kind {
        PluginKind::Decoder => {
            let info = instance.decoder_info().map_err(fail)?;
            if let Err(typed) = instance.decode(&sample_message()).map_err(fail)? {
                tracing::debug!(error = ?typed, "decoder refuses the built-in sample (allowed)");
            }
            (info, Vec::new(), None)
        }
        PluginKind::Enricher => {
            let info = instance.enricher_info().map_err(fail)?;
            let (event, content) = sample_event();
            for content in [Some(content), None] {
                let input = EnrichInput {
                    event: event.clone(),
                    content,
                };
                if let Err(typed) = instance.enrich(&input).map_err(fail)? {
                    tracing::debug!(error = ?typed, "enricher refuses the built-in sample (allowed)");
                }
            }
            (info.plugin, info.output_fields, info.reads)
        }
    };
    if info.name.trim().is_empty() || info.version.trim().is_empty() {
        return Err(WasmError::Validation(
            "info() returned an empty name or version".into(),
        ));
    }
    plugin.label = Arc::from(format!("{}@{}", info.name, info.version));
    plugin.id = Arc::new(PluginId {
        name: info.name,
        version: info.version,
        sha256,
    });
    plugin.description = info.description;
    plugin.output_fields = fields;
    plugin.reads = reads;
    Ok(())
}

/// A schemas-off Debezium insert of an engagement event.
pub(crate) fn sample_message() -> Message {
    let value = r#"{"before":null,"after":{"id":1,"content_id":"c3d4e5f6-a7b8-4c9d-8e0f-112233445566","user_id":"9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d","event_type":"play","event_ts":"2024-05-01T12:05:00.500000Z","duration_ms":45000,"device":"ios","raw_payload":null},"source":{"version":"3.6.3.Final","connector":"postgresql","name":"pgcdc","ts_ms":1795672191103,"db":"users_data","schema":"public","table":"engagement_events","lsn":45185920},"op":"c","ts_ms":1795672191471}"#;
    Message {
        topic: "pgcdc.public.engagement_events".into(),
        key: Some(r#"{"id":1}"#.into()),
        data: Some(value.as_bytes().to_vec()),
        attributes: Vec::new(),
    }
}

fn column(name: &str, value: Value) -> Column {
    Column {
        name: name.into(),
        value,
    }
}

/// An engagement event and its content, as the default decoder produces them.
pub(crate) fn sample_event() -> (Vec<Column>, Vec<Column>) {
    let content_id = "c3d4e5f6-a7b8-4c9d-8e0f-112233445566";
    let event = vec![
        column("id", Value::Int(1)),
        column("content_id", Value::Text(content_id.into())),
        column(
            "user_id",
            Value::Text("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d".into()),
        ),
        column("event_type", Value::Text("play".into())),
        column(
            "event_ts",
            Value::Text("2024-05-01T12:05:00.500000Z".into()),
        ),
        column("duration_ms", Value::Int(45000)),
        column("device", Value::Text("ios".into())),
        column("raw_payload", Value::Null),
    ];
    let content = vec![
        column("id", Value::Text(content_id.into())),
        column("slug", Value::Text("ep-101-deep-dive".into())),
        column("title", Value::Text("Deep Dive #101".into())),
        column("content_type", Value::Text("podcast".into())),
        column("length_seconds", Value::Int(3600)),
        column(
            "publish_ts",
            Value::Text("2024-05-01T12:00:00.000000Z".into()),
        ),
    ];
    (event, content)
}
