//! `run`: the service. Pub/Sub deliveries are batched (by size and by the
//! emit interval), processed by the core on its own thread, written to every
//! enabled sink, then the state is committed, then the messages are acked.
//!
//! That order is the delivery guarantee: a crash or a kill at any point
//! leaves the batch unacknowledged, Pub/Sub redelivers it, and idempotent
//! sink writes (Redis by key, BigQuery by insertId, the API by idempotency
//! key) plus LSN ordering in the state make the second pass harmless.
//! Events waiting for their content are acked once they are in the
//! committed state; they are written when their content (or TTL) comes.
//!
//! Shutdown (SIGTERM, Ctrl-C): stop pulling, finish the batch in hand
//! (write, commit, ack), exit. Messages not yet batched are redelivered.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::processor::{BatchOutput, Clock, Processor};
use super::record::Record;
use crate::decode::{StageError, WasmDecoder};
use crate::enrich::WasmEnricher;
use crate::settings::PluginSettings;
use crate::sinks::dead_letter::{DeadLetter, DeadLetterFile};
use crate::sinks::retry::{RetryPolicy, WriteAborted, write_with_retry};
use crate::sinks::{RecordSink, sinks_accept_fields};
use crate::source::pubsub::{self, Delivery, PubSubConfig};
use crate::source::{Origin, SourceBatch};
use crate::state::store::StateStore;
use crate::state::{State, StateConfig};
use crate::wasm::{AdmissionCheck, LoadedPlugin, PluginSet, reload};

/// Everything `run` needs, settled.
#[derive(Clone)]
pub struct ServiceSettings {
    pub plugins: PluginSettings,
    pub pubsub: PubSubConfig,
    pub state_dir: PathBuf,
    pub state: StateConfig,
    /// Most messages per batch.
    pub batch_size: usize,
    /// Longest a message waits for its batch to fill.
    pub emit_interval: Duration,
    pub max_message_bytes: usize,
    pub retry: RetryPolicy,
    pub dead_letter_file: Option<PathBuf>,
}

/// Work for the processor thread.
enum Job {
    Batch(SourceBatch, oneshot::Sender<BatchOutput>),
    Expire(oneshot::Sender<BatchOutput>),
}

/// The core on a thread of its own: plugin calls are synchronous and CPU
/// bound, so they stay off the async runtime.
struct ProcessorThread {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl ProcessorThread {
    fn start(mut processor: Processor) -> Result<Self> {
        // Bound 1: the service handles one batch at a time anyway.
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(1);
        std::thread::Builder::new()
            .name("processor".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Batch(batch, reply) => {
                            let _ = reply.send(processor.process(&batch));
                        }
                        Job::Expire(reply) => {
                            let _ = reply.send(processor.expire(false, false));
                        }
                    }
                }
            })
            .context("starting the processor thread")?;
        Ok(Self { jobs })
    }

    async fn run(
        &self,
        make: impl FnOnce(oneshot::Sender<BatchOutput>) -> Job,
    ) -> Result<BatchOutput> {
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs.clone();
        let job = make(tx);
        tokio::task::spawn_blocking(move || jobs.send(job))
            .await?
            .map_err(|_| anyhow::anyhow!("processor thread stopped"))?;
        rx.await.context("processor thread stopped")
    }
}

/// Counters for logs and the shutdown summary.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ServiceStats {
    pub messages: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub batches: u64,
}

/// Runs until `shutdown` fires.
pub async fn run(
    settings: ServiceSettings,
    plugins: Arc<PluginSet>,
    sinks: Vec<Arc<dyn RecordSink>>,
    shutdown: CancellationToken,
) -> Result<ServiceStats> {
    let _admission = SinkAdmission::install(&plugins, &sinks).await?;
    let _watcher = if settings.plugins.watch {
        Some(reload::watch(&settings.plugins.dir, plugins.clone())?)
    } else {
        None
    };
    let store = Arc::new(StateStore::open(&settings.state_dir)?);
    let snapshot = store.load()?;
    tracing::info!(
        content = snapshot.content.len(),
        pending = snapshot.pending.len(),
        events = snapshot.events.len(),
        dir = %settings.state_dir.display(),
        "state loaded"
    );
    let state = State::new(settings.state.clone(), snapshot, true);
    let processor = ProcessorThread::start(Processor::new(
        Box::new(WasmDecoder::new(plugins.clone())),
        Box::new(WasmEnricher::new(plugins.clone())),
        state,
        settings.max_message_bytes,
        Clock::Wall,
    ))?;

    let dead_file = match &settings.dead_letter_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            Some(Box::new(file) as Box<dyn std::io::Write + Send>)
        }
        None => None,
    };
    let mut dead = DeadLetterOut {
        file: DeadLetterFile::new(dead_file),
        topic: match &settings.pubsub.dead_letter_topic {
            Some(topic) => Some(pubsub::publisher(&settings.pubsub, topic).await?),
            None => None,
        },
    };

    let sources_cancel = shutdown.child_token();
    // Bound: two batches in flight between the pulls and the batcher.
    let (tx, mut rx) = mpsc::channel::<Delivery>(settings.batch_size.max(1) * 2);
    let sources = pubsub::spawn_sources(&settings.pubsub, tx, sources_cancel.clone()).await?;
    tracing::info!(
        subscriptions = settings.pubsub.subscriptions.len(),
        sinks = sinks.len(),
        "service running"
    );

    let mut stats = ServiceStats::default();
    let mut expire = tokio::time::interval(Duration::from_millis(500));
    expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sink_cancel = shutdown.child_token();

    loop {
        let deliveries = tokio::select! {
            // Shutdown: stop pulling; what is not batched yet is redelivered.
            _ = shutdown.cancelled() => break,
            // The pending TTL: events whose content did not come in time.
            _ = expire.tick() => {
                let out = processor.run(Job::Expire).await?;
                if !out.records.is_empty() || !out.delta.is_empty() {
                    let ok = deliver(&sinks, &settings.retry, &sink_cancel, out, None, &store, &mut dead, &mut stats).await?;
                    if !ok { break; }
                }
                continue;
            }
            first = rx.recv() => match first {
                Some(first) => collect(first, &mut rx, settings.batch_size, settings.emit_interval, &shutdown).await,
                None => break,
            },
        };
        let mut batch = SourceBatch::default();
        let mut handlers = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            batch.push(d.message, d.origin);
            handlers.push(d.handler);
        }
        stats.messages += batch.len() as u64;
        let started = Instant::now();
        let out = processor.run(|reply| Job::Batch(batch, reply)).await?;
        let ok = deliver(
            &sinks,
            &settings.retry,
            &sink_cancel,
            out,
            Some(handlers),
            &store,
            &mut dead,
            &mut stats,
        )
        .await?;
        metrics::histogram!("engagement_ack_latency_seconds")
            .record(started.elapsed().as_secs_f64());
        if !ok {
            break;
        }
    }

    sources_cancel.cancel();
    for task in sources {
        let _ = task.await;
    }
    dead.file.flush()?;
    tracing::info!(?stats, "service stopped");
    Ok(stats)
}

/// Every enricher version must have its output fields accepted by every
/// sink before it serves: the one loaded at start-up (else the service does
/// not start) and each one a reload brings (else it is refused and the
/// serving version stays). Uninstalled on drop.
struct SinkAdmission {
    plugins: Arc<PluginSet>,
}

impl SinkAdmission {
    async fn install(plugins: &Arc<PluginSet>, sinks: &[Arc<dyn RecordSink>]) -> Result<Self> {
        let enricher = plugins.enricher.current();
        sinks_accept_fields(sinks, &enricher.output_fields)
            .await
            .map_err(|why| {
                anyhow::anyhow!(
                    "the enricher {} cannot serve: its output fields are not accepted: {why}",
                    enricher.id
                )
            })?;
        let handle = tokio::runtime::Handle::current();
        let sinks: Vec<Arc<dyn RecordSink>> = sinks.to_vec();
        // The reload runs on the watcher's thread or a blocking task: the
        // async check runs on the runtime, and that thread waits for it.
        let check: AdmissionCheck = Arc::new(move |plugin: &LoadedPlugin| {
            let fields = plugin.output_fields.clone();
            let sinks = sinks.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move {
                let _ = tx.send(sinks_accept_fields(&sinks, &fields).await);
            });
            rx.recv()
                .unwrap_or_else(|_| Err("the service is stopping".into()))
                .map_err(|why| ("sink_schema", why))
        });
        plugins.enricher.set_admission(Some(check));
        Ok(Self {
            plugins: plugins.clone(),
        })
    }
}

impl Drop for SinkAdmission {
    fn drop(&mut self) {
        self.plugins.enricher.set_admission(None);
    }
}

/// The first delivery plus whatever arrives before the batch is full or
/// the emit interval since the first one has passed.
async fn collect(
    first: Delivery,
    rx: &mut mpsc::Receiver<Delivery>,
    size: usize,
    interval: Duration,
    shutdown: &CancellationToken,
) -> Vec<Delivery> {
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + interval;
    while batch.len() < size {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            next = rx.recv() => match next {
                Some(d) => batch.push(d),
                None => break,
            },
        }
    }
    batch
}

struct DeadLetterOut {
    file: DeadLetterFile,
    topic: Option<google_cloud_pubsub::client::Publisher>,
}

impl DeadLetterOut {
    async fn write(&mut self, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        self.file.write(letters)?;
        self.file.flush()?;
        if let Some(topic) = &self.topic {
            let sent: Vec<_> = letters
                .iter()
                .map(|l| {
                    let msg = google_cloud_pubsub::model::Message::new()
                        .set_data(l.to_json().to_string())
                        .set_attributes([("stage", l.stage), ("error_type", l.error.kind)]);
                    topic.publish(msg)
                })
                .collect();
            for result in join_all(sent).await {
                result.map_err(|e| anyhow::anyhow!("publishing a dead letter: {e}"))?;
            }
        }
        Ok(())
    }
}

/// Writes a batch's records to every sink, its dead letters, commits the
/// state, then acks. Returns false when shutdown interrupted a sink retry
/// (nothing acked: the batch is redelivered).
#[allow(clippy::too_many_arguments)]
async fn deliver(
    sinks: &[Arc<dyn RecordSink>],
    retry: &RetryPolicy,
    cancel: &CancellationToken,
    out: BatchOutput,
    handlers: Option<Vec<google_cloud_pubsub::subscriber::handler::Handler>>,
    store: &Arc<StateStore>,
    dead: &mut DeadLetterOut,
    stats: &mut ServiceStats,
) -> Result<bool> {
    let BatchOutput {
        records,
        mut dead_letters,
        delta,
        ..
    } = out;
    if !records.is_empty() {
        let writes = sinks.iter().map(|sink| async {
            let result = write_with_retry(sink.as_ref(), &records, retry, cancel).await;
            if result.is_ok() {
                record_end_to_end_latency(sink.name(), &records);
            }
            (sink.name(), result)
        });
        for (name, result) in join_all(writes).await {
            match result {
                Ok(report) => {
                    for (i, reason) in report.rejected {
                        if let Some(record) = records.get(i) {
                            dead_letters.push(record_letter(name, reason, record));
                        }
                    }
                }
                Err(WriteAborted::Permanent(reason)) => {
                    for record in &records {
                        dead_letters.push(record_letter(name, reason.clone(), record));
                    }
                }
                Err(WriteAborted::Cancelled(_)) => return Ok(false),
            }
        }
    }
    dead.write(&dead_letters).await?;
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.commit(&delta)).await??;
    if let Some(handlers) = handlers {
        for handler in handlers {
            handler.ack();
        }
        stats.batches += 1;
    }
    stats.records += records.len() as u64;
    stats.dead_letters += dead_letters.len() as u64;
    Ok(true)
}

/// Source commit (Debezium's `source.ts_ms`) to written in `sink`: what a
/// user of the sink waits. Includes time held waiting for content.
fn record_end_to_end_latency(sink: &'static str, records: &[Record]) {
    let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
        return;
    };
    let now_ms = now.as_millis() as i64;
    let histogram = metrics::histogram!("engagement_end_to_end_seconds", "sink" => sink);
    for ts in records.iter().filter_map(|r| r.source_ts_ms) {
        histogram.record((now_ms - ts).max(0) as f64 / 1000.0);
    }
}

fn record_letter(sink: &str, reason: String, record: &Record) -> DeadLetter {
    let mut letter = DeadLetter::new(
        "sink",
        StageError {
            kind: "sink_rejected",
            reason: format!("{sink}: {reason}"),
        },
        None,
        Origin {
            source: format!("sink:{sink}"),
            position: format!("{}:{}", record.table, record.event_key),
        },
        record.enricher.clone(),
    );
    letter.raw = Some(record.to_json());
    letter
}
