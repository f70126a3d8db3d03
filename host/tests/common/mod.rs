//! Helpers shared by the integration tests: where the built plugins and the
//! fixtures are, a loader with a shared precompiled-artifact cache (so each
//! component is compiled once per test run, not once per test), and a way to
//! run the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use engagement_host::wasm::{ArtifactCache, PluginEngine, PluginLimits, PluginLoader};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A built plugin from `dist/` (see `scripts/build-plugins.sh`).
pub fn plugin(rel: &str) -> PathBuf {
    let path = repo_root().join("dist").join(rel);
    assert!(
        path.exists(),
        "{} is missing: build the plugins first (scripts/build-plugins.sh)",
        path.display()
    );
    path
}

pub fn decoder_wasm() -> PathBuf {
    plugin("plugins/decoder.wasm")
}

pub fn enricher_wasm() -> PathBuf {
    plugin("plugins/enricher.wasm")
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// Precompiled components shared by every test of the run.
pub fn cache_dir() -> PathBuf {
    repo_root().join("target/test-plugin-cache")
}

pub fn loader_with(limits: PluginLimits) -> PluginLoader {
    PluginLoader {
        engine: PluginEngine::new(limits).expect("engine"),
        cache: Some(ArtifactCache::new(cache_dir())),
        grants: Vec::new(),
    }
}

pub fn loader() -> PluginLoader {
    loader_with(PluginLimits::default())
}

pub fn engine_of(loader: &PluginLoader) -> Arc<PluginEngine> {
    loader.engine.clone()
}

/// A plugin directory of its own, with the default decoder and enricher.
pub fn plugin_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(decoder_wasm(), dir.join("decoder.wasm")).expect("copy decoder");
    std::fs::copy(enricher_wasm(), dir.join("enricher.wasm")).expect("copy enricher");
    dir
}

/// Replaces `dest` by `src` the way a deploy should: copy aside, rename over.
pub fn deploy(src: &Path, dest: &Path) {
    let tmp = dest.with_extension("wasm.tmp");
    std::fs::copy(src, &tmp).expect("copy");
    std::fs::rename(&tmp, dest).expect("rename");
}

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_engagement-host"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// `replay` with the given plugin dir and extra args; panics with stderr on failure.
pub fn replay(plugins: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let out = bin()
        .arg("replay")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .arg("--plugins")
        .arg(plugins)
        .arg("--cache-dir")
        .arg(cache_dir())
        .arg("--summary-json")
        .args(extra)
        .output()
        .expect("run engagement-host");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON summary `replay --summary-json` printed last on stderr.
pub fn summary(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no summary in: {stderr}"));
    serde_json::from_str(line).expect("summary JSON")
}

pub fn read_ndjson(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("read output");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

pub fn write_ndjson(path: &Path, lines: &[serde_json::Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).expect("write input");
}

/// The fixture's lines as JSON.
pub fn fixture_lines(name: &str) -> Vec<serde_json::Value> {
    read_ndjson(&fixture(name))
}

pub const SHORT: Duration = Duration::from_millis(50);

/// A fixture JSON value as the WIT value the decoder gives for it (the
/// tests' independent oracle): scalars as themselves, anything else as text.
pub fn json_to_value(json: &serde_json::Value) -> engagement_host::wasm::bindings::Value {
    use engagement_host::wasm::bindings::Value;
    use serde_json::Value as Json;
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) if n.is_i64() => Value::Int(n.as_i64().unwrap_or_default()),
        Json::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    }
}

/// The BigQuery emulator's REST base (`.../bigquery/v2`), from
/// `BIGQUERY_EMULATOR_URL` (what `scripts/emulators/start.sh` writes) or the default port.
pub fn bigquery_url() -> String {
    let url =
        std::env::var("BIGQUERY_EMULATOR_URL").unwrap_or_else(|_| "http://127.0.0.1:9050".into());
    let url = url.trim_end_matches('/').to_string();
    if url.ends_with("/bigquery/v2") {
        url
    } else {
        format!("{url}/bigquery/v2")
    }
}

/// `host:port` of the Pub/Sub emulator.
pub fn pubsub_host() -> String {
    std::env::var("PUBSUB_EMULATOR_HOST").unwrap_or_else(|_| "127.0.0.1:8085".into())
}

/// A number that differs between runs, for fresh topic/dataset names (the
/// emulators keep everything while they run).
pub fn unique_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Rows of a query on the BigQuery emulator, each as the REST API's cell
/// values (strings, or null); the emulator's `errors` when it refused it.
pub async fn try_bigquery_rows(
    sql: &str,
) -> Result<Vec<Vec<serde_json::Value>>, serde_json::Value> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/projects/streaming-project/queries",
            bigquery_url()
        ))
        .json(&serde_json::json!({"query": sql, "useLegacySql": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if let Some(errors) = answer.get("errors") {
        return Err(errors.clone());
    }
    Ok(answer["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r["f"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["v"].clone())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Like [`try_bigquery_rows`], for a query that must succeed.
pub async fn bigquery_rows(sql: &str) -> Vec<Vec<serde_json::Value>> {
    match try_bigquery_rows(sql).await {
        Ok(rows) => rows,
        Err(errors) => panic!("{sql}: {errors}"),
    }
}

/// Sends SIGTERM and waits (30 s at most) for the process to exit.
pub fn sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "host did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
