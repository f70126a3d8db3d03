//! A simulator of the third-party engagement API, for tests and local runs
//! (`engagement-host api-sim`). It replaces the original FastAPI service and
//! sits at the far end of the flow: the HTTP sink
//! ([`crate::sinks::http`]) posts records to it.
//!
//! Endpoints:
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | `{"status":"healthy","service":"third-party-api"}` (as the original) |
//! | `POST /events` | body `{"events":[{..},..]}`; `{"status":"success","processed_count":n,"message":"Successfully processed n events"}` (as the original), 400 with a JSON error for a malformed body |
//! | `GET /stats` | real counters: requests, events (by `event_type`, by `op`), idempotency-key batches and duplicates, distinct `(content_id, id)`, injected errors, latency p50/p99/max |
//! | `POST /stats/reset` | zero the stats (and forget the idempotency keys seen) |
//! | `GET /faults`, `POST /faults` | read or replace the [`FaultConfig`] at run time |
//!
//! A batch with an `Idempotency-Key` header seen before is answered as a
//! success but its events are not counted again: the simulator behaves like
//! an API that deduplicates, so a test can check a client delivers every
//! event exactly once.
//!
//! It is not a production service: state is in memory and faults apply to
//! `POST /events` only, so the controls keep answering while it misbehaves.

mod faults;
mod routes;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use faults::{FaultConfig, FaultConfigError};
pub use stats::{LatencySnapshot, StatsSnapshot};

use faults::FaultState;
use stats::Stats;

/// Largest request body accepted (413 above). Well over the HTTP sink's
/// default batch limit (5 MiB), so the sink's own limit is what a test sees.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Settings of `engagement-host api-sim`.
#[derive(Debug, Clone)]
pub struct ApiSimSettings {
    /// Address to listen on. The original API listened on port 8080; in a
    /// container use `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Faults injected from the start (`POST /faults` replaces them while
    /// running). The default injects nothing.
    pub faults: FaultConfig,
}

impl Default for ApiSimSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            faults: FaultConfig::default(),
        }
    }
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum ApiSimError {
    #[error("invalid fault settings: {0}")]
    InvalidFaults(#[from] FaultConfigError),
    #[error("cannot listen on {addr}")]
    BindFailed {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    ServeFailed(#[source] std::io::Error),
}

/// The simulator's shared state: stats and active faults. Cheap to clone
/// (one `Arc`), so a test can keep a handle to the state it serves.
#[derive(Debug, Clone)]
pub struct ApiSimState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    stats: Mutex<Stats>,
    faults: Mutex<FaultState>,
}

impl ApiSimState {
    /// Fresh stats, `faults` active from now.
    pub fn new(faults: FaultConfig) -> Result<Self, FaultConfigError> {
        faults.validate()?;
        Ok(Self {
            inner: Arc::new(Shared {
                stats: Mutex::new(Stats::default()),
                faults: Mutex::new(FaultState::new(faults)),
            }),
        })
    }

    /// What `GET /stats` would answer.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        self.stats().snapshot()
    }

    /// What `POST /faults` does.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), FaultConfigError> {
        faults.validate()?;
        *self.faults() = FaultState::new(faults);
        Ok(())
    }

    /// What `POST /stats/reset` does.
    pub fn reset_stats(&self) {
        *self.stats() = Stats::default();
    }

    // A panic while holding a lock leaves counters that are still usable;
    // recovering the guard keeps the simulator answering instead of turning
    // every later request into a panic.
    fn stats(&self) -> MutexGuard<'_, Stats> {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The simulator's routes over `state`.
pub fn router(state: ApiSimState) -> Router {
    Router::new()
        .route("/", get(routes::health))
        .route("/events", post(routes::post_events))
        .route("/stats", get(routes::get_stats))
        .route("/stats/reset", post(routes::reset_stats))
        .route("/faults", get(routes::get_faults).post(routes::set_faults))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Binds `settings.listen` and serves until `shutdown` completes, then
/// finishes the requests in flight.
pub async fn serve(
    settings: ApiSimSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiSimError> {
    let state = ApiSimState::new(settings.faults)?;
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ApiSimError::BindFailed {
                addr: settings.listen,
                source,
            })?;
    serve_listener(listener, state, shutdown).await
}

/// Serves `state` on an already bound listener (tests bind port 0 and read
/// the address first) until `shutdown` completes.
pub async fn serve_listener(
    listener: TcpListener,
    state: ApiSimState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiSimError> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "third-party API simulator listening"),
        Err(err) => tracing::warn!(error = %err, "third-party API simulator listening"),
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ApiSimError::ServeFailed)
}
