//! Settings of the HTTP sink: where the API is, how long a request may take,
//! how big a batch may be. Built once from the service configuration and
//! checked by [`HttpSinkConfig::validate`] before the first request.

use std::time::Duration;

/// Smallest `max_batch_bytes` accepted: room for the `{"events":[]}`
/// envelope and a realistic record.
pub const MIN_BATCH_BYTES: usize = 1024;

/// Where and how records are posted.
#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    /// Base URL of the API (`http://127.0.0.1:8080`); records go to
    /// `{base_url}/events`. A path prefix is kept (`http://host/api` ->
    /// `http://host/api/events`).
    pub base_url: String,
    /// Whole-request deadline (connect, send, answer). The original pipeline
    /// used 30 s. A timeout is a transient error: the batch is sent again
    /// with the same idempotency key.
    pub timeout: Duration,
    /// Most events per request.
    pub max_batch_events: usize,
    /// Most bytes per request body. A record larger than this on its own is
    /// refused (reported as rejected, so it is dead-lettered), never sent.
    pub max_batch_bytes: usize,
}

impl Default for HttpSinkConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".into(),
            timeout: Duration::from_secs(30),
            max_batch_events: 500,
            max_batch_bytes: 5 * 1024 * 1024,
        }
    }
}

/// A setting the sink cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpSinkConfigError {
    #[error("invalid API base URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the API request timeout must be more than zero")]
    ZeroTimeout,
    #[error("max_batch_events must be at least 1")]
    ZeroBatchEvents,
    #[error("max_batch_bytes must be at least {MIN_BATCH_BYTES}, got {0}")]
    BatchBytesTooSmall(usize),
}

impl HttpSinkConfig {
    /// Checks the settings and returns the URL records are posted to.
    pub fn validate(&self) -> Result<reqwest::Url, HttpSinkConfigError> {
        if self.timeout.is_zero() {
            return Err(HttpSinkConfigError::ZeroTimeout);
        }
        if self.max_batch_events == 0 {
            return Err(HttpSinkConfigError::ZeroBatchEvents);
        }
        if self.max_batch_bytes < MIN_BATCH_BYTES {
            return Err(HttpSinkConfigError::BatchBytesTooSmall(
                self.max_batch_bytes,
            ));
        }
        self.events_url()
    }

    /// `{base_url}/events`.
    pub fn events_url(&self) -> Result<reqwest::Url, HttpSinkConfigError> {
        let bad = |reason: String| HttpSinkConfigError::BadUrl {
            url: self.base_url.clone(),
            reason,
        };
        let joined = format!("{}/events", self.base_url.trim_end_matches('/'));
        let url = reqwest::Url::parse(&joined).map_err(|err| bad(err.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "scheme must be http or https, not {}",
                url.scheme()
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment".into()));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> HttpSinkConfig {
        HttpSinkConfig {
            base_url: url.into(),
            ..HttpSinkConfig::default()
        }
    }

    #[test]
    fn events_url_keeps_a_path_prefix() {
        let url = |base: &str| with_url(base).validate().map(|u| u.to_string());
        assert_eq!(
            url("http://127.0.0.1:8080"),
            Ok("http://127.0.0.1:8080/events".into())
        );
        assert_eq!(
            url("https://api.example.com/v1/"),
            Ok("https://api.example.com/v1/events".into())
        );
        assert!(url("ftp://x").is_err());
        assert!(url("not a url").is_err());
        assert!(url("http://x/?a=1").is_err());
    }

    #[test]
    fn limits_are_checked() {
        let bad = |config: HttpSinkConfig| config.validate().is_err();
        assert!(bad(HttpSinkConfig {
            max_batch_events: 0,
            ..HttpSinkConfig::default()
        }));
        assert!(bad(HttpSinkConfig {
            max_batch_bytes: 10,
            ..HttpSinkConfig::default()
        }));
        assert!(bad(HttpSinkConfig {
            timeout: Duration::ZERO,
            ..HttpSinkConfig::default()
        }));
    }
}
