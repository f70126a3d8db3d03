//! BigQuery sink: every record becomes one row of
//! `engagement_analytics.enriched_events`, a change log (one row per event
//! version or delete), streamed with `tabledata.insertAll`.
//!
//! Place in the flow: after enrichment, next to the Redis and HTTP sinks; the
//! pipeline acknowledges a message once every sink confirmed its records.
//!
//! ```text
//! records ─▶ rows::plan ──────────────▶ service::send (per request) ─▶ SinkReport
//!            JSON row + insertId,        gzip, POST insertAll,          rejected rows
//!            op, ingested_at;            answer → written / rejected /  (index, reason)
//!            ≤ max_batch_rows and        transient / permanent
//!            ≤ max_batch_bytes each
//! ```
//!
//! - **Idempotent**: each row's `insertId` is a hash of (source table, event
//!   key, op, LSN), so a retried or redelivered change is dropped by
//!   BigQuery's dedup (best effort, about a minute) while an update, with a
//!   new LSN, is a new row. The view `<table>_current`
//!   (`bigquery/current_events_view.sql`) gives the current version of each
//!   event whatever the copies: latest LSN per id, deletes excluded.
//! - **Row errors**: requests are sent with `skipInvalidRows`, so a row
//!   BigQuery refuses (a mistyped value) is reported in
//!   [`SinkReport::rejected`] and dead-lettered while the rest is written.
//! - **Failures**: see `service.rs` for which answers are transient (retried
//!   by [`crate::sinks::retry`], all requests of the batch again, same
//!   insertIds) and which are permanent (dead letters).
//! - **Start-up**: [`BigQuerySink::connect`] creates the dataset, table and
//!   view when missing ([`BigQuerySink::ensure_table`]) or checks the table.
//!
//! What it does not do: retry by itself, batch across calls (the pipeline
//! hands it a batch), update or delete rows (BigQuery rows are appended;
//! "current" is the view's job), or use the Storage Write API
//! (gcp-bigquery-client hard-wires its endpoint, so it cannot reach an
//! emulator).
//!
//! Metrics: `engagement_bigquery_rows_total{result}`, `result` = `inserted`,
//! `rejected` (refused by BigQuery or before sending, dead-lettered) or
//! `failed` (not written by an attempt that failed transiently). Counted
//! per attempt: rows written before a transient failure count as inserted
//! again when the retry sends them again.

mod auth;
mod config;
mod error;
pub mod fields;
pub mod rows;
mod service;
mod table;

use std::time::{Instant, SystemTime};

use gcp_bigquery_client::client_builder::ClientBuilder;

pub use config::{
    BigQuerySinkConfig, BigQuerySinkConfigError, INSERT_ALL_MAX_BYTES, INSERT_ALL_MAX_ROWS,
};
pub use error::BigQueryError;
pub use table::{TableSetup, ViewSetup};

use self::auth::TokenSource;
use self::service::InsertAllService;
use super::{RecordSink, SinkError, SinkReport};
use crate::pipeline::record::Record;
use crate::wasm::bindings::FieldSpec;

/// Time allowed to open a connection (the request timeout covers the rest).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Streams records into one BigQuery table.
pub struct BigQuerySink {
    config: BigQuerySinkConfig,
    /// Shared by the insertAll requests, the existence checks and
    /// gcp-bigquery-client (one connection pool, one set of timeouts).
    http: reqwest::Client,
    tokens: TokenSource,
    /// gcp-bigquery-client: dataset/table creation and query jobs.
    client: gcp_bigquery_client::Client,
    insert: InsertAllService,
}

impl std::fmt::Debug for BigQuerySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigQuerySink")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BigQuerySink {
    /// Checks `config` and builds the clients. No network call: credentials
    /// are located but the first token is fetched by the first request.
    pub async fn new(config: BigQuerySinkConfig) -> Result<Self, BigQueryError> {
        config.validate()?;
        let tokens = TokenSource::new(config.base_url.is_some())?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(config.request_timeout())
            .user_agent(concat!("engagement-host/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BigQueryError::ClientBuildFailed)?;
        let base_url = config.v2_base_url();
        let client = ClientBuilder::new()
            .with_v2_base_url(base_url.clone())
            .with_client(http.clone())
            .build_from_authenticator(tokens.authenticator())
            .await
            .map_err(|err| BigQueryError::from_client("build client", err))?;
        let insert = InsertAllService::new(
            http.clone(),
            &base_url,
            &config.project,
            &config.dataset,
            &config.table,
            tokens.clone(),
        );
        Ok(Self {
            config,
            http,
            tokens,
            client,
            insert,
        })
    }

    /// [`Self::new`], then [`Self::ensure_table`] when `create_if_missing`,
    /// else [`Self::check_table`]: a sink that connects can write.
    pub async fn connect(config: BigQuerySinkConfig) -> Result<Self, BigQueryError> {
        let sink = Self::new(config).await?;
        if sink.config.create_if_missing {
            sink.ensure_table().await?;
        } else {
            sink.check_table().await?;
        }
        Ok(sink)
    }

    pub fn config(&self) -> &BigQuerySinkConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl RecordSink for BigQuerySink {
    fn name(&self) -> &'static str {
        "bigquery"
    }

    async fn accepts_fields(&self, fields: &[FieldSpec]) -> Result<(), String> {
        self.accept_fields(fields).await
    }

    async fn write(&self, records: &[Record]) -> Result<SinkReport, SinkError> {
        if records.is_empty() {
            return Ok(SinkReport::default());
        }
        let started = Instant::now();
        // One instant per batch: rows of one write tie on ingested_at, and
        // the view orders by source_lsn first anyway.
        let ingested_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let plan = rows::plan(
            records,
            &ingested_at,
            self.config.max_batch_rows,
            self.config.max_batch_bytes,
        );
        let mut report = SinkReport {
            rejected: plan.rejected,
        };
        let mut inserted = 0usize;
        let mut refused: Option<BigQueryError> = None;
        for (n, request) in plan.requests.iter().enumerate() {
            match self.insert.send(request).await {
                Ok(rejected) => {
                    inserted += request.indexes.len() - rejected.len();
                    report.rejected.extend(rejected);
                }
                Err(err) if err.is_retriable() => {
                    // Rejections are counted by the attempt that completes.
                    let failed = plan.requests[n..].iter().map(|r| r.indexes.len()).sum();
                    RowsWritten {
                        inserted,
                        rejected: 0,
                        failed,
                        requests: n + 1,
                        started,
                    }
                    .emit(&self.config.table);
                    // Earlier requests of this batch were written: the
                    // retry sends them again with the same insertIds.
                    return Err(err.into());
                }
                Err(err) => {
                    // This request's rows cannot be written (too large,
                    // refused outright): dead letters with the reason; the
                    // other requests go on.
                    let reason = format!("BigQuery: {err}");
                    report
                        .rejected
                        .extend(request.indexes.iter().map(|&i| (i, reason.clone())));
                    refused.get_or_insert(err);
                }
            }
        }
        RowsWritten {
            inserted,
            rejected: report.rejected.len(),
            failed: 0,
            requests: plan.requests.len(),
            started,
        }
        .emit(&self.config.table);
        if inserted == 0
            && let Some(err) = refused
        {
            // Nothing written and BigQuery refused every request (a missing
            // table, no rights): one error for the batch says it best.
            return Err(err.into());
        }
        report.rejected.sort_by_key(|(index, _)| *index);
        Ok(report)
    }
}

/// One `write` call's outcome: logs it and counts its rows.
struct RowsWritten {
    inserted: usize,
    rejected: usize,
    failed: usize,
    requests: usize,
    started: Instant,
}

impl RowsWritten {
    fn emit(self, table: &str) {
        for (result, rows) in [
            ("inserted", self.inserted),
            ("rejected", self.rejected),
            ("failed", self.failed),
        ] {
            if rows > 0 {
                metrics::counter!("engagement_bigquery_rows_total", "result" => result)
                    .increment(rows as u64);
            }
        }
        tracing::debug!(
            table,
            inserted = self.inserted,
            rejected = self.rejected,
            failed = self.failed,
            requests = self.requests,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "BigQuery rows written"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real-BigQuery path builds without a network call or a panic
    /// (TLS set-up, credential discovery); without credentials on this
    /// machine it may only fail with a credentials error.
    #[tokio::test]
    async fn real_bigquery_sink_builds_offline() {
        match BigQuerySink::new(BigQuerySinkConfig::default()).await {
            Ok(sink) => assert_eq!(sink.name(), "bigquery"),
            Err(err) => assert!(
                matches!(err, BigQueryError::CredentialsFailed { .. }),
                "{err}"
            ),
        }
    }

    #[tokio::test]
    async fn invalid_config_is_refused_before_any_io() {
        let err = BigQuerySink::new(BigQuerySinkConfig {
            table: String::new(),
            ..Default::default()
        })
        .await
        .expect_err("empty table name");
        assert!(matches!(err, BigQueryError::InvalidConfig(_)), "{err}");
    }
}
