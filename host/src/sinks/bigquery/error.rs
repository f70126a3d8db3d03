//! What can go wrong talking to BigQuery, and whether retrying can help.
//! The pipeline only sees [`SinkError`]; this enum keeps the failed step
//! and the cause for logs and for `ensure_table`'s caller.

use std::time::Duration;

use gcp_bigquery_client::error::BQError;

use super::config::BigQuerySinkConfigError;
use crate::sinks::SinkError;

/// BigQuery error reasons that mean "later", even under a 4xx status:
/// quota and rate limits come back as 403, backend trouble as 5xx.
/// <https://cloud.google.com/bigquery/docs/error-messages>
const RETRIABLE_REASONS: &[&str] = &[
    "rateLimitExceeded",
    "quotaExceeded",
    "backendError",
    "internalError",
    "timeout",
];

/// A failed BigQuery step.
#[derive(Debug, thiserror::Error)]
pub enum BigQueryError {
    #[error(transparent)]
    InvalidConfig(#[from] BigQuerySinkConfigError),
    #[error("cannot build the HTTP client")]
    ClientBuildFailed(#[source] reqwest::Error),
    /// No access token (no credentials found, or the token endpoint failed).
    #[error("cannot get a BigQuery access token: {message}")]
    CredentialsFailed { message: String, transient: bool },
    /// The request did not get an answer (connection, timeout, ...).
    #[error("{step}: request failed")]
    RequestFailed {
        step: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// BigQuery answered with an error status.
    #[error("{step}: HTTP {status} {reason}: {message}")]
    Refused {
        step: &'static str,
        status: u16,
        /// The first `errors[].reason` (`notFound`, `invalid`, `duplicate`, ...).
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// BigQuery skipped rows that were fine (`stopped` because another row
    /// failed, `timeout`, `backendError`): send them again.
    #[error("{step}: {count} rows not written ({reason}), to be sent again")]
    RowsNotWritten {
        step: &'static str,
        count: usize,
        reason: String,
    },
    /// A 2xx answer that could not be read: whether it was applied is unknown.
    #[error("{step}: unreadable answer: {message}")]
    BadResponse { step: &'static str, message: String },
    /// A query job finished with errors (BigQuery, and the emulator even
    /// with HTTP 200, report bad SQL this way).
    #[error("{step}: query failed: {message}")]
    QueryFailed { step: &'static str, message: String },
    /// The existing table cannot take the rows the sink writes.
    #[error("table {table} does not fit the sink: {message}")]
    SchemaMismatch { table: String, message: String },
    #[error("{step}: {message}")]
    Client { step: &'static str, message: String },
}

impl BigQueryError {
    /// An error status with BigQuery's error body (`{"error": {"message",
    /// "errors": [{"reason"}]}}`), or the start of whatever body came.
    pub fn refused(step: &'static str, status: u16, body: &str) -> Self {
        let value: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let error = value.as_ref().and_then(|v| v.get("error"));
        BigQueryError::Refused {
            step,
            status,
            reason: error
                .and_then(|e| e.pointer("/errors/0/reason"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            message: error
                .and_then(|e| e.get("message"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| body.chars().take(300).collect()),
            retry_after: None,
        }
    }

    /// Whether retrying may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            BigQueryError::CredentialsFailed { transient, .. } => *transient,
            BigQueryError::RequestFailed { source, .. } => !source.is_builder(),
            BigQueryError::Refused { status, reason, .. } => {
                is_retriable_status(*status) || RETRIABLE_REASONS.contains(&reason.as_str())
            }
            BigQueryError::BadResponse { .. } | BigQueryError::RowsNotWritten { .. } => true,
            BigQueryError::InvalidConfig(_)
            | BigQueryError::ClientBuildFailed(_)
            | BigQueryError::QueryFailed { .. }
            | BigQueryError::SchemaMismatch { .. }
            | BigQueryError::Client { .. } => false,
        }
    }

    /// BigQuery's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            BigQueryError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Maps an error of gcp-bigquery-client (used for everything but
    /// `insertAll`) to the step that failed.
    pub(crate) fn from_client(step: &'static str, err: BQError) -> Self {
        match err {
            BQError::ResponseError { error } => {
                let reason = error
                    .error
                    .errors
                    .first()
                    .and_then(|e| e.get("reason").cloned())
                    .unwrap_or_default();
                BigQueryError::Refused {
                    step,
                    status: u16::try_from(error.error.code).unwrap_or(0),
                    reason,
                    message: error.error.message,
                    retry_after: None,
                }
            }
            BQError::RequestError(source) => BigQueryError::RequestFailed { step, source },
            other => BigQueryError::Client {
                step,
                message: other.to_string(),
            },
        }
    }
}

/// 408, 429 and every 5xx are worth retrying.
pub(crate) fn is_retriable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

impl From<BigQueryError> for SinkError {
    fn from(err: BigQueryError) -> Self {
        // The full chain: reqwest's top-level message alone ("error sending
        // request") does not say what happened.
        let mut message = format!("BigQuery: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if err.is_retriable() {
            let retry_after = match &err {
                BigQueryError::Refused { retry_after, .. } => *retry_after,
                _ => None,
            };
            SinkError::Transient {
                message,
                retry_after,
            }
        } else {
            SinkError::Permanent(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, reason: &str) -> BigQueryError {
        BigQueryError::Refused {
            step: "insertAll",
            status,
            reason: reason.into(),
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn status_and_reason_decide_retries() {
        assert!(refused(503, "backendError").is_retriable());
        assert!(refused(429, "").is_retriable());
        assert!(refused(500, "internalError").is_retriable());
        // Quotas come back as 403 with a reason that says "later".
        assert!(refused(403, "rateLimitExceeded").is_retriable());
        assert!(refused(403, "quotaExceeded").is_retriable());
        assert!(!refused(403, "accessDenied").is_retriable());
        assert!(!refused(404, "notFound").is_retriable());
        assert!(!refused(400, "invalid").is_retriable());
    }

    #[test]
    fn sink_error_keeps_retry_after() {
        let err = BigQueryError::Refused {
            step: "insertAll",
            status: 429,
            reason: "rateLimitExceeded".into(),
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        match SinkError::from(err) {
            SinkError::Transient {
                retry_after,
                message,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
                assert!(message.contains("slow down"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            SinkError::from(refused(404, "notFound")),
            SinkError::Permanent(_)
        ));
    }
}
