//! Per-call costs of the plugins (criterion): one event per call against
//! batches, which is why the WIT has batch forms; plus instantiation, the
//! price of recovering from a trap.
//!
//! `cargo bench -p engagement-host --bench plugin_calls`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = calls
}
criterion_main!(benches);
