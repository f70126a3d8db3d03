//! Per-call costs of the plugins (criterion): one event per call against
//! batches, which is why the WIT has batch forms; plus instantiation, the
//! price of recovering from a trap.
//!
//! The `by_language` group runs the same rule built from Rust
//! (`dist/plugins/enricher.wasm`) and from Python
//! (`dist/examples/enricher-py.wasm`, componentize-py): per-call cost,
//! batch cost and instantiation side by side, and prints the compile time of
//! each (no artifact cache) once per run.
//!
//! `cargo bench -p engagement-host --bench plugin_calls`

use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engagement_host::enrich::{EnrichRequest, project};
use engagement_host::wasm::bindings::{Column, EnrichInput, Message, Value};
use engagement_host::wasm::{
    ArtifactCache, PluginEngine, PluginInstance, PluginKind, PluginLimits, PluginLoader,
};

// The same allocator as the binary, for both sides of the comparison.
#[path = "support.rs"]
mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use support::root;

fn loader() -> PluginLoader {
    PluginLoader {
        engine: PluginEngine::new(PluginLimits::default()).unwrap(),
        cache: Some(ArtifactCache::new(root().join("target/bench-plugin-cache"))),
        grants: Vec::new(),
    }
}

/// Engagement inserts from the bulk fixture.
fn messages(n: usize) -> Vec<Message> {
    support::bulk_messages(2, n)
}

fn calls(c: &mut Criterion) {
    let loader = loader();
    let decoder = loader
        .load(
            &root().join("dist/plugins/decoder.wasm"),
            Some(PluginKind::Decoder),
        )
        .unwrap();
    let enricher = loader
        .load(
            &root().join("dist/plugins/enricher.wasm"),
            Some(PluginKind::Enricher),
        )
        .unwrap();
    let mut dec = PluginInstance::new(&loader.engine, &decoder).unwrap();
    let mut enr = PluginInstance::new(&loader.engine, &enricher).unwrap();

    let msgs = messages(256);
    let changes: Vec<_> = dec
        .decode_batch(&msgs)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().remove(0))
        .collect();
    let content_row = vec![
        Column {
            name: "content_type".into(),
            value: Value::Text("video".into()),
        },
        Column {
            name: "length_seconds".into(),
            value: Value::Int(1800),
        },
    ];
    let inputs: Vec<EnrichInput> = changes
        .iter()
        .map(|c| EnrichInput {
            event: c.after.clone().unwrap(),
            content: Some(content_row.clone()),
        })
        .collect();

    let mut group = c.benchmark_group("decode");
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &n| {
            b.iter(|| dec.decode_batch(&msgs[..n]).unwrap())
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| b.iter(|| dec.decode(&msgs[0]).unwrap()));
    group.finish();

    let mut group = c.benchmark_group("enrich");
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &n| {
            b.iter(|| enr.enrich_batch(&inputs[..n]).unwrap())
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| b.iter(|| enr.enrich(&inputs[0]).unwrap()));
    group.finish();

    let mut group = c.benchmark_group("instantiate");
    group.bench_function("decoder", |b| {
        b.iter(|| PluginInstance::new(&loader.engine, &decoder).unwrap())
    });
    group.bench_function("enricher", |b| {
        b.iter(|| PluginInstance::new(&loader.engine, &enricher).unwrap())
    });
    group.finish();
}

/// Whether this is a real benchmark run (`cargo bench`), not the one-pass
/// smoke run of `cargo test --all-targets`.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Compiles `path` without any cache and says how long it took (the load
/// includes the validation calls, a few milliseconds).
fn report_compile(lang: &str, path: &Path) {
    let loader = PluginLoader {
        engine: PluginEngine::new(PluginLimits::default()).unwrap(),
        cache: None,
        grants: Vec::new(),
    };
    let started = Instant::now();
    let plugin = loader.load(path, Some(PluginKind::Enricher)).unwrap();
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "compile/{lang}: {:.2} s for {:.1} MB ({}, no cache)",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        plugin.id.label()
    );
}

/// The default rule in Rust and in Python: same inputs, same outputs.
fn by_language(c: &mut Criterion) {
    let rules: [(&str, PathBuf); 2] = [
        ("rust", root().join("dist/plugins/enricher.wasm")),
        ("python", root().join("dist/examples/enricher-py.wasm")),
    ];
    // The smoke run shares the integration tests' cache, where the Python
    // component is compiled already (minutes in a debug build).
    let loader = if measuring() {
        loader()
    } else {
        PluginLoader {
            cache: Some(ArtifactCache::new(root().join("target/test-plugin-cache"))),
            ..loader()
        }
    };
    let changes: Vec<Vec<Column>> = {
        let decoder = loader
            .load(
                &root().join("dist/plugins/decoder.wasm"),
                Some(PluginKind::Decoder),
            )
            .unwrap();
        let mut dec = PluginInstance::new(&loader.engine, &decoder).unwrap();
        dec.decode_batch(&messages(256))
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap().remove(0).after.unwrap())
            .collect()
    };
    let content = std::sync::Arc::new(vec![
        Column {
            name: "content_type".into(),
            value: Value::Text("video".into()),
        },
        Column {
            name: "length_seconds".into(),
            value: Value::Int(1800),
        },
    ]);

    let mut group = c.benchmark_group("by_language");
    for (lang, path) in &rules {
        if !path.exists() {
            eprintln!(
                "by_language/{lang}: {} is missing (scripts/build-plugins.sh); skipped",
                path.display()
            );
            continue;
        }
        if measuring() {
            report_compile(lang, path);
        }
        let plugin = loader.load(path, Some(PluginKind::Enricher)).unwrap();
        // What the pipeline passes: only the columns the rule reads.
        let inputs: Vec<EnrichInput> = changes
            .iter()
            .map(|event| {
                let request = EnrichRequest {
                    event: event.clone(),
                    content: Some(content.clone()),
                };
                project(&request, plugin.reads.as_ref())
            })
            .collect();
        // The first instance after a load (the group below measures them
        // back to back, reusing a warm slot of the pool).
        let started = Instant::now();
        let mut instance = PluginInstance::new(&loader.engine, &plugin).unwrap();
        let first = started.elapsed();
        let started = Instant::now();
        instance.enrich(&inputs[0]).unwrap().unwrap();
        eprintln!(
            "instantiate/{lang}: first instance {:.2} ms, its first call {:.1} µs",
            first.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64() * 1e6
        );
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("enrich_single", lang), |b| {
            b.iter(|| instance.enrich(&inputs[0]).unwrap())
        });
        group.throughput(Throughput::Elements(inputs.len() as u64));
        group.bench_function(BenchmarkId::new("enrich_batch_256", lang), |b| {
            b.iter(|| instance.enrich_batch(&inputs).unwrap())
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("instantiate", lang), |b| {
            b.iter(|| PluginInstance::new(&loader.engine, &plugin).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = calls, by_language
}
criterion_main!(benches);
