//! `engagement-host replay`: the pipeline core fed from an NDJSON file,
//! records out as NDJSON, no services. Deterministic: the pending TTL runs on
//! source time, and events still waiting at the end come out as content
//! missing.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::decode::{DecodeStep, StageError};
use crate::enrich::EnrichStep;
use crate::pipeline::processor::{BatchOutput, Clock, Processor};
use crate::pipeline::record::RecordKind;
use crate::settings::PluginSettings;
use crate::sinks::RecordSink;
use crate::sinks::dead_letter::{DeadLetter, DeadLetterFile};
use crate::sinks::http::{HttpSink, HttpSinkConfig};
use crate::sinks::ndjson::NdjsonSink;
use crate::sinks::redis::{RedisSink, RedisSinkConfig};
use crate::sinks::retry::{RetryPolicy, write_with_retry};
use crate::source::SourceBatch;
use crate::source::ndjson::NdjsonSource;
use crate::state::store::{Snapshot, StateStore};
use crate::state::{State, StateConfig, StateStats};
use crate::wasm::{ReloadOutcome, ShadowPolicy, reload};
use tokio_util::sync::CancellationToken;

/// Everything `replay` needs, settled.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    pub input: PathBuf,
    pub output: PathBuf,
    pub dead_letters: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub batch_size: usize,
    pub rate: Option<u64>,
    pub state: StateConfig,
    pub max_message_bytes: usize,
    pub plugins: PluginSettings,
    /// Also write records to Redis.
    pub redis: Option<RedisSinkConfig>,
    /// Also post records to the third-party API.
    pub api: Option<HttpSinkConfig>,
    /// A shadow enricher and an operator's rollback, rehearsed.
    pub shadow: ShadowReplay,
}

/// `replay --shadow FILE`: the shadow deploy of the service, deterministic.
#[derive(Debug, Clone, Default)]
pub struct ShadowReplay {
    /// Enricher run in shadow from the first batch on.
    pub file: Option<PathBuf>,
    /// When it is promoted by itself.
    pub policy: ShadowPolicy,
    /// Roll the enricher back to its previous version once this many
    /// messages were replayed (between two batches).
    pub rollback_after_messages: Option<u64>,
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub messages: u64,
    pub changes: u64,
    pub records: u64,
    pub upserts: u64,
    pub deletes: u64,
    pub content_missing: u64,
    pub dead_letters: u64,
    pub pending_left: usize,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub state: StateStats,
    pub plugin_swaps: u64,
    /// With `--shadow`: what the comparison found, and whether the shadow
    /// was promoted (and rolled back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<serde_json::Value>,
}

/// Runs the replay with the WASM plugins.
pub fn run(settings: &ReplaySettings) -> Result<ReplaySummary> {
    let plugins = settings.plugins.load().context("loading plugins")?;
    let _watcher = if settings.plugins.watch {
        Some(reload::watch(&settings.plugins.dir, plugins.clone()).context("watching plugins")?)
    } else {
        None
    };
    let shadow = match &settings.shadow.file {
        Some(file) => {
            let slot = &plugins.enricher;
            slot.set_shadow_policy(settings.shadow.policy);
            match slot.load_shadow(&plugins.loader, file) {
                ReloadOutcome::Shadowing { .. } => slot.shadow(),
                ReloadOutcome::Rejected { reason } => {
                    anyhow::bail!("shadow {} refused: {reason}", file.display())
                }
                _ => None,
            }
        }
        None => None,
    };
    let rolled_back = Cell::new(false);
    let between_batches = |messages: u64| {
        if let Some(at) = settings.shadow.rollback_after_messages
            && messages >= at
            && !rolled_back.get()
        {
            rolled_back.set(true);
            match plugins.enricher.rollback() {
                Ok(to) => tracing::info!(messages, to, "enricher rolled back"),
                Err(err) => tracing::warn!(messages, error = %err, "enricher not rolled back"),
            }
        }
    };
    let decoder = Box::new(crate::decode::WasmDecoder::new(plugins.clone()));
    let enricher = Box::new(crate::enrich::WasmEnricher::new(plugins.clone()));
    let mut summary = run_inner(settings, decoder, enricher, &between_batches)?;
    summary.plugin_swaps = plugins.decoder.swaps() + plugins.enricher.swaps();
    summary.shadow = shadow.map(|shadow| {
        let mut json = shadow.to_json();
        json["promoted"] = shadow.promoted().into();
        json["rolled_back"] = rolled_back.get().into();
        json
    });
    Ok(summary)
}

/// Runs the replay with any decoder and enricher (the benchmark passes
/// native builds of the same rules).
pub fn run_with(
    settings: &ReplaySettings,
    decoder: Box<dyn DecodeStep>,
    enricher: Box<dyn EnrichStep>,
) -> Result<ReplaySummary> {
    run_inner(settings, decoder, enricher, &|_| {})
}

/// [`run_with`], calling `between_batches` with the messages replayed so
/// far after each batch is written.
fn run_inner(
    settings: &ReplaySettings,
    decoder: Box<dyn DecodeStep>,
    enricher: Box<dyn EnrichStep>,
    between_batches: &dyn Fn(u64),
) -> Result<ReplaySummary> {
    // Without a state directory the state lives in memory only: nothing to
    // persist, nothing to commit.
    let store = match &settings.state_dir {
        Some(dir) => Some(StateStore::open(dir)?),
        None => None,
    };
    let snapshot = match &store {
        Some(store) => store.load()?,
        None => Snapshot::default(),
    };
    let state = State::new(settings.state.clone(), snapshot, store.is_some());
    let mut processor = Processor::new(
        decoder,
        enricher,
        state,
        settings.max_message_bytes,
        Clock::EventTime,
    );
    let mut records = NdjsonSink::new(open_output(&settings.output)?);
    let mut dead = DeadLetterFile::new(match &settings.dead_letters {
        Some(path) => Some(open_output(path)?),
        None => None,
    });
    let source = NdjsonSource::open(&settings.input)
        .with_context(|| format!("opening {}", settings.input.display()))?;

    // Sinks are async; the replay drives them batch by batch from here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut sinks: Vec<Box<dyn RecordSink>> = Vec::new();
    if let Some(config) = &settings.redis {
        let redis = runtime
            .block_on(RedisSink::connect(config.clone()))
            .context("connecting to Redis")?;
        sinks.push(Box::new(redis));
    }
    if let Some(config) = &settings.api {
        sinks.push(Box::new(
            HttpSink::new(config.clone()).context("the API sink")?,
        ));
    }
    let policy = RetryPolicy::default();
    let never = CancellationToken::new();

    let mut summary = ReplaySummary::default();
    let started = Instant::now();
    let mut batch = SourceBatch::default();
    let mut bad_lines = Vec::new();
    let batch_size = settings.batch_size.max(1);

    let mut write = |out: BatchOutput, summary: &mut ReplaySummary| -> Result<()> {
        summary.changes += out.changes as u64;
        for record in &out.records {
            match record.kind {
                RecordKind::Upsert => summary.upserts += 1,
                RecordKind::Delete => summary.deletes += 1,
            }
            summary.content_missing += u64::from(record.content_missing);
        }
        summary.records += out.records.len() as u64;
        summary.dead_letters += out.dead_letters.len() as u64;
        records.write(&out.records).context("writing records")?;
        if !out.records.is_empty() {
            // Sinks one after the other: replay measures each sink's cost.
            for sink in &sinks {
                runtime
                    .block_on(write_with_retry(
                        sink.as_ref(),
                        &out.records,
                        &policy,
                        &never,
                    ))
                    .with_context(|| format!("writing records to {}", sink.name()))?;
            }
        }
        dead.write(&out.dead_letters)
            .context("writing dead letters")?;
        // Outputs first, then the state: the order the service uses too.
        if let Some(store) = &store {
            store.commit(&out.delta).context("committing state")?;
        }
        Ok(())
    };

    let mut lines = source;
    loop {
        let item = lines.next();
        let done = item.is_none();
        match item {
            Some(Ok(Ok((message, origin)))) => batch.push(message, origin),
            Some(Ok(Err(bad))) => {
                let mut letter = DeadLetter::new(
                    "source",
                    StageError {
                        kind: "bad_line",
                        reason: bad.reason,
                    },
                    None,
                    bad.origin,
                    None,
                );
                letter.raw = Some(bad.text);
                bad_lines.push(letter);
            }
            Some(Err(err)) => return Err(err).context("reading input"),
            None => {}
        }
        if batch.len() >= batch_size || (done && !batch.is_empty()) {
            summary.messages += batch.len() as u64;
            pace(settings.rate, summary.messages, started);
            let out = processor.process(&batch);
            write(out, &mut summary)?;
            batch = SourceBatch::default();
            let expired = processor.expire(false, true);
            write(expired, &mut summary)?;
            between_batches(summary.messages);
        }
        if !bad_lines.is_empty() {
            let out = BatchOutput {
                dead_letters: std::mem::take(&mut bad_lines),
                ..BatchOutput::default()
            };
            write(out, &mut summary)?;
        }
        if done {
            break;
        }
    }
    let rest = processor.expire(true, false);
    write(rest, &mut summary)?;
    records.flush().context("writing records")?;
    dead.flush().context("writing dead letters")?;

    summary.pending_left = processor.state().pending_len();
    summary.state = processor.state().stats;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.messages_per_second = summary.messages as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

/// Sleeps so that `done` messages take at least `done / rate` seconds.
fn pace(rate: Option<u64>, done: u64, started: Instant) {
    if let Some(rate) = rate.filter(|r| *r > 0) {
        let due = Duration::from_secs_f64(done as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
    }
}

fn open_output(path: &Path) -> Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout())));
    }
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
}

impl ReplaySummary {
    /// One human line per fact, for stderr.
    pub fn describe(&self) -> String {
        format!(
            "replayed {} messages ({} row changes) in {:.2}s ({:.0} messages/s)\n\
             records: {} ({} upserts, {} deletes, {} with content missing)\n\
             dead letters: {}; stale changes ignored: {}; events that waited for content: {}; plugin swaps: {}",
            self.messages,
            self.changes,
            self.seconds,
            self.messages_per_second,
            self.records,
            self.upserts,
            self.deletes,
            self.content_missing,
            self.dead_letters,
            self.state.stale_ignored,
            self.state.pending_parked,
            self.plugin_swaps,
        )
    }
}
