//! `replay` of the 80,000-event fixture to NDJSON: the WASM plugins against
//! a native build of the same decoder and rules, in the same run, rounds
//! interleaved so machine noise hits both alike. Prints events/s for each
//! and the WASM/native time ratio.
//!
//! `cargo bench -p engagement-host --bench replay` (after
//! `scripts/build-plugins.sh`). `BENCH_ROUNDS` sets the rounds (default 5).

mod native;
mod support;

use std::path::PathBuf;
use std::time::Instant;

use engagement_host::commands::replay::{self, ReplaySettings};
use engagement_host::decode::WasmDecoder;
use engagement_host::enrich::WasmEnricher;
use engagement_host::wasm::PluginSet;
use support::root;

// The same allocator as the binary, for both sides of the comparison.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn settings() -> ReplaySettings {
    support::replay_settings(
        root().join("tests/fixtures/bulk_schemas_off.ndjson.gz"),
        PathBuf::from("/dev/null"),
    )
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and expects a quick run: one round then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = if quick {
        1
    } else {
        std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5)
    };
    let settings = settings();
    let plugins: std::sync::Arc<PluginSet> = settings
        .plugins
        .load()
        .expect("plugins (run scripts/build-plugins.sh)");

    let mut wasm = Vec::new();
    let mut native = Vec::new();
    let mut events = 0;
    for round in 0..rounds {
        let started = Instant::now();
        let s = replay::run_with(
            &settings,
            Box::new(WasmDecoder::new(plugins.clone())),
            Box::new(WasmEnricher::new(plugins.clone())),
        )
        .expect("wasm replay");
        wasm.push(started.elapsed().as_secs_f64());
        events = s.records;
        assert_eq!(s.dead_letters, 0);

        let started = Instant::now();
        let n = replay::run_with(
            &settings,
            Box::new(native::NativeDecoder),
            Box::new(native::NativeEnricher::new()),
        )
        .expect("native replay");
        native.push(started.elapsed().as_secs_f64());
        assert_eq!(n.records, s.records);
        eprintln!(
            "round {}: wasm {:.3}s native {:.3}s",
            round + 1,
            wasm[round],
            native[round]
        );
    }
    let (w, n) = (median(wasm), median(native));
    println!("replay of {events} events to NDJSON, median of {rounds} interleaved rounds:");
    println!(
        "  wasm plugins:   {:>9.0} events/s ({w:.3} s)",
        events as f64 / w
    );
    println!(
        "  native build:   {:>9.0} events/s ({n:.3} s)",
        events as f64 / n
    );
    println!("  wasm/native time ratio: {:.2}", w / n);
}
