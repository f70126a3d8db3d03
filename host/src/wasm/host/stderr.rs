//! A plugin's standard error, kept as its last few KiB.
//!
//! Rust's standard library on `wasm32-wasip2` prints a panic's message to
//! stderr before it traps; keeping the tail lets the host put that message
//! into the dead-letter reason instead of a bare "unreachable".

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of the tail is kept.
const TAIL_BYTES: usize = 4096;

/// Shared handle: the store writes, the host reads and clears.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    /// Takes what was written since the last call, lossily as UTF-8.
    pub(crate) fn take(&self) -> String {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buf).trim().to_string();
        buf.clear();
        text
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        if buf.len() > TAIL_BYTES {
            let cut = buf.len() - TAIL_BYTES;
            buf.drain(..cut);
        }
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only the WASIp2 stream is linked; the async form is never asked for.
        Box::new(tokio::io::sink())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accepts: the tail drops old bytes instead of pushing back.
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}
