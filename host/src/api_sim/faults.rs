//! What the simulator does wrong on purpose: latency, error rates, 429s with
//! `Retry-After`, and outages ("fail for the next N seconds", "fail the next
//! N requests").
//!
//! [`FaultConfig`] is the knob set (from the command line at start, or from
//! `POST /faults` at run time); [`FaultState`] applies it to each
//! `POST /events` request and returns a [`FaultDecision`]. This module only
//! decides: it neither sleeps nor answers nor counts (the handler does).

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Faults injected into `POST /events`. Every field defaults to "no fault",
/// so `{}` switches all faults off. The health, stats and fault endpoints are
/// never faulted: tests must be able to observe and steer the simulator while
/// it misbehaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Latency added to every `POST /events` request, failed ones included.
    pub latency_ms: u64,
    /// Share of requests (0..=1) answered with `error_status`. 0 and 1 are
    /// deterministic (never / always).
    pub error_rate: f64,
    /// Status of the injected errors (`error_rate`, `fail_for_secs`,
    /// `fail_next_requests`): 500 by default; 429 and 503 carry
    /// `Retry-After: retry_after_secs`. Must be 400..=599.
    pub error_status: u16,
    /// Share of requests (0..=1) answered 429 with `Retry-After`, checked
    /// after the outage faults and before `error_rate`.
    pub rate_limit_rate: f64,
    /// Value of the `Retry-After` header (whole seconds) on 429 and 503.
    pub retry_after_secs: u64,
    /// Answer every request with `error_status` for this many seconds,
    /// counted from when the faults are set (server start or `POST /faults`).
    pub fail_for_secs: f64,
    /// Answer the next N requests with `error_status`.
    pub fail_next_requests: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            fail_for_secs: 0.0,
            fail_next_requests: 0,
        }
    }
}

/// A fault setting that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultConfigError {
    #[error("{field} must be within 0..=1, got {value}")]
    RateOutOfRange { field: &'static str, value: f64 },
    #[error("fail_for_secs must be a finite number >= 0, got {0}")]
    BadDuration(f64),
    #[error("error_status must be an HTTP error status (400..=599), got {0}")]
    BadStatus(u16),
}

impl FaultConfig {
    /// Checks the ranges, so that a bad setting is refused up front instead
    /// of behaving oddly later.
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (field, value) in [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
        ] {
            // `contains` is false for NaN, which is what we want.
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultConfigError::RateOutOfRange { field, value });
            }
        }
        if !self.fail_for_secs.is_finite() || self.fail_for_secs < 0.0 {
            return Err(FaultConfigError::BadDuration(self.fail_for_secs));
        }
        if !(400..=599).contains(&self.error_status) {
            return Err(FaultConfigError::BadStatus(self.error_status));
        }
        Ok(())
    }
}

/// Why a request is failed on purpose (the label in `/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCause {
    FailNextRequests,
    FailFor,
    RateLimit,
    ErrorRate,
}

impl FaultCause {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultCause::FailNextRequests => "fail_next_requests",
            FaultCause::FailFor => "fail_for_secs",
            FaultCause::RateLimit => "rate_limit_rate",
            FaultCause::ErrorRate => "error_rate",
        }
    }
}

/// An injected error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedError {
    pub status: u16,
    /// `Retry-After` header value in seconds, if the status carries one.
    pub retry_after_secs: Option<u64>,
    pub cause: FaultCause,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDecision {
    /// Sleep this long before answering (success or error).
    pub latency: Duration,
    /// Answer with this error instead of processing the batch.
    pub error: Option<InjectedError>,
}

/// The active faults and the outage counters derived from them.
#[derive(Debug)]
pub struct FaultState {
    config: FaultConfig,
    /// End of the `fail_for_secs` window.
    fail_until: Option<Instant>,
    /// What is left of `fail_next_requests`.
    fail_remaining: u64,
}

impl FaultState {
    /// Starts applying `config` now. The caller validated it.
    pub fn new(config: FaultConfig) -> Self {
        let fail_until = (config.fail_for_secs > 0.0)
            .then(|| Instant::now() + Duration::from_secs_f64(config.fail_for_secs));
        let fail_remaining = config.fail_next_requests;
        Self {
            config,
            fail_until,
            fail_remaining,
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Requests still to fail under `fail_next_requests`.
    pub fn remaining_requests(&self) -> u64 {
        self.fail_remaining
    }

    /// Time left in the `fail_for_secs` window.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.fail_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// Decides the fate of one `POST /events` request. Outages come first
    /// (they are what a test switched on explicitly), then the random rates.
    pub fn decide(&mut self, now: Instant) -> FaultDecision {
        let latency = Duration::from_millis(self.config.latency_ms);
        let cause = if self.fail_remaining > 0 {
            self.fail_remaining -= 1;
            Some(FaultCause::FailNextRequests)
        } else if self.fail_until.is_some_and(|until| now < until) {
            Some(FaultCause::FailFor)
        } else if chance(self.config.rate_limit_rate) {
            Some(FaultCause::RateLimit)
        } else if chance(self.config.error_rate) {
            Some(FaultCause::ErrorRate)
        } else {
            None
        };
        let error = cause.map(|cause| {
            let status = match cause {
                FaultCause::RateLimit => 429,
                _ => self.config.error_status,
            };
            InjectedError {
                status,
                retry_after_secs: matches!(status, 429 | 503)
                    .then_some(self.config.retry_after_secs),
                cause,
            }
        });
        FaultDecision { latency, error }
    }
}

/// True with probability `p`; exact (no random draw) at 0 and 1 so that
/// tests using those values are deterministic.
fn chance(p: f64) -> bool {
    if p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rand::rng().random::<f64>() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_inject_nothing() {
        let mut state = FaultState::new(FaultConfig::default());
        for _ in 0..100 {
            let d = state.decide(Instant::now());
            assert_eq!(d.error, None);
            assert_eq!(d.latency, Duration::ZERO);
        }
    }

    #[test]
    fn fail_next_requests_counts_down() {
        let mut state = FaultState::new(FaultConfig {
            fail_next_requests: 2,
            ..FaultConfig::default()
        });
        let now = Instant::now();
        assert_eq!(state.decide(now).error.map(|e| e.status), Some(500));
        assert_eq!(state.decide(now).error.map(|e| e.status), Some(500));
        assert_eq!(state.decide(now).error, None);
    }

    #[test]
    fn fail_for_ends() {
        let mut state = FaultState::new(FaultConfig {
            fail_for_secs: 1.0,
            error_status: 503,
            retry_after_secs: 7,
            ..FaultConfig::default()
        });
        let now = Instant::now();
        let error = state.decide(now).error;
        assert_eq!(
            error,
            Some(InjectedError {
                status: 503,
                retry_after_secs: Some(7),
                cause: FaultCause::FailFor
            })
        );
        assert_eq!(state.decide(now + Duration::from_secs(2)).error, None);
    }

    #[test]
    fn rates_of_one_always_fire() {
        let mut state = FaultState::new(FaultConfig {
            rate_limit_rate: 1.0,
            retry_after_secs: 3,
            ..FaultConfig::default()
        });
        let error = state.decide(Instant::now()).error;
        assert_eq!(
            error.map(|e| (e.status, e.retry_after_secs)),
            Some((429, Some(3)))
        );
    }

    #[test]
    fn validation_refuses_bad_values() {
        let bad = |c: FaultConfig| c.validate().is_err();
        assert!(bad(FaultConfig {
            error_rate: 1.5,
            ..FaultConfig::default()
        }));
        assert!(bad(FaultConfig {
            rate_limit_rate: f64::NAN,
            ..FaultConfig::default()
        }));
        assert!(bad(FaultConfig {
            fail_for_secs: -1.0,
            ..FaultConfig::default()
        }));
        assert!(bad(FaultConfig {
            error_status: 200,
            ..FaultConfig::default()
        }));
        assert!(FaultConfig::default().validate().is_ok());
    }
}
