//! [`HttpSink`]: sends a batch's requests (see [`super::request`]) one after
//! the other and maps each answer to the sink's error kinds:
//!
//! | answer | result |
//! | --- | --- |
//! | 2xx | written |
//! | 429, 503 | transient, after `Retry-After` (seconds) when given |
//! | 408, other 5xx, timeout, connection error | transient |
//! | other 4xx (and anything else) | permanent: status and body snippet, the records are dead-lettered |
//!
//! It does not retry by itself: [`crate::sinks::retry::write_with_retry`]
//! does, and a retry sends the requests that already succeeded again with
//! the same idempotency keys, which the API acknowledges without applying
//! twice.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::config::{HttpSinkConfig, HttpSinkConfigError};
use super::request::{ApiRequest, build_requests};
use crate::pipeline::record::Record;
use crate::sinks::{RecordSink, SinkError, SinkReport};

/// Header carrying the request's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// A `Retry-After` longer than this is cut to it: a misconfigured API must
/// not park the pipeline for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Characters of an error answer's body kept in the error message.
const BODY_SNIPPET_CHARS: usize = 300;

/// Why the sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpSinkError {
    #[error(transparent)]
    InvalidConfig(#[from] HttpSinkConfigError),
    #[error("cannot build the HTTP client")]
    ClientBuildFailed(#[source] reqwest::Error),
}

/// Posts records to the third-party API. Every record is sent, deletes
/// included: a delete arrives as the event's key with `"op": "d"` (and its
/// `content_id`), and the API decides what to do with it.
#[derive(Debug, Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    events_url: reqwest::Url,
    /// `events_url` without credentials, for error messages and logs.
    shown_url: String,
    config: HttpSinkConfig,
}

impl HttpSink {
    /// Checks `config` and builds the client (connection pool included).
    pub fn new(config: HttpSinkConfig) -> Result<Self, HttpSinkError> {
        let events_url = config.validate()?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("engagement-host/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HttpSinkError::ClientBuildFailed)?;
        let mut shown = events_url.clone();
        // Only fails for URLs that cannot have credentials at all.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(Self {
            client,
            shown_url: shown.to_string(),
            events_url,
            config,
        })
    }

    /// `{base_url}/events`.
    pub fn events_url(&self) -> &reqwest::Url {
        &self.events_url
    }

    /// Sends one request and classifies the answer.
    async fn send(&self, request: &ApiRequest) -> Result<(), SinkError> {
        let started = Instant::now();
        let sent = self
            .client
            .post(self.events_url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY_HEADER, &request.idempotency_key)
            // `Bytes`: a cheap clone, the body is not copied per attempt.
            .body(request.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                let label = if err.is_timeout() {
                    "timeout"
                } else if err.is_connect() {
                    "connect_error"
                } else {
                    "error"
                };
                request_finished(request, label.to_string(), started.elapsed());
                return Err(SinkError::transient(format!(
                    "POST {} failed: {}",
                    self.shown_url,
                    error_chain(err)
                )));
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        // Read the answer to the end even on success, so the connection goes
        // back to the pool; a body that breaks off after a 2xx still means
        // the batch was accepted.
        let body = response.text().await.unwrap_or_default();
        request_finished(request, status.as_u16().to_string(), started.elapsed());
        classify(status, retry_after, &body)
    }
}

#[async_trait::async_trait]
impl RecordSink for HttpSink {
    fn name(&self) -> &'static str {
        "http"
    }

    /// Sends the requests in order and stops at the first failure: the
    /// records after it were not sent, and the retry resends the whole
    /// batch (the earlier requests are then duplicates by key). Sequential on
    /// purpose: records of one event must reach the API in LSN order.
    async fn write(&self, records: &[Record]) -> Result<SinkReport, SinkError> {
        let cut = build_requests(
            records,
            self.config.max_batch_events,
            self.config.max_batch_bytes,
        );
        for (index, reason) in &cut.rejected {
            tracing::warn!(sink = "http", index, reason = %reason, "record refused before sending");
        }
        for request in &cut.requests {
            self.send(request).await?;
        }
        Ok(SinkReport {
            rejected: cut.rejected,
        })
    }
}

/// The sink result of an HTTP answer.
pub(crate) fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Result<(), SinkError> {
    if status.is_success() {
        return Ok(());
    }
    let detail = format!("API answered HTTP {status}: {}", snippet(body));
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    if transient {
        Err(SinkError::Transient {
            message: detail,
            retry_after,
        })
    } else {
        Err(SinkError::Permanent(detail))
    }
}

/// `Retry-After` in seconds (fractions tolerated), capped at an hour. The
/// HTTP-date form is ignored: the retry policy's backoff applies then.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = text.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// The start of a body, on one line.
fn snippet(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "(empty body)".into();
    }
    let mut out: String = body
        .chars()
        .take(BODY_SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.chars().nth(BODY_SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// An error and its causes: reqwest's own message ("error sending request")
/// says little without them. reqwest's copy of the URL is left out: it may
/// hold credentials.
fn error_chain(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One API request finished (any outcome): its metrics, and a debug line.
fn request_finished(request: &ApiRequest, status: String, took: Duration) {
    tracing::debug!(
        sink = "http",
        status = %status,
        events = request.records.len(),
        bytes = request.body.len(),
        took_ms = took.as_millis() as u64,
        "API request finished"
    );
    metrics::counter!("engagement_api_requests_total", "status" => status).increment(1);
    metrics::histogram!("engagement_api_request_duration_seconds").record(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn statuses_map_to_error_kinds() {
        let kind = |code: u16| match classify(
            StatusCode::from_u16(code).unwrap(),
            None,
            "{\"detail\":\"x\"}",
        ) {
            Ok(()) => "ok",
            Err(e) if e.is_retriable() => "transient",
            Err(_) => "permanent",
        };
        assert_eq!(kind(200), "ok");
        assert_eq!(kind(202), "ok");
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(kind(code), "transient", "{code}");
        }
        for code in [400, 401, 403, 404, 413, 422, 304] {
            assert_eq!(kind(code), "permanent", "{code}");
        }
    }

    #[test]
    fn permanent_errors_name_status_and_body() {
        let err = classify(StatusCode::BAD_REQUEST, None, "bad\nthing").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("400") && text.contains("bad thing"), "{text}");
        let long = "x".repeat(1000);
        let text = classify(StatusCode::NOT_FOUND, None, &long)
            .unwrap_err()
            .to_string();
        assert!(text.len() < 400 && text.ends_with('…'), "{text}");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
    }
}
