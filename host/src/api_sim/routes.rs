//! The HTTP endpoints of the simulator: the original API's three (`GET /`,
//! `POST /events`, `GET /stats`) with the original bodies, plus the test
//! controls (`POST /stats/reset`, `GET`/`POST /faults`).
//!
//! Handlers parse, ask [`super::faults`] what to do, and report to
//! [`super::stats`]; they hold a lock only for that bookkeeping, never across
//! an `.await`.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::ApiSimState;
use super::faults::{FaultConfig, FaultState, InjectedError};

/// `GET /` of the original FastAPI service, field order included.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    service: &'static str,
}

/// `POST /events` success body of the original service.
#[derive(Serialize)]
struct Processed {
    status: &'static str,
    processed_count: usize,
    message: String,
}

/// Every error body: a stable machine-readable `error` and a human message.
#[derive(Serialize)]
struct ErrorBody {
    status: &'static str,
    error: &'static str,
    message: String,
}

fn error_response(status: StatusCode, error: &'static str, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            status: "error",
            error,
            message,
        }),
    )
        .into_response()
}

pub(super) async fn health() -> Response {
    Json(Health {
        status: "healthy",
        service: "third-party-api",
    })
    .into_response()
}

pub(super) async fn post_events(
    State(state): State<ApiSimState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    state.stats().request_received(body.len());
    let decision = state.faults().decide(started);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if let Some(error) = decision.error {
        state.stats().error_injected(&error, started.elapsed());
        tracing::debug!(
            status = error.status,
            cause = error.cause.as_str(),
            "injected error"
        );
        return injected_response(&error);
    }
    let events = match parse_events(&body) {
        Ok(events) => events,
        Err(message) => {
            state.stats().bad_request(started.elapsed());
            return error_response(StatusCode::BAD_REQUEST, "bad_request", message);
        }
    };
    // A header that is not visible ASCII is treated as absent rather than
    // refused: the original API ignored the header altogether.
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    state
        .stats()
        .batch_accepted(key, &events, started.elapsed());
    let n = events.len();
    Json(Processed {
        status: "success",
        processed_count: n,
        message: format!("Successfully processed {n} events"),
    })
    .into_response()
}

/// `{"events": [{...}, ...]}`, or why not.
fn parse_events(body: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| format!("body is not valid JSON: {err}"))?;
    let Value::Object(mut object) = value else {
        return Err("body must be a JSON object {\"events\": [...]}".to_string());
    };
    let Some(events) = object.remove("events") else {
        return Err("body has no \"events\" field".to_string());
    };
    let Value::Array(events) = events else {
        return Err("\"events\" must be an array".to_string());
    };
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| match event {
            Value::Object(map) => Ok(map),
            _ => Err(format!("events[{i}] must be a JSON object")),
        })
        .collect()
}

fn injected_response(error: &InjectedError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limited"
    } else {
        "injected_fault"
    };
    let mut response = error_response(
        status,
        code,
        format!("injected by the simulator ({})", error.cause.as_str()),
    );
    if let Some(secs) = error.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

pub(super) async fn get_stats(State(state): State<ApiSimState>) -> Response {
    let snapshot = state.stats().snapshot();
    Json(snapshot).into_response()
}

pub(super) async fn reset_stats(State(state): State<ApiSimState>) -> Response {
    state.reset_stats();
    tracing::info!("stats reset");
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// The active faults and what is left of the outages.
#[derive(Serialize)]
struct FaultsView {
    status: &'static str,
    faults: FaultConfig,
    fail_remaining_requests: u64,
    fail_remaining_secs: f64,
}

fn faults_view(faults: &FaultState) -> FaultsView {
    FaultsView {
        status: "ok",
        faults: faults.config().clone(),
        fail_remaining_requests: faults.remaining_requests(),
        fail_remaining_secs: faults.remaining(Instant::now()).as_secs_f64(),
    }
}

pub(super) async fn get_faults(State(state): State<ApiSimState>) -> Response {
    let view = faults_view(&state.faults());
    Json(view).into_response()
}

/// Replaces the faults (fields left out mean "no fault"); outage windows
/// start now.
pub(super) async fn set_faults(State(state): State<ApiSimState>, body: Bytes) -> Response {
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(config) => config,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("invalid fault settings: {err}"),
            );
        }
    };
    if let Err(err) = config.validate() {
        return error_response(StatusCode::BAD_REQUEST, "bad_request", err.to_string());
    }
    tracing::info!(faults = ?config, "faults set");
    let view = {
        let mut faults = state.faults();
        *faults = FaultState::new(config);
        faults_view(&faults)
    };
    Json(view).into_response()
}
