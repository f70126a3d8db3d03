//! Sends one `tabledata.insertAll` request and reads BigQuery's answer.
//!
//! The request is gzipped JSON sent with reqwest directly, not through
//! gcp-bigquery-client's `insert_all`: that one drops the HTTP status and
//! headers of an error (no `Retry-After`, and a non-JSON error body, such as
//! a proxy's 502 page, becomes a decode error), which is exactly what
//! deciding between retry and dead letter needs.
//!
//! | answer | result |
//! | --- | --- |
//! | 2xx, no `insertErrors` or an empty list (the emulator's success) | written |
//! | 2xx, row errors `invalid` & co. | written except those rows: rejected (index, reason) |
//! | 2xx, row errors `stopped`, `timeout`, `backendError`, `internalError` | transient: rows not written through no fault of theirs |
//! | 408, 429, 5xx; 403 `rateLimitExceeded` / `quotaExceeded` | transient, after `Retry-After` when given |
//! | timeout, connection error, unreadable 2xx | transient |
//! | other 4xx (`notFound`, `invalid`, `accessDenied`, ...) | permanent |
//!
//! It does not retry: [`crate::sinks::retry`] does, and a retry re-sends
//! with the same `insertId`s (see [`super::rows`]).

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use super::auth::TokenSource;
use super::error::BigQueryError;
use super::rows::InsertRequest;

/// The step name in errors and logs.
const STEP: &str = "insertAll";
/// A `Retry-After` longer than this is cut to it: one odd answer must not
/// park the pipeline for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Characters of a non-JSON error body kept in the message.
const BODY_SNIPPET_CHARS: usize = 300;
/// Row error reasons that say the row itself was fine: send it again.
const ROW_RETRY_REASONS: &[&str] = &["stopped", "timeout", "backendError", "internalError"];

/// Posts `insertAll` requests to one table.
#[derive(Clone, Debug)]
pub(crate) struct InsertAllService {
    http: reqwest::Client,
    url: String,
    tokens: TokenSource,
}

impl InsertAllService {
    pub(crate) fn new(
        http: reqwest::Client,
        base_url: &str,
        project: &str,
        dataset: &str,
        table: &str,
        tokens: TokenSource,
    ) -> Self {
        // The names were validated (letters, digits, `_`, and for projects
        // `-.:`), so they need no escaping in the path.
        let url =
            format!("{base_url}/projects/{project}/datasets/{dataset}/tables/{table}/insertAll");
        Self { http, url, tokens }
    }

    /// Sends one request. `Ok`: written, except the rows returned as
    /// (index in the batch, reason).
    pub(crate) async fn send(
        &self,
        request: &InsertRequest,
    ) -> Result<Vec<(usize, String)>, BigQueryError> {
        let body = gzip(&request.body).map_err(|err| BigQueryError::Client {
            step: STEP,
            message: format!("gzip: {err}"),
        })?;
        let token = self.tokens.token().await?;
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await
            .map_err(|source| BigQueryError::RequestFailed { step: STEP, source })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|source| BigQueryError::RequestFailed { step: STEP, source })?;
        read_answer(status, retry_after, &text, &request.indexes)
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    // Fast level: JSON rows compress well at any level, and this runs on
    // the async worker.
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

/// `Retry-After` in seconds (fractions tolerated), capped at an hour. The
/// HTTP-date form is not read (BigQuery sends seconds, when it sends any).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = text.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InsertAllResponse {
    /// Real BigQuery omits it on success; the emulator sends `[]`.
    #[serde(default)]
    insert_errors: Option<Vec<RowErrors>>,
}

#[derive(Debug, Deserialize)]
struct RowErrors {
    index: Option<i64>,
    #[serde(default)]
    errors: Vec<ErrorProto>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorProto {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct ErrorResponse {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorProto>,
}

/// Classifies an answer (see the module table). `indexes` maps the
/// request's rows to the batch.
pub(crate) fn read_answer(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    indexes: &[usize],
) -> Result<Vec<(usize, String)>, BigQueryError> {
    if !(200..300).contains(&status) {
        let (reason, message) = match serde_json::from_str::<ErrorResponse>(body) {
            Ok(answer) => (
                answer
                    .error
                    .errors
                    .first()
                    .map(|e| e.reason.clone())
                    .unwrap_or_default(),
                answer.error.message,
            ),
            Err(_) => (
                String::new(),
                body.chars().take(BODY_SNIPPET_CHARS).collect(),
            ),
        };
        return Err(BigQueryError::Refused {
            step: STEP,
            status,
            reason,
            message,
            retry_after,
        });
    }
    let answer: InsertAllResponse =
        serde_json::from_str(body).map_err(|err| BigQueryError::BadResponse {
            step: STEP,
            message: format!("{err} in {:?}", snippet(body)),
        })?;
    let mut rejected = Vec::new();
    let mut to_resend = 0usize;
    let mut resend_reason = String::new();
    for row in answer.insert_errors.unwrap_or_default() {
        let Some(batch_index) = row
            .index
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| indexes.get(i).copied())
        else {
            // A row error we cannot pin on a row: whether the others were
            // written is unknown too. Resending is safe (same insertIds).
            return Err(BigQueryError::BadResponse {
                step: STEP,
                message: format!("row error with index {:?} out of range", row.index),
            });
        };
        if !row.errors.is_empty()
            && row
                .errors
                .iter()
                .all(|e| ROW_RETRY_REASONS.contains(&e.reason.as_str()))
        {
            to_resend += 1;
            if resend_reason.is_empty() {
                resend_reason = row.errors[0].reason.clone();
            }
            continue;
        }
        rejected.push((batch_index, describe(&row.errors)));
    }
    if to_resend > 0 {
        return Err(BigQueryError::RowsNotWritten {
            step: STEP,
            count: to_resend,
            reason: resend_reason,
        });
    }
    Ok(rejected)
}

/// `reason: message (location)` of each error, `; `-separated.
fn describe(errors: &[ErrorProto]) -> String {
    if errors.is_empty() {
        return "rejected by BigQuery (no reason given)".into();
    }
    errors
        .iter()
        .map(|e| {
            let mut text = format!("{}: {}", e.reason, e.message);
            if !e.location.is_empty() {
                text.push_str(&format!(" (field {})", e.location));
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn snippet(body: &str) -> String {
    body.chars().take(BODY_SNIPPET_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_insert_errors_is_success() {
        for body in [
            r#"{"kind":"bigquery#tableDataInsertAllResponse"}"#,
            r#"{"kind":"bigquery#tableDataInsertAllResponse","insertErrors":[]}"#,
        ] {
            assert_eq!(read_answer(200, None, body, &[0, 1]).expect("ok"), vec![]);
        }
    }

    #[test]
    fn row_errors_map_to_batch_indexes() {
        let body = r#"{"insertErrors":[{"index":1,"errors":[{"reason":"invalid","location":"duration_ms","message":"Cannot convert value to integer"}]}]}"#;
        let rejected = read_answer(200, None, body, &[10, 11, 12]).expect("ok");
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, 11);
        assert!(
            rejected[0].1.starts_with("invalid: Cannot convert"),
            "{}",
            rejected[0].1
        );
        assert!(rejected[0].1.contains("duration_ms"));
    }

    #[test]
    fn stopped_rows_are_sent_again() {
        let body = r#"{"insertErrors":[
            {"index":0,"errors":[{"reason":"invalid","message":"bad"}]},
            {"index":1,"errors":[{"reason":"stopped","message":""}]}]}"#;
        let err = read_answer(200, None, body, &[0, 1]).expect_err("transient");
        assert!(err.is_retriable(), "{err}");
    }

    #[test]
    fn out_of_range_row_index_is_transient() {
        let body = r#"{"insertErrors":[{"index":5,"errors":[{"reason":"invalid"}]}]}"#;
        assert!(
            read_answer(200, None, body, &[0])
                .expect_err("bad")
                .is_retriable()
        );
    }

    #[test]
    fn error_statuses_are_classified() {
        let not_found = r#"{"error":{"code":404,"message":"Not found: Table p:d.t","errors":[{"domain":"global","reason":"notFound","message":"Not found: Table p:d.t"}],"status":"NOT_FOUND"}}"#;
        let err = read_answer(404, None, not_found, &[0]).expect_err("refused");
        assert!(!err.is_retriable());
        assert!(err.to_string().contains("notFound"), "{err}");

        let quota = r#"{"error":{"code":403,"message":"Exceeded rate limits","errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert!(
            read_answer(403, None, quota, &[0])
                .expect_err("refused")
                .is_retriable()
        );

        let proxy = "<html>502 Bad Gateway</html>";
        let err = read_answer(502, Some(Duration::from_secs(2)), proxy, &[0]).expect_err("refused");
        assert!(err.is_retriable());
        match err {
            BigQueryError::Refused { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(2)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreadable_success_is_transient() {
        assert!(
            read_answer(200, None, "not json", &[0])
                .expect_err("bad")
                .is_retriable()
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "999999".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = br#"{"rows":[]}"#;
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gzip(body).expect("gzip")[..])
            .read_to_string(&mut out)
            .expect("gunzip");
        assert_eq!(out.as_bytes(), body);
    }
}
