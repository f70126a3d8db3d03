//! Settings of the BigQuery sink: which table, which endpoint, how big a
//! request may be. Checked once by [`BigQuerySinkConfig::validate`] when the
//! sink is built; nothing here does I/O.

use std::time::Duration;

use serde::Deserialize;

/// BigQuery's own cap on one `tabledata.insertAll` request (10 MB); the
/// default batch stays under it with room for the request envelope.
pub const INSERT_ALL_MAX_BYTES: usize = 10_000_000;
/// BigQuery's cap on rows in one `insertAll` request.
pub const INSERT_ALL_MAX_ROWS: usize = 50_000;

/// Where the rows go and how they are batched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BigQuerySinkConfig {
    /// Google Cloud project of the dataset (and of the query jobs that
    /// create the view).
    pub project: String,
    /// Dataset (default `engagement_analytics`).
    pub dataset: String,
    /// Table (default `enriched_events`); the view of current versions is
    /// `<table>_current`.
    pub table: String,
    /// REST base URL up to and including `/bigquery/v2`. `None`: real
    /// BigQuery, authenticated with application default credentials (the
    /// service account key named by `GOOGLE_APPLICATION_CREDENTIALS`,
    /// `gcloud auth application-default login`, or the metadata server).
    /// Set: an emulator (`http://127.0.0.1:9050/bigquery/v2`), sent a fixed
    /// dummy token.
    pub base_url: Option<String>,
    /// Location of the dataset when the sink creates it (`US`, `EU`, ...);
    /// `None` lets BigQuery choose (US).
    pub location: Option<String>,
    /// Rows per `insertAll` request (BigQuery recommends 500).
    pub max_batch_rows: usize,
    /// Uncompressed JSON bytes per `insertAll` request (BigQuery refuses
    /// requests over 10 MB). A single row larger than this is rejected.
    pub max_batch_bytes: usize,
    /// Whole-request time limit of each HTTP call.
    pub request_timeout_secs: u64,
    /// Create the dataset, table and view when missing at start-up
    /// ([`super::BigQuerySink::ensure_table`]); otherwise only check that
    /// the table exists with every column the sink writes.
    pub create_if_missing: bool,
    /// Before an enricher version goes live, add the columns its output
    /// fields need and the table lacks (NULLABLE, `tables.patch`) instead
    /// of refusing the version ([`super::BigQuerySink::accept_fields`]).
    pub allow_schema_update: bool,
}

impl Default for BigQuerySinkConfig {
    fn default() -> Self {
        Self {
            project: "streaming-project".into(),
            dataset: "engagement_analytics".into(),
            table: "enriched_events".into(),
            base_url: None,
            location: None,
            max_batch_rows: 500,
            max_batch_bytes: 9_000_000,
            request_timeout_secs: 30,
            create_if_missing: true,
            allow_schema_update: false,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BigQuerySinkConfigError {
    #[error("bigquery {field} {value:?} is not a valid BigQuery name ({rule})")]
    InvalidName {
        field: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("bigquery max_batch_rows must be 1..={INSERT_ALL_MAX_ROWS}, not {0}")]
    BatchRowsOutOfRange(usize),
    #[error(
        "bigquery max_batch_bytes must be 1024..={INSERT_ALL_MAX_BYTES} (insertAll's limit), not {0}"
    )]
    BatchBytesOutOfRange(usize),
    #[error("bigquery request_timeout_secs must be at least 1")]
    ZeroTimeout,
    #[error("bigquery base_url {0:?} is not an http(s) URL")]
    InvalidBaseUrl(String),
}

impl BigQuerySinkConfig {
    /// Checks every setting; the sink is built only from a valid config.
    pub fn validate(&self) -> Result<(), BigQuerySinkConfigError> {
        // Project ids also allow `-`, `.` and `:` (domain-scoped projects);
        // dataset and table ids are letters, digits and underscores. These
        // names are pasted into SQL (the view), so the check also keeps
        // them from breaking out of the backquotes.
        check_name("project", &self.project, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
        })?;
        check_name("dataset", &self.dataset, |c| {
            c.is_ascii_alphanumeric() || c == '_'
        })?;
        check_name("table", &self.table, |c| {
            c.is_ascii_alphanumeric() || c == '_'
        })?;
        if !(1..=INSERT_ALL_MAX_ROWS).contains(&self.max_batch_rows) {
            return Err(BigQuerySinkConfigError::BatchRowsOutOfRange(
                self.max_batch_rows,
            ));
        }
        if !(1024..=INSERT_ALL_MAX_BYTES).contains(&self.max_batch_bytes) {
            return Err(BigQuerySinkConfigError::BatchBytesOutOfRange(
                self.max_batch_bytes,
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(BigQuerySinkConfigError::ZeroTimeout);
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(BigQuerySinkConfigError::InvalidBaseUrl(url.clone()));
        }
        Ok(())
    }

    /// The per-request time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The name of the view of current versions.
    pub fn view(&self) -> String {
        format!("{}_current", self.table)
    }

    /// The REST base URL without a trailing slash.
    pub(crate) fn v2_base_url(&self) -> String {
        self.base_url
            .as_deref()
            .unwrap_or("https://bigquery.googleapis.com/bigquery/v2")
            .trim_end_matches('/')
            .to_owned()
    }
}

fn check_name(
    field: &'static str,
    value: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), BigQuerySinkConfigError> {
    let rule = if field == "project" {
        "1-1024 letters, digits, '-', '_', '.', ':'"
    } else {
        "1-1024 letters, digits, '_'"
    };
    if value.is_empty() || value.len() > 1024 || !value.chars().all(allowed) {
        return Err(BigQuerySinkConfigError::InvalidName {
            field,
            value: value.to_owned(),
            rule,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = BigQuerySinkConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.view(), "enriched_events_current");
        assert_eq!(
            config.v2_base_url(),
            "https://bigquery.googleapis.com/bigquery/v2"
        );
    }

    #[test]
    fn names_that_would_break_the_view_sql_are_refused() {
        let config = BigQuerySinkConfig {
            dataset: "x` ; DROP".into(),
            ..Default::default()
        };
        assert!(matches!(
            config.validate(),
            Err(BigQuerySinkConfigError::InvalidName {
                field: "dataset",
                ..
            })
        ));
    }

    #[test]
    fn limits_are_checked() {
        let rows = BigQuerySinkConfig {
            max_batch_rows: 0,
            ..Default::default()
        };
        assert_eq!(
            rows.validate(),
            Err(BigQuerySinkConfigError::BatchRowsOutOfRange(0))
        );
        let bytes = BigQuerySinkConfig {
            max_batch_bytes: 20_000_000,
            ..Default::default()
        };
        assert_eq!(
            bytes.validate(),
            Err(BigQuerySinkConfigError::BatchBytesOutOfRange(20_000_000))
        );
        let url = BigQuerySinkConfig {
            base_url: Some("127.0.0.1:9050".into()),
            ..Default::default()
        };
        assert!(matches!(
            url.validate(),
            Err(BigQuerySinkConfigError::InvalidBaseUrl(_))
        ));
    }

    #[test]
    fn trailing_slash_of_the_base_url_is_dropped() {
        let config = BigQuerySinkConfig {
            base_url: Some("http://127.0.0.1:9050/bigquery/v2/".into()),
            ..Default::default()
        };
        assert_eq!(config.v2_base_url(), "http://127.0.0.1:9050/bigquery/v2");
    }
}
