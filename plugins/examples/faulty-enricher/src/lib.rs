//! `faulty-enricher`: a deliberately misbehaving enricher for the host's tests
//! of plugin limits, dead letters and rollback. Never deploy it.
//!
//! It applies the v1 engagement rule (v1's `rules.rs` and `fields.rs`,
//! included with `#[path]`) so ordinary events enrich as usual, except when
//! the event's `device` column is one of these texts:
//!
//! - `__trap__`: panics, which traps the call (wasm32 panics abort);
//! - `__loop__`: spins forever, for the host's wall-time (epoch) deadline;
//! - `__oom__`: allocates 1 MiB chunks without bound, for the memory cap.
//!
//! `enrich-batch` maps `enrich`, so one such input fails the whole batch
//! call, as a real trap would. With the cargo feature `always-trap`, every
//! `enrich` and `enrich-batch` call panics while `info` still answers, so the
//! plugin passes loading and fails the host's validation smoke call.
//!
//! Natively (tests) only `__trap__` is safe to exercise; the loop and the
//! allocation are meant to be stopped by the wasm host.

wit_bindgen::generate!({ world: "enricher", path: "../../../wit" });

// The cases only apply when ordinary events are enriched.
#[cfg(all(test, not(feature = "always-trap")))]
#[path = "../../../engagement-enricher/src/cases.rs"]
mod cases;
#[path = "../../../engagement-enricher/src/fields.rs"]
mod fields;
#[path = "../../../engagement-enricher/src/rules.rs"]
mod rules;

use engagement::pipeline::types::{PluginInfo, Value};
use exports::engagement::pipeline::enrich::{EnrichError, EnrichInput, EnricherInfo, Guest, Row};
use std::hint::black_box;

/// Plugin name the host records with every output.
pub const NAME: &str = "faulty-enricher";
/// Fixture version.
pub const VERSION: &str = "0.0.1";

/// `device` value that makes `enrich` panic.
pub const TRAP_DEVICE: &str = "__trap__";
/// `device` value that makes `enrich` loop forever.
pub const LOOP_DEVICE: &str = "__loop__";
/// `device` value that makes `enrich` allocate memory without bound.
pub const OOM_DEVICE: &str = "__oom__";

/// The component.
pub struct Component;

impl Guest for Component {
    fn enrich(input: EnrichInput) -> Result<Row, EnrichError> {
        trap_if_always_trap("enrich");
        misbehave_on_request(&input);
        let engagement = fields::Engagement::derive(&input)?;
        let mut row = Row::with_capacity(4);
        engagement.push_columns(&mut row);
        Ok(row)
    }

    fn enrich_batch(inputs: Vec<EnrichInput>) -> Vec<Result<Row, EnrichError>> {
        trap_if_always_trap("enrich-batch");
        inputs.into_iter().map(Self::enrich).collect()
    }

    fn info() -> EnricherInfo {
        EnricherInfo {
            plugin: PluginInfo {
                name: NAME.to_owned(),
                version: VERSION.to_owned(),
                description: "Test fixture: the v1 engagement rule, but traps, loops or exhausts \
                              memory when device is __trap__, __loop__ or __oom__."
                    .to_owned(),
            },
            output_fields: fields::output_fields(),
            // `device` too: it says how to misbehave.
            reads: Some({
                let mut reads = fields::reads();
                reads.event.push("device".to_owned());
                reads
            }),
        }
    }
}

// Natively there is nothing to export, and the exported symbols would clash
// with those of any other plugin crate linked into the same test binary.
#[cfg(target_arch = "wasm32")]
export!(Component);

/// With the `always-trap` feature, panics on every call of `function`.
fn trap_if_always_trap(function: &str) {
    // `cfg!` rather than `#[cfg]` keeps the code after it reachable (and
    // compiled) in both builds.
    if cfg!(feature = "always-trap") {
        panic!("faulty-enricher built with always-trap: {function} traps on every call");
    }
}

/// Misbehaves as the event's `device` asks; returns for any other value.
fn misbehave_on_request(input: &EnrichInput) {
    match fields::column(&input.event, "device") {
        Some(Value::Text(device)) if device == TRAP_DEVICE => {
            panic!("faulty-enricher: device {TRAP_DEVICE} asks for a trap")
        }
        Some(Value::Text(device)) if device == LOOP_DEVICE => spin_forever(),
        Some(Value::Text(device)) if device == OOM_DEVICE => exhaust_memory(),
        _ => {}
    }
}

/// Loops until the host interrupts the call. `black_box` hides the counter
/// from the optimizer, so the loop does real work every turn and cannot be
/// folded away; the host's epoch checks sit at loop headers.
fn spin_forever() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks and keeps them until allocation fails, which aborts
/// (a trap) once the host's memory cap refuses to grow the linear memory.
/// Every page is written so the memory is really used, and `black_box` keeps
/// the optimizer from proving the chunks dead.
fn exhaust_memory() -> ! {
    const CHUNK_BYTES: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        for page in chunk.chunks_mut(4096) {
            page.fill(1);
        }
        hoard.push(black_box(chunk));
        black_box(&mut hoard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engagement::pipeline::types::Column;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    fn with_device(device: &str) -> EnrichInput {
        EnrichInput {
            event: vec![
                Column {
                    name: "duration_ms".into(),
                    value: Value::Int(1500),
                },
                Column {
                    name: "device".into(),
                    value: Value::Text(device.into()),
                },
            ],
            content: None,
        }
    }

    #[test]
    fn info_answers() {
        let info = Component::info();
        assert_eq!(
            (info.plugin.name.as_str(), info.plugin.version.as_str()),
            ("faulty-enricher", "0.0.1")
        );
        assert_eq!(info.output_fields.len(), 4);
    }

    #[cfg(not(feature = "always-trap"))]
    #[test]
    fn ordinary_events_follow_the_v1_rule() {
        let cases = cases::load();
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|case| cases::check(case, &Component::enrich(case.input.clone())).err())
            .collect();
        assert!(
            failures.is_empty(),
            "{} cases differ from Python:\n{}",
            failures.len(),
            failures.join("\n")
        );
        // Near-misses are ordinary devices.
        for device in ["__TRAP__", "__trap", "trap", ""] {
            assert!(Component::enrich(with_device(device)).is_ok(), "{device:?}");
        }
    }

    #[cfg(not(feature = "always-trap"))]
    #[test]
    fn trap_device_panics() {
        let result = catch_unwind(AssertUnwindSafe(|| {
            Component::enrich(with_device(TRAP_DEVICE))
        }));
        assert!(result.is_err(), "enrich should have panicked");
        let batch = vec![with_device("ios"), with_device(TRAP_DEVICE)];
        let result = catch_unwind(AssertUnwindSafe(|| Component::enrich_batch(batch)));
        assert!(result.is_err(), "enrich-batch should have panicked");
    }

    #[cfg(feature = "always-trap")]
    #[test]
    fn always_trap_panics_on_every_call() {
        let result = catch_unwind(AssertUnwindSafe(|| Component::enrich(with_device("ios"))));
        assert!(result.is_err(), "enrich should have panicked");
        let result = catch_unwind(AssertUnwindSafe(|| Component::enrich_batch(Vec::new())));
        assert!(result.is_err(), "enrich-batch should have panicked");
    }
}
