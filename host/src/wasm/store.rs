//! What each plugin instance's `Store` holds: a WASI context with nothing
//! granted, the memory limiter, the stderr tail and the log budget.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::host::log::LOG_LINES_PER_CALL;
use super::host::stderr::StderrTail;

/// Store data of one plugin instance.
pub(crate) struct PluginState {
    /// `name@version` of the plugin, for its log lines.
    pub(crate) label: Arc<str>,
    pub(crate) log_budget: u32,
    pub(crate) stderr: StderrTail,
    pub(crate) limiter: MemoryCap,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl PluginState {
    pub(crate) fn new(label: Arc<str>, memory_cap_bytes: usize) -> Self {
        let stderr = StderrTail::default();
        // No preopened directories, no environment, no arguments, no network,
        // no inherited stdio: the only things a plugin can reach are its
        // inputs and the log import. Stdout is discarded, stderr is kept as a
        // tail for trap reasons.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            label,
            log_budget: LOG_LINES_PER_CALL,
            stderr,
            limiter: MemoryCap::new(memory_cap_bytes),
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps the linear memory of an instance, and remembers that it did, so a
/// trap caused by the cap is reported as "out of memory" and not as a bug.
pub(crate) struct MemoryCap {
    cap_bytes: usize,
    pub(crate) hit: bool,
}

impl MemoryCap {
    fn new(cap_bytes: usize) -> Self {
        Self {
            cap_bytes,
            hit: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap_bytes {
            self.hit = true;
            // An error (rather than `Ok(false)`) traps at once instead of
            // letting the guest's allocator abort with a vaguer message.
            wasmtime::bail!(
                "memory cap of {} MiB reached (asked for {} MiB)",
                self.cap_bytes >> 20,
                desired >> 20
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
