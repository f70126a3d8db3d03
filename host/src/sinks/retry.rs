//! Retrying a sink write: exponential backoff with full jitter, honouring a
//! service's `Retry-After`, until it succeeds, fails permanently, or the
//! pipeline shuts down. Retries never give up on their own for transient
//! errors: an unavailable sink stops the pipeline (backpressure) rather than
//! losing data.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::{RecordSink, SinkError, SinkReport};
use crate::pipeline::record::Record;

/// Backoff settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt` (1-based retry count): full jitter
    /// over an exponentially growing cap.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let jittered = rand::rng().random_range(Duration::ZERO..=cap);
        match retry_after {
            Some(after) => after.max(jittered).min(self.max.max(after)),
            None => jittered,
        }
    }
}

/// Why a write with retries ended without success.
#[derive(Debug, thiserror::Error)]
pub enum WriteAborted {
    #[error("{0}")]
    Permanent(String),
    #[error("shutting down while retrying: {0}")]
    Cancelled(String),
}

/// Writes `records` to `sink`, retrying transient failures.
pub async fn write_with_retry(
    sink: &dyn RecordSink,
    records: &[Record],
    policy: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<SinkReport, WriteAborted> {
    let mut attempt = 0u32;
    loop {
        let started = std::time::Instant::now();
        let result = sink.write(records).await;
        metrics::histogram!("engagement_sink_write_duration_seconds", "sink" => sink.name())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(report) => {
                metrics::counter!("engagement_sink_records_total", "sink" => sink.name())
                    .increment(records.len() as u64);
                return Ok(report);
            }
            Err(SinkError::Permanent(reason)) => {
                metrics::counter!("engagement_sink_errors_total", "sink" => sink.name(), "error_type" => "permanent")
                    .increment(1);
                return Err(WriteAborted::Permanent(reason));
            }
            Err(SinkError::Transient {
                message,
                retry_after,
            }) => {
                metrics::counter!("engagement_sink_errors_total", "sink" => sink.name(), "error_type" => "transient")
                    .increment(1);
                attempt += 1;
                let delay = policy.delay(attempt, retry_after);
                tracing::warn!(sink = sink.name(), attempt, error = %message, delay_ms = delay.as_millis() as u64, "sink write failed, retrying");
                tokio::select! {
                    // Shutdown: the batch stays unacknowledged and is redelivered.
                    _ = cancel.cancelled() => return Err(WriteAborted::Cancelled(message)),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 1..30 {
            assert!(policy.delay(attempt, None) <= Duration::from_secs(2));
        }
        // Retry-After is a floor.
        assert!(policy.delay(1, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
    }
}
