//! Shared by the benchmarks: paths and the bulk fixture.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use engagement_host::commands::replay::ReplaySettings;
use engagement_host::settings::PluginSettings;
use engagement_host::source::Message;
use engagement_host::state::StateConfig;
use engagement_host::wasm::PluginLimits;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bulk fixture's messages (2 contents, then 80,000 events), skipping `skip`.
pub fn bulk_messages(skip: usize, take: usize) -> Vec<Message> {
    let file =
        std::fs::File::open(root().join("tests/fixtures/bulk_schemas_off.ndjson.gz")).unwrap();
    let lines =
        std::io::BufRead::lines(std::io::BufReader::new(flate2::read::GzDecoder::new(file)));
    lines
        .skip(skip)
        .take(take)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            Message {
                topic: v["destination"].as_str().unwrap().into(),
                key: v["key"].as_str().map(Into::into),
                data: v["value"].as_str().map(|s| s.as_bytes().to_vec()),
                attributes: Vec::new(),
            }
        })
        .collect()
}

/// `replay` of `input` into `output` with the built plugins (dist/plugins),
/// batches of 512, no sinks, state in memory.
pub fn replay_settings(input: PathBuf, output: PathBuf) -> ReplaySettings {
    ReplaySettings {
        input,
        output,
        dead_letters: None,
        state_dir: None,
        batch_size: 512,
        rate: None,
        state: StateConfig::default(),
        max_message_bytes: 4 << 20,
        plugins: PluginSettings {
            dir: root().join("dist/plugins"),
            decoder_file: "decoder.wasm".into(),
            enricher_file: "enricher.wasm".into(),
            watch: false,
            cache_dir: Some(root().join("target/bench-plugin-cache")),
            limits: PluginLimits::default(),
            grants: Vec::new(),
        },
        redis: None,
        api: None,
        shadow: Default::default(),
    }
}
