//! Redis sink: each enriched event as compact JSON under
//! `eng:{<content_id>}:<id>` with a TTL; a delete removes the key.
//!
//! The braces are literal: a Redis Cluster hash tag, so every event of one
//! content lands in one slot. One pipeline per batch (MULTI-less: each
//! command is idempotent, and order within the pipeline is kept, so an
//! update followed by a delete of the same event ends deleted).

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{RecordSink, SinkError, SinkReport};
use crate::pipeline::record::{Record, RecordKind};

/// Where and how long.
#[derive(Debug, Clone)]
pub struct RedisSinkConfig {
    /// `redis://host:port/db` or `redis://:password@host:port/db` (single node;
    /// TLS and Cluster are not wired yet).
    pub url: String,
    /// Time to live of each key.
    pub ttl: Duration,
    /// Prefix before `{content_id}` (default `eng:`).
    pub key_prefix: String,
    /// Commands per pipeline round trip.
    pub max_pipeline: usize,
}

impl Default for RedisSinkConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            ttl: Duration::from_secs(3600),
            key_prefix: "eng:".into(),
            max_pipeline: 1000,
        }
    }
}

/// The Redis sink. Reconnects by itself (ConnectionManager); a failed write
/// is transient, so the batch is retried, never dropped.
pub struct RedisSink {
    config: RedisSinkConfig,
    connection: ConnectionManager,
}

impl RedisSink {
    /// Connects (fails if Redis does not answer).
    pub async fn connect(config: RedisSinkConfig) -> Result<Self, SinkError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|err| SinkError::Permanent(format!("invalid Redis URL: {err}")))?;
        let connection = ConnectionManager::new(client)
            .await
            .map_err(|err| SinkError::transient(format!("cannot connect to Redis: {err}")))?;
        Ok(Self { config, connection })
    }

    /// The key of an event.
    pub fn key(&self, record: &Record) -> String {
        key(&self.config.key_prefix, record)
    }
}

/// `<prefix>{<content_id>}:<event key>`; an event without content id gets `{}`.
pub fn key(prefix: &str, record: &Record) -> String {
    format!(
        "{prefix}{{{}}}:{}",
        record.content_id.as_deref().unwrap_or(""),
        record.event_key
    )
}

#[async_trait::async_trait]
impl RecordSink for RedisSink {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn write(&self, records: &[Record]) -> Result<SinkReport, SinkError> {
        let ttl = self.config.ttl.as_secs().max(1);
        for chunk in records.chunks(self.config.max_pipeline.max(1)) {
            let mut pipe = redis::pipe();
            for record in chunk {
                let key = self.key(record);
                match record.kind {
                    RecordKind::Upsert => {
                        pipe.cmd("SET")
                            .arg(&key)
                            .arg(record.to_json())
                            .arg("EX")
                            .arg(ttl)
                            .ignore();
                    }
                    RecordKind::Delete => {
                        pipe.cmd("DEL").arg(&key).ignore();
                    }
                }
            }
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(classify)?;
        }
        Ok(SinkReport::default())
    }
}

fn classify(err: redis::RedisError) -> SinkError {
    // Wrong password or a command Redis refuses will not get better by
    // retrying; anything about the connection will.
    match err.kind() {
        redis::ErrorKind::AuthenticationFailed => SinkError::Permanent(format!("Redis: {err}")),
        _ => SinkError::transient(format!("Redis: {err}")),
    }
}
