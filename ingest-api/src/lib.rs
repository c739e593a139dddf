//! # tunix-ingest-api
//!
//! Owns the public HTTP address of tunix-rt:
//!
//! - the front door for trace producers (`POST /api/traces`, `POST /api/traces/batch`): bodies
//!   are read under a byte cap (also after decompression), validated with `tunix-schemas`, given
//!   ids, appended to Kafka as Avro events, and acknowledged only after the broker's delivery
//!   report (`acks=all`, idempotent producer);
//! - the read endpoints over Postgres (`GET /api/traces`, `GET /api/traces/{id}`) and deletes
//!   (`DELETE /api/traces/{id}`, a tombstone event);
//! - health, readiness and Prometheus metrics.
//!
//! [`app`] builds the router from an [`AppState`]; [`run`] serves it with graceful shutdown.

pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod producer;
pub mod read;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tunix_pipeline::ops::{self, Readiness};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::IngestConfig;

use crate::error::ApiError;
use crate::producer::{EventProducer, ProducerSettings};

/// What every handler shares.
pub struct AppState {
    /// Configuration.
    pub cfg: IngestConfig,
    /// Appends events to the topic.
    pub producer: EventProducer,
    /// Hot-path metric handles.
    pub metrics: metrics::IngestMetrics,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// `/readyz` checks: `broker`; draining once shutdown begins.
    pub readiness: Arc<Readiness>,
    /// Read endpoints' pool (lazy: ingestion works while Postgres is down).
    pub pool: PgPool,
    /// The OpenAPI document, set when the router is built.
    pub openapi: std::sync::OnceLock<utoipa::openapi::OpenApi>,
}

impl AppState {
    /// Builds the state: producer and pool are created, nothing is connected yet.
    pub fn new(cfg: IngestConfig) -> anyhow::Result<Arc<AppState>> {
        // The recorder first: metric handles created before it exists record nothing.
        let prometheus = tunix_pipeline::telemetry::init_metrics();
        let metrics = metrics::IngestMetrics::new();
        let producer = EventProducer::new(
            &cfg.kafka,
            ProducerSettings {
                timeout: cfg.produce_timeout,
                linger_ms: cfg.linger_ms,
                compression: cfg.compression.clone(),
                queue_max_messages: cfg.producer_queue_max_messages,
            },
            metrics.clone(),
        )?;
        let mut db = cfg.db.clone();
        db.statement_timeout = Some(read::QUERY_TIMEOUT);
        Ok(Arc::new(AppState {
            pool: db.pool()?,
            producer,
            metrics,
            prometheus,
            readiness: Readiness::new(&["broker"]),
            openapi: std::sync::OnceLock::new(),
            cfg,
        }))
    }
}

/// `GET /api/health` (the seed's path): component status, always 200 while serving.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "ops",
    summary = "Component status",
    responses((status = 200, body = openapi::Health), (status = 401, body = openapi::ErrorBody))
)]
async fn api_health(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.cfg.api_keys.check(&headers, None)?;
    let broker = state.readiness.check("broker").unwrap_or(false);
    let database = tokio::time::timeout(
        Duration::from_secs(1),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    Ok(Json(json!({
        "status": if broker && database { "ok" } else { "degraded" },
        "broker": if broker { "ok" } else { "down" },
        "database": if database { "ok" } else { "down" },
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// `GET /healthz`: liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", summary = "Liveness", responses((status = 200, description = "{\"status\":\"ok\"}")))]
async fn healthz() -> impl IntoResponse {
    ops::healthz().await
}

/// `GET /readyz`: readiness (the broker answers and shutdown has not begun).
#[utoipa::path(get, path = "/readyz", tag = "ops", summary = "Readiness", responses((status = 200, body = openapi::Readiness), (status = 503, body = openapi::Readiness, headers(("Retry-After" = u64)))))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    ops::readyz(State(state.readiness.clone())).await
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", summary = "Prometheus metrics", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics_endpoint(State(state): State<Arc<AppState>>) -> Response {
    ops::metrics(State(state.prometheus.clone())).await
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", summary = "OpenAPI document", responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    Json(state.openapi.get().cloned().unwrap_or_default()).into_response()
}

/// Every route with its OpenAPI operation; the router is built from these, so the document
/// lists exactly what is served.
fn documented_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(ingest::submit, read::list))
        .routes(routes!(ingest::submit_batch))
        .routes(routes!(read::get, read::delete))
        .routes(routes!(api_health))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_endpoint))
        .routes(routes!(openapi_json))
        .routes(routes!(ui::index))
        .routes(routes!(ui::app_js))
        .routes(routes!(ui::app_css))
        .routes(routes!(ui::example))
}

/// The OpenAPI document of [`app`].
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

/// The router: every route the public address serves.
pub fn app(state: Arc<AppState>) -> Router {
    let (router, doc) = documented_routes().split_for_parts();
    let _ = state.openapi.set(doc);
    router
        .with_state(state)
        // Unknown routes and wrong methods answer like every other error: {"detail": ...}.
        .layer(axum::middleware::from_fn(error::json_error_bodies))
        .layer(axum::middleware::from_fn(metrics::track))
}

/// Probes the broker every second and reports it as the `broker` readiness check.
fn spawn_broker_probe(state: Arc<AppState>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = shutdown.cancelled() => return,
            }
            let probe = state.clone();
            let result = tokio::task::spawn_blocking(move || {
                probe.producer.broker_reachable(Duration::from_secs(2))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let was = state.readiness.check("broker");
            match result {
                Ok(()) => {
                    state.readiness.set("broker", true, "ok");
                    state.metrics.broker_up.set(1.0);
                    if was == Some(false) {
                        tracing::info!("broker reachable");
                    }
                }
                Err(e) => {
                    if was != Some(false) {
                        tracing::warn!(error = %e, "broker unreachable");
                    }
                    state.readiness.set("broker", false, e);
                    state.metrics.broker_up.set(0.0);
                }
            }
            state
                .metrics
                .queue_depth
                .set(state.producer.queue_depth() as f64);
        }
    });
}

/// The address to listen on: without API keys, only loopback unless explicitly allowed.
pub fn effective_addr(cfg: &IngestConfig) -> SocketAddr {
    let addr = cfg.api_addr;
    if cfg.api_keys.enabled() {
        tracing::info!("API key authentication is on");
        return addr;
    }
    if addr.ip().is_loopback() {
        tracing::warn!(%addr, "no API_KEYS configured: authentication is off, listening on loopback only");
        return addr;
    }
    if cfg.allow_unauthenticated_public {
        tracing::warn!(%addr, "no API_KEYS configured and ALLOW_UNAUTHENTICATED_PUBLIC=true: the API is open to anyone who can reach this address");
        return addr;
    }
    let loopback = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    tracing::warn!(
        requested = %addr,
        listening = %loopback,
        "no API_KEYS configured: listening on loopback only; configure API_KEYS, or set ALLOW_UNAUTHENTICATED_PUBLIC=true to listen on {addr} without authentication"
    );
    loopback
}

/// Serves until `shutdown` is cancelled, then: readiness 503, (after `SHUTDOWN_DELAY_MS`) no new
/// connections, in-flight requests finish (bounded), and the producer is flushed.
pub async fn run(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = &state.cfg;
    tracing::info!(
        addr = %listener.local_addr()?,
        brokers = %cfg.kafka.brokers,
        topic = %cfg.kafka.topic,
        database = %cfg.db.redacted_url(),
        trace_max_bytes = cfg.trace_max_bytes,
        "ingest-api serving"
    );
    spawn_broker_probe(state.clone(), shutdown.clone());

    let stop_accepting = CancellationToken::new();
    {
        let (shutdown, stop, readiness, delay) = (
            shutdown.clone(),
            stop_accepting.clone(),
            state.readiness.clone(),
            cfg.shutdown_delay,
        );
        tokio::spawn(async move {
            shutdown.cancelled().await;
            readiness.start_draining();
            tokio::time::sleep(delay).await;
            stop.cancel();
        });
    }
    let drained = tunix_pipeline::http::serve(
        listener,
        app(state.clone()),
        stop_accepting,
        cfg.drain_timeout,
    )
    .await;
    let producer_state = state.clone();
    let flushed =
        tokio::task::spawn_blocking(move || producer_state.producer.flush(Duration::from_secs(5)))
            .await?;
    tracing::info!(drained, flushed = flushed.is_ok(), "ingest-api stopped");
    Ok(())
}
