//! Redis sink: each enriched event as compact JSON under
//! `eng:{<content_id>}:<id>` with a TTL; a delete removes the key.
//!
//! The braces are literal: a Redis Cluster hash tag, so every event of one
//! content lands in one slot. One pipeline per batch (MULTI-less: each
//! command is idempotent, and order within the pipeline is kept, so an
//! update followed by a delete of the same event ends deleted).
//!
//! One node or a Redis Cluster, plain or TLS (`rediss://`, optionally with a
//! private CA): see [`RedisSinkConfig`]. The cluster client sends a pipeline
//! to the node of its first key's slot and refuses pipelines whose keys span
//! slots, so in cluster mode a batch is cut into one pipeline per slot (in
//! batch order within it); the slots' pipelines run concurrently over the
//! cluster's multiplexed node connections.

mod config;

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Client, TlsCertificates};

pub use self::config::{RedisSinkConfig, RedisSinkError};
use super::{RecordSink, SinkError, SinkReport};
use crate::pipeline::record::{Record, RecordKind};

/// Cluster: slot pipelines of one batch in flight at once.
const CLUSTER_CONCURRENCY: usize = 32;
/// Cluster: the client's own retries of a request (redirections, a node
/// reconnecting) before the sink's retry loop takes over.
const CLUSTER_RETRIES: u32 = 3;

/// The Redis sink. Reconnects by itself (ConnectionManager, or the cluster
/// client); a failed write is transient, so the batch is retried, never
/// dropped.
pub struct RedisSink {
    config: RedisSinkConfig,
    connection: Connection,
}

/// How the sink talks to Redis. Both are cheap handles to multiplexed
/// connections, cloned per request.
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisSink {
    /// Connects (fails if Redis does not answer, refuses the credentials,
    /// or its TLS certificate is not trusted).
    pub async fn connect(config: RedisSinkConfig) -> Result<Self, RedisSinkError> {
        let endpoints = config.endpoints()?;
        let certificates = match &config.ca_file {
            Some(path) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(
                    std::fs::read(path).map_err(|source| RedisSinkError::CaFile {
                        path: path.clone(),
                        source,
                    })?,
                ),
            }),
            None => None,
        };
        if endpoints.tls {
            install_crypto_provider();
        }
        let failed = |source| RedisSinkError::Connect {
            url: endpoints.shown.clone(),
            source,
        };
        let connection = if endpoints.cluster {
            let mut builder = ClusterClientBuilder::new(endpoints.nodes.clone())
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(50)
                .max_retry_wait(1000);
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates);
            }
            let client = builder.build().map_err(RedisSinkError::Client)?;
            Connection::Cluster(client.get_async_connection().await.map_err(failed)?)
        } else {
            let Some(node) = endpoints.nodes.first().cloned() else {
                return Err(RedisSinkError::NoUrl);
            };
            let client = match certificates {
                Some(certificates) => Client::build_with_tls(node, certificates),
                None => Client::open(node),
            }
            .map_err(RedisSinkError::Client)?;
            // One plain attempt first: a wrong password or an untrusted
            // certificate fails here at once, instead of after the
            // manager's reconnection backoff (which is kept for the rest:
            // Redis may still be starting).
            if let Err(err) = client.get_multiplexed_async_connection().await
                && retrying_cannot_help(&err)
            {
                return Err(failed(err));
            }
            Connection::Single(ConnectionManager::new(client).await.map_err(failed)?)
        };
        tracing::info!(
            url = %endpoints.shown,
            cluster = endpoints.cluster,
            tls = endpoints.tls,
            "connected to Redis"
        );
        Ok(Self { config, connection })
    }

    /// The key of an event.
    pub fn key(&self, record: &Record) -> String {
        key(&self.config.key_prefix, record)
    }

    /// Whether the sink writes to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
    }

    /// One pipeline of `SET key json EX ttl` / `DEL key`, in order.
    fn pipeline<'a>(
        &self,
        commands: impl IntoIterator<Item = (&'a str, &'a Record)>,
    ) -> redis::Pipeline {
        let ttl = self.config.ttl.as_secs().max(1);
        let mut pipe = redis::pipe();
        for (key, record) in commands {
            match record.kind {
                RecordKind::Upsert => {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(record.to_json())
                        .arg("EX")
                        .arg(ttl)
                        .ignore();
                }
                RecordKind::Delete => {
                    pipe.cmd("DEL").arg(key).ignore();
                }
            }
        }
        pipe
    }

    async fn write_single(
        &self,
        connection: &ConnectionManager,
        records: &[Record],
    ) -> Result<(), SinkError> {
        for chunk in records.chunks(self.config.max_pipeline.max(1)) {
            let keys: Vec<String> = chunk.iter().map(|r| self.key(r)).collect();
            let pipe = self.pipeline(keys.iter().map(String::as_str).zip(chunk));
            pipe.query_async::<()>(&mut connection.clone())
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn write_cluster(
        &self,
        connection: &ClusterConnection,
        records: &[Record],
    ) -> Result<(), SinkError> {
        // Per slot, in batch order: a key's commands stay in order.
        let mut by_slot: HashMap<Slot, Vec<(String, &Record)>> = HashMap::new();
        for record in records {
            let key = self.key(record);
            by_slot
                .entry(Slot::for_key(&key))
                .or_default()
                .push((key, record));
        }
        let max_pipeline = self.config.max_pipeline.max(1);
        let slots: Vec<Vec<redis::Pipeline>> = by_slot
            .into_values()
            .map(|commands| {
                commands
                    .chunks(max_pipeline)
                    .map(|chunk| self.pipeline(chunk.iter().map(|(key, r)| (key.as_str(), *r))))
                    .collect()
            })
            .collect();
        futures::stream::iter(slots)
            .map(|pipelines| {
                let mut connection = connection.clone();
                // A slot's pipelines one after the other, slots side by side.
                async move {
                    for pipe in pipelines {
                        pipe.query_async::<()>(&mut connection)
                            .await
                            .map_err(classify)?;
                    }
                    Ok::<(), SinkError>(())
                }
            })
            .buffer_unordered(CLUSTER_CONCURRENCY)
            .try_collect::<()>()
            .await
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
        match &self.connection {
            Connection::Single(connection) => self.write_single(connection, records).await?,
            Connection::Cluster(connection) => self.write_cluster(connection, records).await?,
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

/// Refused credentials, a configuration the client cannot use, or a TLS
/// failure (untrusted or mismatched certificate).
fn retrying_cannot_help(err: &redis::RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::InvalidClientConfig
    ) || std::error::Error::source(err).is_some_and(is_tls_failure)
}

/// Whether `err` or a cause is rustls' error. redis keeps causes as
/// `Arc<dyn Error>`, and rustls' error arrives inside an `io::Error`, whose
/// `source()` skips it: both are looked into.
fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        if let Some(shared) = cause.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
            && is_tls_failure(shared.as_ref())
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// redis' rustls setup uses the process-wide crypto provider, and the
/// dependency tree enables more than one, so rustls cannot pick one by
/// itself: installs ring's unless the program already chose. The sink calls
/// it before a TLS connection; other redis TLS clients of the process must
/// too, unless a sink connected first.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: there is one now.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
