//! Health, readiness, metrics and the OpenAPI document: what probes, scrapers and tools read.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tunix_pipeline::ops;

use super::openapi;
use crate::AppState;

/// `GET /api/health` (the original service's path): component status, always 200 while serving.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "ops",
    summary = "Component status",
    responses((status = 200, body = openapi::Health), (status = 401, body = openapi::ErrorBody))
)]
pub async fn api_health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let broker = state.readiness.check("broker").unwrap_or(false);
    let database = tokio::time::timeout(
        Duration::from_secs(1),
        sqlx::query!("SELECT 1 AS one").fetch_one(&state.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    Json(json!({
        "status": if broker && database { "ok" } else { "degraded" },
        "broker": if broker { "ok" } else { "down" },
        "database": if database { "ok" } else { "down" },
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /healthz`: liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", summary = "Liveness", responses((status = 200, description = "{\"status\":\"ok\"}")))]
pub async fn healthz() -> impl IntoResponse {
    ops::healthz().await
}

/// `GET /readyz`: readiness (the broker answers and shutdown has not begun).
#[utoipa::path(get, path = "/readyz", tag = "ops", summary = "Readiness", responses((status = 200, body = openapi::Readiness), (status = 503, body = openapi::Readiness, headers(("Retry-After" = u64)))))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    ops::readyz(State(state.readiness.clone())).await
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", summary = "Prometheus metrics", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics_endpoint(State(state): State<Arc<AppState>>) -> Response {
    ops::metrics(State(state.prometheus.clone())).await
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", summary = "OpenAPI document", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    Json(state.openapi.get().cloned().unwrap_or_default()).into_response()
}
