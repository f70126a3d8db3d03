//! What the simulator saw, as real numbers for `GET /stats`: requests,
//! accepted events by type and op, idempotency-key duplicates, distinct
//! event ids, injected errors and request latency.
//!
//! Only counts: it does not decide faults ([`super::faults`]) nor parse
//! requests ([`super::routes`]). Every collection that grows with the input
//! is bounded so a long load test cannot exhaust memory.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::faults::InjectedError;

/// Idempotency keys remembered for duplicate detection; the oldest are
/// forgotten first. A retry comes within seconds, so a large window is
/// plenty while keeping memory flat.
const MAX_REMEMBERED_KEYS: usize = 1_000_000;
/// Latency samples kept for the percentiles (the most recent ones).
const LATENCY_WINDOW: usize = 100_000;
/// Distinct `event_type` values tracked; further ones count as `(other)` so a
/// misbehaving client cannot grow the map without bound.
const MAX_EVENT_TYPES: usize = 1_000;

/// Counters since start (or the last `POST /stats/reset`).
#[derive(Debug)]
pub struct Stats {
    since: Instant,
    requests: u64,
    batches: u64,
    batches_with_idempotency_key: u64,
    duplicate_batches: u64,
    events: u64,
    events_by_type: BTreeMap<String, u64>,
    events_by_op: BTreeMap<String, u64>,
    /// Hashes of `(content_id, id)`: 8 bytes per event instead of two
    /// strings; a 64-bit collision is negligible at test sizes.
    unique_ids: HashSet<u64>,
    events_without_id: u64,
    bad_requests: u64,
    errors_injected: u64,
    errors_by_status: BTreeMap<String, u64>,
    errors_by_cause: BTreeMap<String, u64>,
    bytes_received: u64,
    largest_request_bytes: u64,
    seen_keys: HashSet<String>,
    seen_order: VecDeque<String>,
    latency_ms: VecDeque<f64>,
    latency_count: u64,
    latency_max_ms: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            requests: 0,
            batches: 0,
            batches_with_idempotency_key: 0,
            duplicate_batches: 0,
            events: 0,
            events_by_type: BTreeMap::new(),
            events_by_op: BTreeMap::new(),
            unique_ids: HashSet::new(),
            events_without_id: 0,
            bad_requests: 0,
            errors_injected: 0,
            errors_by_status: BTreeMap::new(),
            errors_by_cause: BTreeMap::new(),
            bytes_received: 0,
            largest_request_bytes: 0,
            seen_keys: HashSet::new(),
            seen_order: VecDeque::new(),
            latency_ms: VecDeque::new(),
            latency_count: 0,
            latency_max_ms: 0.0,
        }
    }
}

/// How an accepted batch was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// First time this batch (or a batch without a key) was seen: its events
    /// were counted.
    New,
    /// Its idempotency key was seen before: answered as a success, events not
    /// counted again.
    Duplicate,
}

impl Stats {
    /// A `POST /events` request arrived with a body of `bytes` bytes.
    pub fn request_received(&mut self, bytes: usize) {
        self.requests += 1;
        self.bytes_received += bytes as u64;
        self.largest_request_bytes = self.largest_request_bytes.max(bytes as u64);
    }

    /// A request was failed on purpose.
    pub fn error_injected(&mut self, error: &InjectedError, took: Duration) {
        self.errors_injected += 1;
        *self
            .errors_by_status
            .entry(error.status.to_string())
            .or_default() += 1;
        *self
            .errors_by_cause
            .entry(error.cause.as_str().to_string())
            .or_default() += 1;
        self.latency(took);
    }

    /// A request was refused as malformed (400).
    pub fn bad_request(&mut self, took: Duration) {
        self.bad_requests += 1;
        self.latency(took);
    }

    /// A well-formed batch was accepted. With an idempotency key seen before
    /// it is a duplicate: acknowledged again, but its events are not counted
    /// twice (that is the contract a client retrying with the same key
    /// relies on).
    pub fn batch_accepted(
        &mut self,
        idempotency_key: Option<&str>,
        events: &[Map<String, Value>],
        took: Duration,
    ) -> BatchOutcome {
        self.batches += 1;
        self.latency(took);
        if let Some(key) = idempotency_key {
            self.batches_with_idempotency_key += 1;
            if !self.remember_key(key) {
                self.duplicate_batches += 1;
                return BatchOutcome::Duplicate;
            }
        }
        for event in events {
            self.count_event(event);
        }
        BatchOutcome::New
    }

    /// Records the key; false when it was already known.
    fn remember_key(&mut self, key: &str) -> bool {
        if self.seen_keys.contains(key) {
            return false;
        }
        if self.seen_order.len() >= MAX_REMEMBERED_KEYS
            && let Some(oldest) = self.seen_order.pop_front()
        {
            self.seen_keys.remove(&oldest);
        }
        self.seen_keys.insert(key.to_string());
        self.seen_order.push_back(key.to_string());
        true
    }

    fn count_event(&mut self, event: &Map<String, Value>) {
        self.events += 1;
        let event_type = match event.get("event_type") {
            Some(Value::String(t)) => t.as_str(),
            // Deletes carry only the key: no type.
            _ => "(none)",
        };
        let event_type = if self.events_by_type.len() >= MAX_EVENT_TYPES
            && !self.events_by_type.contains_key(event_type)
        {
            "(other)"
        } else {
            event_type
        };
        *self
            .events_by_type
            .entry(event_type.to_string())
            .or_default() += 1;
        let op = match event.get("op") {
            Some(Value::String(op)) if op.len() <= 8 => op.as_str(),
            _ => "(none)",
        };
        *self.events_by_op.entry(op.to_string()).or_default() += 1;
        match event.get("id").filter(|id| !id.is_null()) {
            Some(id) => {
                let mut hasher = DefaultHasher::new();
                // The JSON texts, so that `1` and `"1"` stay distinct.
                id.to_string().hash(&mut hasher);
                event
                    .get("content_id")
                    .unwrap_or(&Value::Null)
                    .to_string()
                    .hash(&mut hasher);
                self.unique_ids.insert(hasher.finish());
            }
            None => self.events_without_id += 1,
        }
    }

    fn latency(&mut self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        if self.latency_ms.len() >= LATENCY_WINDOW {
            self.latency_ms.pop_front();
        }
        self.latency_ms.push_back(ms);
        self.latency_count += 1;
        self.latency_max_ms = self.latency_max_ms.max(ms);
    }

    /// The numbers as served by `GET /stats`.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut sorted: Vec<f64> = self.latency_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        StatsSnapshot {
            uptime_secs: self.since.elapsed().as_secs_f64(),
            requests: self.requests,
            batches: self.batches,
            batches_with_idempotency_key: self.batches_with_idempotency_key,
            duplicate_batches: self.duplicate_batches,
            events: self.events,
            events_by_type: self.events_by_type.clone(),
            events_by_op: self.events_by_op.clone(),
            unique_event_ids: self.unique_ids.len() as u64,
            events_without_id: self.events_without_id,
            bad_requests: self.bad_requests,
            errors_injected: self.errors_injected,
            errors_by_status: self.errors_by_status.clone(),
            errors_by_cause: self.errors_by_cause.clone(),
            bytes_received: self.bytes_received,
            largest_request_bytes: self.largest_request_bytes,
            latency_ms: LatencySnapshot {
                count: self.latency_count,
                window: sorted.len() as u64,
                p50: percentile(&sorted, 0.50),
                p99: percentile(&sorted, 0.99),
                max: self.latency_max_ms,
            },
        }
    }
}

/// Nearest-rank percentile of sorted samples (0 when there are none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `GET /stats`. Events count accepted, non-duplicate batches only.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// Seconds since start or the last reset.
    pub uptime_secs: f64,
    /// `POST /events` requests received, whatever the outcome.
    pub requests: u64,
    /// Requests answered with success (duplicates included).
    pub batches: u64,
    /// Successful requests that carried an `Idempotency-Key` header.
    pub batches_with_idempotency_key: u64,
    /// Successful requests whose idempotency key had been seen already.
    pub duplicate_batches: u64,
    /// Events in new (non-duplicate) batches.
    pub events: u64,
    /// `events` by their `event_type` field (`(none)` when absent, e.g. deletes).
    pub events_by_type: BTreeMap<String, u64>,
    /// `events` by their `op` field.
    pub events_by_op: BTreeMap<String, u64>,
    /// Distinct `(content_id, id)` pairs among `events`.
    pub unique_event_ids: u64,
    /// Events with no `id` field (not in `unique_event_ids`).
    pub events_without_id: u64,
    /// Requests refused as malformed (400).
    pub bad_requests: u64,
    /// Requests failed on purpose.
    pub errors_injected: u64,
    pub errors_by_status: BTreeMap<String, u64>,
    pub errors_by_cause: BTreeMap<String, u64>,
    pub bytes_received: u64,
    pub largest_request_bytes: u64,
    /// Handling time of `POST /events`, injected latency included.
    pub latency_ms: LatencySnapshot,
}

/// Latency of `POST /events` in milliseconds; percentiles over the most
/// recent `window` requests, `max` over all of them.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySnapshot {
    pub count: u64,
    pub window: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, event_type: &str) -> Map<String, Value> {
        let Value::Object(map) = serde_json::json!({
            "id": id, "content_id": "c1", "event_type": event_type, "op": "c"
        }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn duplicates_by_key_are_not_counted_twice() {
        let mut stats = Stats::default();
        let batch = [event(1, "play"), event(2, "pause")];
        let took = Duration::from_millis(1);
        assert_eq!(
            stats.batch_accepted(Some("k"), &batch, took),
            BatchOutcome::New
        );
        assert_eq!(
            stats.batch_accepted(Some("k"), &batch, took),
            BatchOutcome::Duplicate
        );
        assert_eq!(stats.batch_accepted(None, &batch, took), BatchOutcome::New);
        let s = stats.snapshot();
        assert_eq!(s.events, 4);
        assert_eq!(s.unique_event_ids, 2);
        assert_eq!(s.duplicate_batches, 1);
        assert_eq!(s.batches_with_idempotency_key, 2);
        assert_eq!(s.events_by_type["play"], 2);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
