//! Command-line types (clap derive) and nothing else: commands receive
//! settings built from these, never the clap types themselves.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Database change events in, enriched engagement records out, with the
/// rules in hot-swappable WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "engagement-host", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "LOG_JSON")]
    pub log_json: bool,

    /// Log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline over an NDJSON file of messages, with no services:
    /// enriched records out as NDJSON. The plugin author's test bench.
    Replay(Box<ReplayArgs>),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the service: pull Pub/Sub, enrich, write to the sinks.
    Run(RunArgs),
    /// Run the third-party API simulator (the sink's counterpart in tests and
    /// the local stack): `GET /`, `POST /events`, `GET /stats`, `POST /faults`.
    ApiSim(ApiSimArgs),
    /// Create the Pub/Sub topics, subscriptions and dead-letter topic if
    /// missing (idempotent; waits for Pub/Sub to answer).
    SetupPubsub(SetupPubsubArgs),
    /// Write content and engagement rows into PostgreSQL at a steady pace
    /// (the original data generator, plus updates, deletes and events
    /// committed before their content).
    Datagen(DatagenArgs),
}

#[derive(Debug, Args)]
pub struct DatagenArgs {
    /// Content rows per minute.
    #[arg(long, short = 'c', default_value_t = 0.0)]
    pub content: f64,
    /// Engagement events per minute.
    #[arg(long, short = 'e', default_value_t = 10.0)]
    pub engagement: f64,
    /// How long to run, minutes (fractions allowed).
    #[arg(long, short = 'd', default_value_t = 5.0)]
    pub duration: f64,
    #[arg(long, env = "PGHOST", default_value = "localhost")]
    pub host: String,
    #[arg(long, env = "PGPORT", default_value_t = 5432)]
    pub port: u16,
    #[arg(long, env = "PGDATABASE", default_value = "users_data")]
    pub database: String,
    #[arg(long, env = "PGUSER", default_value = "debezium")]
    pub user: String,
    #[arg(
        long,
        env = "PGPASSWORD",
        default_value = "dbz",
        hide_env_values = true
    )]
    pub password: String,
    /// Attach events to content already in the database too.
    #[arg(long)]
    pub use_existing: bool,
    /// Attach most events (80%) to content created by this run.
    #[arg(long)]
    pub prefer_new: bool,
    /// Share (0..=1) of events later updated (a new duration).
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub updates: f64,
    /// Share (0..=1) of events later deleted.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub deletes: f64,
    /// Share (0..=1) of new content whose first events are committed before
    /// it (the content follows in a later transaction).
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub early_events: f64,
    /// Share (0..=1) of new content whose length is later changed.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub content_updates: f64,
    /// Milliseconds between transactions.
    #[arg(long, default_value_t = 250)]
    pub tick_ms: u64,
    /// Seed of the random generator (the same seed draws the same rows).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file (keys as in README); the environment overrides it.
    #[arg(long, short, env = "ENGAGEMENT_HOST_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApiSimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Latency added to every `POST /events`, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests (0..=1) answered with `--error-status`.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Status of injected errors (400..=599).
    #[arg(long, default_value_t = 500)]
    pub error_status: u16,
    /// Share of requests (0..=1) answered 429 with `Retry-After`.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// `Retry-After` seconds on 429 and 503.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Fail every request for this many seconds after start.
    #[arg(long, default_value_t = 0.0)]
    pub fail_for_secs: f64,
}

#[derive(Debug, Args)]
pub struct SetupPubsubArgs {
    /// TOML configuration file; the environment overrides it.
    #[arg(long, short, env = "ENGAGEMENT_HOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// How long to wait for Pub/Sub to answer, seconds.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Say which world a component implements, its name, version and
    /// sha256, its imports and output fields, or exactly why it is not a
    /// valid plugin (exit status 1).
    Check(CheckArgs),
    /// Run an enricher over a cases file (one line per case: event, content,
    /// expected fields) and show a diff per failing case (exit status 1).
    Test(TestArgs),
    /// Create a ready-to-build enricher rule in Rust or Python: sources, the
    /// WIT, a build script, a README and golden cases it passes.
    New(NewArgs),
    /// Return a running service to the plugin version before the current
    /// one, at once (between two batches), through its admin endpoint.
    Rollback(RollbackArgs),
    /// Make the shadow enricher of a running service serve, at once
    /// (between two batches), through its admin endpoint.
    Promote(AdminArgs),
    /// Drop the shadow enricher of a running service.
    Discard(AdminArgs),
}

/// How to reach a running service's admin endpoint.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The service's admin endpoint (`admin_listen`).
    #[arg(long, env = "ADMIN_LISTEN", default_value = "127.0.0.1:9100")]
    pub admin: String,
    /// Its `admin_token`.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Which plugin: `enricher` or `decoder`.
    #[arg(default_value = "enricher")]
    pub kind: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component file.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The enricher component file.
    pub file: PathBuf,
    /// NDJSON cases: `{"name", "event": {..}, "content": {..} | null,
    /// "expected": {field: value}}` (or `"expected_error": "text"`).
    #[arg(long)]
    pub cases: PathBuf,
    /// Failing cases shown in full (the summary counts them all).
    #[arg(long, default_value_t = 20)]
    pub max_failures: usize,
    /// Cases per `enrich-batch` call.
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Where precompiled plugins are cached (default: the user cache dir).
    #[arg(long, env = "PLUGIN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not cache the precompiled plugin.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Language of a new rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuleLang {
    Rust,
    Python,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Plugin name (kebab-case, e.g. `my-rule`): the package and plugin name.
    pub name: String,
    /// Language of the rule.
    #[arg(long, value_enum)]
    pub lang: RuleLang,
    /// Directory to create (default: ./NAME); must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Where plugins live and what they may do.
#[derive(Debug, Args, Clone)]
pub struct PluginArgs {
    /// Directory holding the plugin files (watched for changes).
    #[arg(long, env = "PLUGIN_DIR", default_value = "dist/plugins")]
    pub plugins: PathBuf,
    /// Decoder file name within the plugin directory.
    #[arg(long, default_value = "decoder.wasm")]
    pub decoder: String,
    /// Enricher file name within the plugin directory.
    #[arg(long, default_value = "enricher.wasm")]
    pub enricher: String,
    /// Do not watch the plugin directory for new versions.
    #[arg(long)]
    pub no_watch: bool,
    /// Where precompiled plugins are cached (default: the user cache dir).
    #[arg(long, env = "PLUGIN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not cache precompiled plugins.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Per-call limits of plugins and the capabilities they are granted.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Wall-time deadline of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub call_deadline_ms: u64,
    /// Linear memory cap of one plugin instance, in MiB.
    #[arg(long, default_value_t = 128)]
    pub memory_cap_mib: usize,
    /// Grant a capability import (e.g. `wasi:clocks`, `wasi:random`); repeatable.
    #[arg(long = "grant", value_name = "INTERFACE")]
    pub grants: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// NDJSON of messages (`{"destination","key","value","attributes"}`);
    /// `.gz` accepted; `-` for stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Where enriched records go (NDJSON); `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
    /// Where dead letters go (NDJSON). Without it they are only logged and counted.
    #[arg(long)]
    pub dead_letters: Option<PathBuf>,
    /// Keep state (content cache, pending events) in this directory across
    /// runs. Without it the state lives in memory and starts empty.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Messages per batch (one plugin call each way per batch).
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Replay at most this many messages per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<u64>,
    /// How long (seconds of source time) an event waits for its content.
    #[arg(long, default_value_t = 10)]
    pub pending_ttl_secs: u64,
    /// Most events waiting for content at once.
    #[arg(long, default_value_t = 100_000)]
    pub max_pending: usize,
    /// Largest message value accepted, in bytes; larger ones are dead-lettered.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_message_bytes: usize,
    /// Print the summary as JSON (on stderr).
    #[arg(long)]
    pub summary_json: bool,
    /// Also write the records to Redis at this URL (`redis://127.0.0.1:6379/0`),
    /// batch by batch, as the service does.
    #[arg(long)]
    pub redis: Option<String>,
    /// PEM file of the CA(s) to trust for a `rediss://` URL (else the public roots).
    #[arg(long, requires = "redis")]
    pub redis_ca_file: Option<PathBuf>,
    /// Also post the records to the third-party API at this base URL
    /// (`http://127.0.0.1:8080`), in batches of `--api-batch-size`.
    #[arg(long)]
    pub api: Option<String>,
    #[arg(long, default_value_t = 500, requires = "api")]
    pub api_batch_size: usize,
    /// Run this enricher in shadow beside the serving one from the first
    /// batch: its outputs are compared field by field, never written.
    #[arg(long, value_name = "FILE")]
    pub shadow: Option<PathBuf>,
    /// Promote the shadow after this many compared events with no shadow
    /// error (0: never).
    #[arg(long, default_value_t = 0, requires = "shadow")]
    pub shadow_promote_after: u64,
    /// Most share (0..=1) of compared events that may differ for the
    /// shadow to be promoted (1: any; 0: it must change nothing).
    #[arg(long, default_value_t = 1.0, requires = "shadow")]
    pub shadow_max_diff_ratio: f64,
    /// Roll the enricher back to its previous version once this many
    /// messages were replayed, between two batches (rehearses
    /// `plugin rollback`).
    #[arg(long, value_name = "N")]
    pub rollback_after_messages: Option<u64>,
    #[command(flatten)]
    pub plugins: PluginArgs,
}
