//! `engagement-host plugin check FILE.wasm`: loads a component exactly as the
//! host would before a swap and says what it is, or why it is refused.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::settings::PluginSettings;
use crate::wasm::bindings::kind_name;
use crate::wasm::{LoadedPlugin, PluginKind};

/// Loads and validates `file`; `Ok(Err(reason))` when it is not a valid plugin.
pub fn check(settings: &PluginSettings, file: &Path) -> Result<Result<LoadedPlugin, String>> {
    let loader = settings.loader()?;
    Ok(loader.load(file, None).map_err(|err| err.to_string()))
}

/// Text report of a valid plugin.
pub fn describe(plugin: &LoadedPlugin) -> String {
    let world = match plugin.kind {
        PluginKind::Decoder => "decoder (engagement:pipeline/decode@0.1.0)",
        PluginKind::Enricher => "enricher (engagement:pipeline/enrich@0.1.0)",
    };
    let mut out = format!(
        "valid {} plugin\n  world:       {world}\n  name:        {}\n  version:     {}\n  sha256:      {}\n  description: {}\n  load time:   {:.1} ms{}\n  imports:\n",
        plugin.kind,
        plugin.id.name,
        plugin.id.version,
        plugin.id.sha256,
        plugin.description,
        plugin.load_ms,
        if plugin.from_cache {
            " (precompiled, from cache)"
        } else {
            ""
        },
    );
    for import in &plugin.imports {
        out.push_str(&format!("    {import}\n"));
    }
    if !plugin.output_fields.is_empty() {
        out.push_str("  output fields:\n");
        for f in &plugin.output_fields {
            out.push_str(&format!(
                "    {} {}{}  {}\n",
                f.name,
                kind_name(f.kind),
                if f.nullable { " (nullable)" } else { "" },
                f.description
            ));
        }
    }
    out
}

/// JSON report of a valid plugin.
pub fn to_json(plugin: &LoadedPlugin) -> serde_json::Value {
    json!({
        "valid": true,
        "kind": plugin.kind,
        "name": plugin.id.name,
        "version": plugin.id.version,
        "sha256": plugin.id.sha256,
        "description": plugin.description,
        "imports": plugin.imports,
        "output_fields": plugin.output_fields.iter().map(|f| json!({
            "name": f.name, "kind": kind_name(f.kind), "nullable": f.nullable, "description": f.description,
        })).collect::<Vec<_>>(),
        "load_ms": plugin.load_ms,
    })
}
