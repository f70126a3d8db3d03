//! Records as NDJSON lines (the `replay` output).

use std::io::Write;

use crate::pipeline::record::Record;

/// Writes one compact JSON object per record.
pub struct NdjsonSink {
    out: Box<dyn Write + Send>,
    pub written: u64,
}

impl NdjsonSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out, written: 0 }
    }

    pub fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        for record in records {
            serde_json::to_writer(&mut self.out, record)?;
            self.out.write_all(b"\n")?;
        }
        self.written += records.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
