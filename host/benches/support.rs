//! Shared by the benchmarks: paths and the bulk fixture.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use engagement_host::source::Message;

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
