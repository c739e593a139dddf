//! Health, readiness and metrics endpoints shared by every service.
//!
//! - `GET /healthz`: liveness. 200 while the process serves HTTP at all.
//! - `GET /readyz`: readiness. 200 only when every named check passes and the service is not
//!   draining; 503 otherwise, with the failing checks in the body.
//! - `GET /metrics`: Prometheus text exposition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

/// Named readiness checks, updated by the components that own them.
#[derive(Debug, Default)]
pub struct Readiness {
    checks: Mutex<BTreeMap<&'static str, (bool, String)>>,
    /// Set once shutdown begins; readiness stays 503 from then on so load balancers stop routing.
    draining: AtomicBool,
}

impl Readiness {
    /// A new set of checks, each starting as failed with "starting" until first reported.
    pub fn new(names: &[&'static str]) -> Arc<Readiness> {
        let r = Readiness::default();
        {
            let mut checks = r.checks.lock().expect("readiness lock");
            for name in names {
                checks.insert(*name, (false, "starting".to_owned()));
            }
        }
        Arc::new(r)
    }

    /// Reports the state of one check.
    pub fn set(&self, name: &'static str, ok: bool, detail: impl Into<String>) {
        self.checks
            .lock()
            .expect("readiness lock")
            .insert(name, (ok, detail.into()));
    }

    /// Marks the service as draining: not ready, for good.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// True when not draining and every check passes.
    pub fn is_ready(&self) -> bool {
        !self.is_draining()
            && self
                .checks
                .lock()
                .expect("readiness lock")
                .values()
                .all(|(ok, _)| *ok)
    }

    /// The state of one check, if it exists.
    pub fn check(&self, name: &str) -> Option<bool> {
        self.checks
            .lock()
            .expect("readiness lock")
            .get(name)
            .map(|(ok, _)| *ok)
    }

    /// JSON body for `/readyz`.
    pub fn report(&self) -> serde_json::Value {
        let checks = self.checks.lock().expect("readiness lock");
        let body: serde_json::Map<String, serde_json::Value> = checks
            .iter()
            .map(|(name, (ok, detail))| ((*name).to_owned(), json!({"ok": ok, "detail": detail})))
            .collect();
        json!({
            "status": if self.is_ready_locked(&checks) { "ready" } else { "not_ready" },
            "draining": self.is_draining(),
            "checks": body,
        })
    }

    fn is_ready_locked(&self, checks: &BTreeMap<&'static str, (bool, String)>) -> bool {
        !self.is_draining() && checks.values().all(|(ok, _)| *ok)
    }
}

/// Shared state of the ops endpoints.
#[derive(Clone)]
pub struct OpsState {
    /// The service's readiness checks.
    pub readiness: Arc<Readiness>,
    /// Renders the process's metrics.
    pub metrics: PrometheusHandle,
}

/// `GET /healthz`.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`.
pub async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = (status, Json(readiness.report())).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

/// `GET /metrics`.
pub async fn metrics(State(handle): State<PrometheusHandle>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// The router for a service that has no public API (writer, projector).
pub fn ops_router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(state.readiness.clone()))
        .route("/metrics", get(metrics).with_state(state.metrics.clone()))
}
