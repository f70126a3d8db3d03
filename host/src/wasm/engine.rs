//! The wasmtime engine shared by every plugin: compilation settings, the
//! pooling allocator, epoch interruption and the linker with the imports a
//! plugin may use.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::store::PluginState;
use super::{PluginLimits, WasmError};

/// How often the epoch advances; a call's deadline is rounded up to it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Engine + linker + the epoch ticker thread. Cheap to share (`Arc`).
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<PluginState>,
    pub(crate) limits: PluginLimits,
    stop_ticker: Arc<AtomicBool>,
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(limits: PluginLimits) -> Result<Arc<Self>, WasmError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Deadlines: an epoch check at loop heads and function entries costs
        // a few percent, and is what stops a plugin that never returns.
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);

        // Instances are recreated after a trap and on every swap; the pool
        // makes that a memset instead of an mmap.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * 4)
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 4)
            .max_memory_size(limits.memory_cap_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        let engine = Engine::new(&config).map_err(WasmError::Engine)?;

        let mut linker = Linker::<PluginState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(WasmError::Engine)?;
        bindings::decoder::engagement::pipeline::log::add_to_linker::<
            PluginState,
            wasmtime::component::HasSelf<PluginState>,
        >(&mut linker, |state| state)
        .map_err(WasmError::Engine)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let stop = stop_ticker.clone();
        thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(WasmError::Thread)?;

        Ok(Arc::new(Self {
            engine,
            linker,
            limits,
            stop_ticker,
        }))
    }

    /// Epoch ticks in one call's deadline (at least one).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let ms = self.limits.call_deadline.as_millis() as u64;
        ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1)
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}
