//! `engagement-host run`: the service (see `pipeline::service`), with its
//! sinks, admin endpoint and signal handling.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::pipeline::service::{self, ServiceSettings, ServiceStats};
use crate::settings::PluginSettings;
use crate::sinks::RecordSink;
use crate::sinks::bigquery::{BigQuerySink, BigQuerySinkConfig};
use crate::sinks::http::{HttpSink, HttpSinkConfig};
use crate::sinks::redis::RedisSink;
use crate::sinks::retry::RetryPolicy;
use crate::source::pubsub::{PubSubConfig, SubscriptionConfig};
use crate::state::StateConfig;
use crate::telemetry::admin::{self, AdminState};
use crate::wasm::PluginLimits;

/// Plugin settings from the config.
pub fn plugin_settings(config: &Config) -> PluginSettings {
    PluginSettings {
        dir: config.plugin_dir.clone(),
        decoder_file: config.decoder_file.clone(),
        enricher_file: config.enricher_file.clone(),
        watch: config.plugin_watch,
        cache_dir: config
            .plugin_cache_dir
            .clone()
            .or_else(crate::settings::default_cache_dir),
        limits: PluginLimits {
            call_deadline: Duration::from_millis(config.plugin_call_deadline_ms.max(1)),
            memory_cap_bytes: config.plugin_memory_cap_mib.max(1) << 20,
            ..PluginLimits::default()
        },
        grants: config.plugin_grants.clone(),
    }
}

/// Pub/Sub settings from the config (`PUBSUB_EMULATOR_HOST` honoured).
pub fn pubsub_config(config: &Config) -> PubSubConfig {
    let endpoint = config
        .pubsub_emulator_host
        .clone()
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.starts_with("http") {
                h
            } else {
                format!("http://{h}")
            }
        })
        .or_else(PubSubConfig::from_env_endpoint);
    PubSubConfig {
        project: config.pubsub_project_id.clone(),
        endpoint,
        subscriptions: vec![
            SubscriptionConfig {
                subscription: config.content_subscription.clone(),
                topic: config.content_topic.clone(),
            },
            SubscriptionConfig {
                subscription: config.events_subscription.clone(),
                topic: config.events_topic.clone(),
            },
        ],
        max_outstanding_messages: config.max_outstanding_messages,
        ack_deadline_secs: config.pubsub_ack_deadline_secs.clamp(10, 600),
        dead_letter_topic: Some(config.dead_letter_topic.clone()).filter(|t| !t.is_empty()),
        ..PubSubConfig::default()
    }
}

/// Connects every enabled sink.
pub async fn connect_sinks(config: &Config) -> Result<Vec<Arc<dyn RecordSink>>> {
    let mut sinks: Vec<Arc<dyn RecordSink>> = Vec::new();
    if config.redis_enabled {
        let redis = RedisSink::connect(config.redis_sink_config())
            .await
            .context("connecting to Redis")?;
        sinks.push(Arc::new(redis));
    }
    if config.api_enabled {
        let http = HttpSink::new(HttpSinkConfig {
            base_url: config.third_party_api_url.clone(),
            timeout: Duration::from_secs(config.api_timeout_secs.max(1)),
            max_batch_events: config.api_batch_size.max(1),
            ..HttpSinkConfig::default()
        })
        .context("setting up the third-party API sink")?;
        sinks.push(Arc::new(http));
    }
    if config.bigquery_enabled {
        let bigquery = BigQuerySink::connect(BigQuerySinkConfig {
            project: config.bigquery_project.clone(),
            dataset: config.bigquery_dataset.clone(),
            table: config.bigquery_table.clone(),
            base_url: config.bigquery_emulator_url.clone().map(|url| {
                let url = url.trim_end_matches('/').to_string();
                if url.ends_with("/bigquery/v2") {
                    url
                } else {
                    format!("{url}/bigquery/v2")
                }
            }),
            allow_schema_update: config.bigquery_allow_schema_update,
            ..BigQuerySinkConfig::default()
        })
        .await
        .context("setting up the BigQuery sink")?;
        sinks.push(Arc::new(bigquery));
    }
    Ok(sinks)
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(config_file: Option<&Path>) -> Result<ServiceStats> {
    let config = Config::load(config_file)?;
    let metrics = admin::install_metrics()?;
    let plugin_settings = plugin_settings(&config);
    let plugins = tokio::task::spawn_blocking({
        let s = plugin_settings.clone();
        move || s.load()
    })
    .await?
    .context("loading plugins")?;
    plugins
        .enricher
        .set_shadow_policy(crate::wasm::ShadowPolicy {
            promote_after: config.shadow_promote_after,
            max_diff_ratio: config.shadow_max_diff_ratio,
            ..Default::default()
        });
    let sinks = connect_sinks(&config).await?;

    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = config.admin_listen {
        let state = AdminState {
            metrics,
            plugins: plugins.clone(),
            token: config.admin_token.clone(),
            ready: ready.clone(),
        };
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = admin::serve(addr, state, token).await {
                tracing::error!(error = %err, "admin endpoint failed");
            }
        });
    }

    let settings = ServiceSettings {
        plugins: plugin_settings,
        pubsub: pubsub_config(&config),
        state_dir: config.state_dir.clone(),
        state: StateConfig {
            pending_ttl_ms: (config.pending_ttl_secs as i64).saturating_mul(1000),
            max_pending: config.max_pending,
            ..StateConfig::default()
        },
        batch_size: config.batch_size,
        emit_interval: config.emit_interval(),
        max_message_bytes: config.max_message_bytes,
        retry: RetryPolicy {
            initial: Duration::from_millis(config.retry_initial_ms.max(1)),
            max: Duration::from_millis(config.retry_max_ms.max(1)),
        },
        dead_letter_file: config.dead_letter_file.clone(),
    };
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let stats = service::run(settings, plugins, sinks, shutdown.clone()).await?;
    shutdown.cancel();
    Ok(stats)
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        terminate_or_interrupt().await;
        tracing::info!("shutdown requested: finishing the batch in hand");
        shutdown.cancel();
    });
}

/// Completes on SIGTERM (what service managers and `docker stop` send) or
/// Ctrl-C.
pub async fn terminate_or_interrupt() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// `engagement-host setup-pubsub`: topics, subscriptions, dead-letter topic.
pub async fn setup_pubsub(config_file: Option<&Path>, wait: Duration) -> Result<Vec<String>> {
    let config = Config::load(config_file)?;
    Ok(crate::source::pubsub::setup(&pubsub_config(&config), wait).await?)
}
