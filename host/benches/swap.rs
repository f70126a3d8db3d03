//! Hot swap costs while events flow: time from a changed plugin file to the
//! new version serving, and the longest stall of event processing around a
//! swap compared with an ordinary batch. The first swap to a version
//! compiles it; later swaps to a known file load it from the artifact cache.
//!
//! `cargo bench -p engagement-host --bench swap` (after `scripts/build-plugins.sh`)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engagement_host::decode::WasmDecoder;
use engagement_host::enrich::WasmEnricher;
use engagement_host::pipeline::processor::{Clock, Processor};
use engagement_host::source::{Message, Origin, SourceBatch};
use engagement_host::state::store::Snapshot;
use engagement_host::state::{State, StateConfig};
use engagement_host::wasm::{
    ArtifactCache, PluginEngine, PluginLimits, PluginLoader, PluginSet, reload,
};

#[path = "support.rs"]
mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use support::root;

fn bulk() -> Vec<Message> {
    support::bulk_messages(0, usize::MAX)
}

fn deploy(src: &Path, dest: &Path) {
    let tmp = dest.with_extension("tmp");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let swaps = if quick { 2 } else { 6 };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let cache = tmp.path().join("cache");
    std::fs::copy(
        root().join("dist/plugins/decoder.wasm"),
        dir.join("decoder.wasm"),
    )
    .unwrap();
    std::fs::copy(
        root().join("dist/plugins/enricher.wasm"),
        dir.join("enricher.wasm"),
    )
    .unwrap();
    let v1 = root().join("dist/plugins/enricher.wasm");
    let v2 = root().join("dist/examples/enricher-v2.wasm");

    let loader = PluginLoader {
        engine: PluginEngine::new(PluginLimits::default()).unwrap(),
        cache: Some(ArtifactCache::new(cache)),
        grants: Vec::new(),
    };
    let plugins: Arc<PluginSet> =
        PluginSet::load(loader, dir.join("decoder.wasm"), dir.join("enricher.wasm")).unwrap();
    let _watcher = reload::watch(&dir, plugins.clone()).unwrap();
    let state = State::new(StateConfig::default(), Snapshot::default(), false);
    let mut processor = Processor::new(
        Box::new(WasmDecoder::new(plugins.clone())),
        Box::new(WasmEnricher::new(plugins.clone())),
        state,
        4 << 20,
        Clock::Wall,
    );

    let messages = bulk();
    let origin = Origin {
        source: "bench".into(),
        position: String::new(),
    };
    let batches: Vec<SourceBatch> = messages
        .chunks(256)
        .map(|c| SourceBatch {
            messages: c.to_vec(),
            origins: vec![origin.clone(); c.len()],
        })
        .collect();
    // Contents first, once.
    processor.process(&batches[0]);

    let mut ordinary = Vec::new();
    let mut results = Vec::new();
    let mut next = 1;
    for swap in 0..swaps {
        let (src, want) = if swap % 2 == 0 {
            (&v2, "2.0.0")
        } else {
            (&v1, "1.0.0")
        };
        // Steady state before the swap.
        for _ in 0..50 {
            let t = Instant::now();
            processor.process(&batches[next]);
            ordinary.push(t.elapsed());
            next = (next % (batches.len() - 1)) + 1;
        }
        let changed = Instant::now();
        deploy(src, &dir.join("enricher.wasm"));
        let mut longest = Duration::ZERO;
        loop {
            let t = Instant::now();
            let out = processor.process(&batches[next]);
            longest = longest.max(t.elapsed());
            next = (next % (batches.len() - 1)) + 1;
            let served = out
                .records
                .last()
                .and_then(|r| r.enricher.clone())
                .map(|e| e.version.clone());
            if served.as_deref() == Some(want) {
                results.push((swap, changed.elapsed(), longest));
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(60),
                "swap never happened"
            );
        }
    }
    ordinary.sort();
    let median = ordinary[ordinary.len() / 2];
    let worst = *ordinary.last().unwrap();
    println!(
        "hot swap while processing batches of 256 events (median batch {:.2} ms, worst ordinary batch {:.2} ms):",
        ms(median),
        ms(worst)
    );
    for (swap, latency, longest) in results {
        // v1 was compiled (and cached) at start-up; v2 is compiled on its first swap only.
        let kind = if swap == 0 { "compiled" } else { "from cache" };
        println!(
            "  swap {}: file change -> new version serving {:>7.1} ms ({kind}); longest batch meanwhile {:.2} ms ({:.1}x median)",
            swap + 1,
            ms(latency),
            ms(longest),
            longest.as_secs_f64() / median.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
