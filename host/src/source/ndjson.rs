//! NDJSON files of messages (`replay`): one JSON object per line,
//! `{"destination": topic, "key": key-json-or-null, "value": value-json-or-null,
//! "attributes": {..}}` (the fixtures' format; `topic` is accepted for
//! `destination`). A `.gz` file is decompressed on the fly.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::read::MultiGzDecoder;
use serde::Deserialize;

use super::{Message, Origin};

/// One line of the file.
#[derive(Debug, Deserialize)]
struct Line {
    #[serde(alias = "topic")]
    destination: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    /// The value as base64, for bytes that are not UTF-8 (dead letters of
    /// such messages are written this way, so they replay as they came).
    #[serde(default)]
    value_base64: Option<String>,
    #[serde(default)]
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A line that is not a message: it goes to the dead letters as it is.
#[derive(Debug)]
pub struct BadLine {
    pub origin: Origin,
    pub text: String,
    pub reason: String,
}

/// Reads messages from a file or stdin (`-`).
pub struct NdjsonSource {
    lines: io::Lines<Box<dyn BufRead + Send>>,
    name: String,
    line_no: u64,
}

impl NdjsonSource {
    pub fn open(path: &Path) -> io::Result<Self> {
        let name = path.display().to_string();
        let raw: Box<dyn Read + Send> = if name == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path)?)
        };
        let reader: Box<dyn BufRead + Send> = if name.ends_with(".gz") {
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(raw)))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, raw))
        };
        Ok(Self {
            lines: reader.lines(),
            name: format!("file:{name}"),
            line_no: 0,
        })
    }
}

impl Iterator for NdjsonSource {
    type Item = io::Result<Result<(Message, Origin), BadLine>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(line) => line,
                // A line that is not UTF-8 is a bad line, not the end of input.
                Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                    self.line_no += 1;
                    return Some(Ok(Err(BadLine {
                        origin: self.origin(),
                        text: String::new(),
                        reason: format!("line is not UTF-8: {err}"),
                    })));
                }
                Err(err) => return Some(Err(err)),
            };
            self.line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            let origin = self.origin();
            return Some(Ok(parse_line(&line, origin)));
        }
    }
}

impl NdjsonSource {
    fn origin(&self) -> Origin {
        Origin {
            source: self.name.clone(),
            position: format!("line {}", self.line_no),
        }
    }
}

fn parse_line(text: &str, origin: Origin) -> Result<(Message, Origin), BadLine> {
    let line: Line = serde_json::from_str(text).map_err(|err| BadLine {
        origin: origin.clone(),
        text: text.to_owned(),
        reason: format!("not a message line: {err}"),
    })?;
    let attributes = line
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let data = match (line.value, line.value_base64) {
        (_, Some(b64)) => Some(BASE64.decode(b64.as_bytes()).map_err(|err| BadLine {
            origin: origin.clone(),
            text: text.to_owned(),
            reason: format!("`value_base64` is not base64: {err}"),
        })?),
        (value, None) => value.map(String::into_bytes),
    };
    Ok((
        Message {
            topic: line.destination,
            key: line.key,
            data,
            attributes,
        },
        origin,
    ))
}
