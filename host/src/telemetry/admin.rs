//! The admin HTTP endpoint: Prometheus `/metrics`, `/healthz`, `/readyz`,
//! `GET /plugins` (what is loaded), and token-protected
//! `POST /plugins/reload` and `POST /plugins/{kind}/rollback`. Shadow
//! deploys of the enricher: `GET /plugins/enricher/shadow` (counts and the
//! last differences), and token-protected `POST /plugins/enricher/shadow`
//! (load `<enricher>.shadow.wasm` from the plugin directory),
//! `POST /plugins/enricher/promote` and `DELETE /plugins/enricher/shadow`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::wasm::{PluginKind, PluginSet};

/// Shared with the handlers.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: PrometheusHandle,
    pub plugins: Arc<PluginSet>,
    pub token: Option<String>,
    /// Set once the service pulls.
    pub ready: Arc<AtomicBool>,
}

/// Installs the global Prometheus recorder (once per process).
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    Ok(PrometheusBuilder::new().install_recorder()?)
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move { s.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/plugins", get(plugins))
        .route("/plugins/reload", post(reload))
        .route("/plugins/{kind}/rollback", post(rollback))
        .route(
            "/plugins/{kind}/shadow",
            get(shadow_status).post(shadow_load).delete(shadow_discard),
        )
        .route("/plugins/{kind}/promote", post(shadow_promote))
        .with_state(state)
}

/// Serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin endpoint listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
    }
}

async fn plugins(State(s): State<AdminState>) -> Response {
    let list: Vec<_> = [&s.plugins.decoder, &s.plugins.enricher]
        .into_iter()
        .map(|slot| {
            let p = slot.current();
            json!({
                "kind": p.kind,
                "name": p.id.name,
                "version": p.id.version,
                "sha256": p.id.sha256,
                "path": p.path,
                "loaded_at": humantime::format_rfc3339_millis(p.loaded_at).to_string(),
                "swaps": slot.swaps(),
                "last_rejection": slot.last_rejection(),
                "shadow": slot.shadow().map(|s| s.to_json()),
            })
        })
        .collect();
    axum::Json(json!({ "plugins": list })).into_response()
}

/// The refusal, if the request does not carry the admin token.
fn denied(s: &AdminState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &s.token else {
        return Some((StatusCode::FORBIDDEN, "admin_token is not configured").into_response());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (given != Some(token.as_str()))
        .then(|| (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response())
}

async fn reload(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if let Some(denied) = denied(&s, &headers) {
        return denied;
    }
    let plugins = s.plugins.clone();
    // Compiling may take seconds: off the async workers.
    let outcomes = tokio::task::spawn_blocking(move || {
        [&plugins.decoder, &plugins.enricher]
            .map(|slot| (slot.kind(), slot.reload(&plugins.loader)))
    })
    .await;
    match outcomes {
        Ok(outcomes) => axum::Json(json!(
            outcomes
                .iter()
                .map(|(k, o)| json!({"kind": k, "result": o}))
                .collect::<Vec<_>>()
        ))
        .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn rollback(
    State(s): State<AdminState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = denied(&s, &headers) {
        return denied;
    }
    let kind = match kind.as_str() {
        "decoder" => PluginKind::Decoder,
        "enricher" => PluginKind::Enricher,
        _ => return (StatusCode::NOT_FOUND, "kind is decoder or enricher").into_response(),
    };
    match s.plugins.slot(kind).rollback() {
        Ok(to) => axum::Json(json!({"rolled_back_to": to})).into_response(),
        Err(err) => (StatusCode::CONFLICT, err.to_string()).into_response(),
    }
}

/// Only the enricher has shadow deploys.
fn enricher_only(kind: &str) -> Option<Response> {
    (kind != "enricher").then(|| {
        (
            StatusCode::NOT_FOUND,
            "shadow deploys are for the enricher only",
        )
            .into_response()
    })
}

async fn shadow_status(State(s): State<AdminState>, Path(kind): Path<String>) -> Response {
    if let Some(refused) = enricher_only(&kind) {
        return refused;
    }
    let slot = &s.plugins.enricher;
    axum::Json(json!({
        "serving": slot.current().id.to_string(),
        "shadow": slot.shadow().map(|s| s.to_json()),
        "policy": slot.shadow_policy(),
        "shadow_file": slot.shadow_path(),
    }))
    .into_response()
}

async fn shadow_load(
    State(s): State<AdminState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = denied(&s, &headers).or_else(|| enricher_only(&kind)) {
        return refused;
    }
    let plugins = s.plugins.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let slot = &plugins.enricher;
        slot.load_shadow(&plugins.loader, &slot.shadow_path())
    })
    .await;
    match outcome {
        Ok(outcome) => {
            let status = match outcome {
                crate::wasm::ReloadOutcome::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::OK,
            };
            (status, axum::Json(json!(outcome))).into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn shadow_promote(
    State(s): State<AdminState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = denied(&s, &headers).or_else(|| enricher_only(&kind)) {
        return refused;
    }
    match s.plugins.enricher.promote_shadow("operator") {
        Ok(to) => axum::Json(json!({"promoted": to})).into_response(),
        Err(err) => (StatusCode::CONFLICT, err.to_string()).into_response(),
    }
}

async fn shadow_discard(
    State(s): State<AdminState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = denied(&s, &headers).or_else(|| enricher_only(&kind)) {
        return refused;
    }
    match s.plugins.enricher.discard_shadow() {
        Ok(was) => axum::Json(json!({"discarded": was})).into_response(),
        Err(err) => (StatusCode::CONFLICT, err.to_string()).into_response(),
    }
}

/// `method {admin}{path}` with the bearer token, as `engagement-host plugin
/// rollback|promote|discard` send it. Status and body (JSON, or the text).
pub async fn request(
    admin: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let base = if admin.starts_with("http") {
        admin.trim_end_matches('/').to_string()
    } else {
        format!("http://{admin}")
    };
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .timeout(std::time::Duration::from_secs(10));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}
