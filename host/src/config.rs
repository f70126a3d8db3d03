//! Configuration of `run`: defaults, then a TOML file, then environment
//! variables. Keys are flat and named like the original pipeline's
//! `environment.env` (lower-cased in the file, upper-cased in the
//! environment): `PUBSUB_PROJECT_ID`, `DEFAULT_EMIT_INTERVAL_SECS`,
//! `REDIS_HOST`, `REDIS_PORT`, `BIGQUERY_PROJECT`, `BIGQUERY_DATASET`,
//! `BIGQUERY_TABLE`, `THIRD_PARTY_API_URL`, ...

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::sinks::redis::{RedisSinkConfig, RedisSinkError};

/// Every setting of the service. See `README.md` for the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Google Cloud project of the Pub/Sub topics and subscriptions.
    pub pubsub_project_id: String,
    /// `host:port` of a Pub/Sub emulator (anonymous credentials); unset: Google Cloud.
    pub pubsub_emulator_host: Option<String>,
    pub content_subscription: String,
    pub content_topic: String,
    pub events_subscription: String,
    pub events_topic: String,
    /// Topic dead letters are published to; empty: none.
    pub dead_letter_topic: String,
    /// Unacked messages per subscription (flow control).
    pub max_outstanding_messages: i64,
    /// Ack deadline of the subscriptions `setup-pubsub` creates, seconds
    /// (10..=600): how soon a message a crashed host held is redelivered.
    pub pubsub_ack_deadline_secs: i32,

    /// Longest a message waits for its batch to fill, seconds (fractions allowed).
    pub default_emit_interval_secs: f64,
    /// Most messages per batch.
    pub batch_size: usize,
    /// How long an event waits for its content, seconds.
    pub pending_ttl_secs: u64,
    /// Most events waiting for content; pulling stops at this size.
    pub max_pending: usize,
    /// Largest message value accepted, bytes.
    pub max_message_bytes: usize,
    /// Directory of the embedded state store.
    pub state_dir: PathBuf,
    /// NDJSON file dead letters are appended to; empty: none.
    pub dead_letter_file: Option<PathBuf>,

    pub plugin_dir: PathBuf,
    pub decoder_file: String,
    pub enricher_file: String,
    pub plugin_cache_dir: Option<PathBuf>,
    pub plugin_watch: bool,
    pub plugin_call_deadline_ms: u64,
    pub plugin_memory_cap_mib: usize,
    /// Capability imports granted to plugins (e.g. `wasi:clocks`).
    pub plugin_grants: Vec<String>,

    pub redis_enabled: bool,
    pub redis_host: String,
    pub redis_port: u16,
    pub redis_db: u32,
    pub redis_password: Option<String>,
    /// TLS (`rediss://`) when the URL is built from host/port/db/password.
    pub redis_tls: bool,
    /// Full URL (`redis[s]://[[user]:password@]host:port/db`), overrides
    /// host/port/db/password/tls. Several comma-separated nodes (after the
    /// first, bare `host:port` allowed) mean a Redis Cluster.
    pub redis_url: Option<String>,
    /// Redis Cluster even with a single seed node.
    pub redis_cluster: bool,
    /// PEM CA certificate(s) trusted for `rediss://` instead of the public roots.
    pub redis_ca_file: Option<PathBuf>,
    pub redis_ttl_secs: u64,

    pub bigquery_enabled: bool,
    pub bigquery_project: String,
    pub bigquery_dataset: String,
    pub bigquery_table: String,
    /// Base URL of a BigQuery emulator (`http://127.0.0.1:9050`); unset: Google Cloud.
    pub bigquery_emulator_url: Option<String>,
    /// Before an enricher version goes live, add the BigQuery columns its new
    /// output fields need (NULLABLE) instead of refusing the version.
    pub bigquery_allow_schema_update: bool,

    pub api_enabled: bool,
    pub third_party_api_url: String,
    pub api_batch_size: usize,
    pub api_timeout_secs: u64,

    /// Address of `/metrics`, `/healthz`, `/readyz`, `/plugins`.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token for `POST /plugins/reload` and rollback; unset: disabled.
    pub admin_token: Option<String>,
    /// Promote a shadow enricher after this many compared events with no
    /// shadow error; 0: only by command.
    pub shadow_promote_after: u64,
    /// Most share (0..=1) of compared events that may differ for an
    /// automatic promotion.
    pub shadow_max_diff_ratio: f64,
    /// Sink retry backoff: first delay and cap, milliseconds.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pubsub_project_id: "streaming-project".into(),
            pubsub_emulator_host: None,
            content_subscription: "cdc-content-sub".into(),
            content_topic: "pgcdc.public.content".into(),
            events_subscription: "cdc-engagement_events-sub".into(),
            events_topic: "pgcdc.public.engagement_events".into(),
            dead_letter_topic: "pgcdc.dead-letters".into(),
            max_outstanding_messages: 5000,
            pubsub_ack_deadline_secs: 60,
            default_emit_interval_secs: 3.0,
            batch_size: 500,
            pending_ttl_secs: 10,
            max_pending: 100_000,
            max_message_bytes: 4 << 20,
            state_dir: PathBuf::from(".state/host"),
            dead_letter_file: Some(PathBuf::from(".state/host/dead-letters.ndjson")),
            plugin_dir: PathBuf::from("dist/plugins"),
            decoder_file: "decoder.wasm".into(),
            enricher_file: "enricher.wasm".into(),
            plugin_cache_dir: None,
            plugin_watch: true,
            plugin_call_deadline_ms: 250,
            plugin_memory_cap_mib: 128,
            plugin_grants: Vec::new(),
            redis_enabled: true,
            redis_host: "localhost".into(),
            redis_port: 6379,
            redis_db: 0,
            redis_password: None,
            redis_tls: false,
            redis_url: None,
            redis_cluster: false,
            redis_ca_file: None,
            redis_ttl_secs: 3600,
            bigquery_enabled: false,
            bigquery_project: "streaming-project".into(),
            bigquery_dataset: "engagement_analytics".into(),
            bigquery_table: "enriched_events".into(),
            bigquery_emulator_url: None,
            bigquery_allow_schema_update: false,
            api_enabled: false,
            third_party_api_url: "http://localhost:8080".into(),
            api_batch_size: 500,
            api_timeout_secs: 30,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9100))),
            admin_token: None,
            shadow_promote_after: 0,
            shadow_max_diff_ratio: 1.0,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
        }
    }
}

/// Bad configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid setting `{key}`: {why}")]
    Invalid { key: &'static str, why: String },
}

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Every key may come from the environment under its upper-case name.
        let keys: Vec<String> = serde_json::to_value(Config::default())
            .ok()
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        figment = figment.merge(
            Env::raw()
                .filter(move |k| keys.iter().any(|key| k.as_str().eq_ignore_ascii_case(key)))
                .lowercase(true)
                .split("__"),
        );
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, why: &str| {
            Err(ConfigError::Invalid {
                key,
                why: why.into(),
            })
        };
        if !(self.default_emit_interval_secs > 0.0 && self.default_emit_interval_secs <= 3600.0) {
            return invalid("default_emit_interval_secs", "must be in (0, 3600]");
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1");
        }
        if self.max_pending == 0 {
            return invalid("max_pending", "must be at least 1");
        }
        if self.bigquery_enabled && self.bigquery_dataset.is_empty() {
            return invalid("bigquery_dataset", "is required when bigquery_enabled");
        }
        if !self.redis_enabled && !self.bigquery_enabled && !self.api_enabled {
            return invalid("redis_enabled", "at least one sink must be enabled");
        }
        if self.redis_enabled
            && let Err(err) = self.redis_sink_config().validate()
        {
            let key = match err {
                RedisSinkError::CaWithoutTls { .. } => "redis_ca_file",
                _ if self.redis_url.is_some() => "redis_url",
                _ => "redis_host",
            };
            return invalid(key, &err.to_string());
        }
        Ok(())
    }

    pub fn emit_interval(&self) -> Duration {
        Duration::from_secs_f64(self.default_emit_interval_secs)
    }

    /// The Redis URL from `redis_url` or host/port/db/password/tls (the
    /// password percent-encoded).
    pub fn redis_url(&self) -> String {
        if let Some(url) = &self.redis_url {
            return url.clone();
        }
        let scheme = if self.redis_tls { "rediss" } else { "redis" };
        let credentials = match &self.redis_password {
            Some(password) => format!(":{}@", percent_encode(password)),
            None => String::new(),
        };
        format!(
            "{scheme}://{credentials}{}:{}/{}",
            self.redis_host, self.redis_port, self.redis_db
        )
    }

    /// The Redis sink's settings.
    pub fn redis_sink_config(&self) -> RedisSinkConfig {
        RedisSinkConfig {
            url: self.redis_url(),
            cluster: self.redis_cluster,
            ca_file: self.redis_ca_file.clone(),
            ttl: Duration::from_secs(self.redis_ttl_secs),
            ..RedisSinkConfig::default()
        }
    }
}

/// Every byte but RFC 3986's unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
// figment's Jail closures return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("host.toml", "redis_port = 6380\nbatch_size = 50\n")?;
            jail.set_env("REDIS_PORT", "6390");
            jail.set_env("DEFAULT_EMIT_INTERVAL_SECS", "0.5");
            let config = Config::load(Some(Path::new("host.toml"))).unwrap();
            assert_eq!(config.redis_port, 6390, "environment wins over the file");
            assert_eq!(config.batch_size, 50);
            assert_eq!(config.emit_interval(), Duration::from_millis(500));
            Ok(())
        });
    }

    #[test]
    fn redis_tls_cluster_and_ca_settings() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "host.toml",
                "redis_tls = true\nredis_password = \"p@ss/word\"\nredis_ca_file = \"ca.pem\"\n",
            )?;
            jail.set_env("REDIS_CLUSTER", "true");
            jail.set_env("REDIS_PORT", "7000");
            let config = Config::load(Some(Path::new("host.toml"))).unwrap();
            assert!(config.redis_cluster && config.redis_tls);
            assert_eq!(
                config.redis_url(),
                "rediss://:p%40ss%2Fword@localhost:7000/0"
            );
            let sink = config.redis_sink_config();
            assert!(sink.is_cluster());
            assert_eq!(sink.ca_file.as_deref(), Some(Path::new("ca.pem")));
            assert_eq!(sink.ttl, Duration::from_secs(3600));
            Ok(())
        });
    }

    #[test]
    fn redis_url_with_several_nodes_is_a_cluster() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("REDIS_URL", "redis://:pw@10.0.0.1:7000,10.0.0.2:7000");
            jail.set_env("REDIS_CA_FILE", "ca.pem");
            let err = Config::load(None).unwrap_err();
            assert!(err.to_string().contains("redis_ca_file"), "{err}");
            assert!(!err.to_string().contains("pw@"), "password shown: {err}");
            jail.set_env("REDIS_URL", "rediss://:pw@10.0.0.1:7000,10.0.0.2:7000");
            let config = Config::load(None).unwrap();
            assert!(!config.redis_cluster);
            assert!(config.redis_sink_config().is_cluster());
            jail.set_env("REDIS_URL", "redis://:pw@host:port/0");
            let err = Config::load(None).unwrap_err();
            assert!(err.to_string().contains("redis_url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("host.toml", "redis_prot = 6380\n")?;
            let err = Config::load(Some(Path::new("host.toml"))).unwrap_err();
            assert!(err.to_string().contains("redis_prot"), "{err}");
            Ok(())
        });
    }
}
