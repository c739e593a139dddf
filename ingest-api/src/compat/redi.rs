//! `GET /api/redi/health`: the original service's upstream health check, with its configuration.
//!
//! - `REDIAI_MODE=mock` (the default) answers `{"status":"healthy"}` without calling anything.
//! - `REDIAI_MODE=real` calls `REDIAI_BASE_URL` + `REDIAI_HEALTH_PATH` (a path starting with `/`)
//!   with a 5 s timeout: a 2xx is `{"status":"healthy"}`, anything else (another status, a
//!   timeout, a refused connection) is `{"status":"down","error":"..."}`.
//! - Results are cached for `REDIAI_HEALTH_CACHE_TTL_SECONDS` (default 30), so a dashboard polling
//!   the endpoint does not hammer the upstream.
//!
//! The endpoint always answers 200 (the status is in the body), as the original service did.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use tunix_pipeline::config::Env;

use crate::AppState;

/// How long the upstream call may take.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the upstream is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RediMode {
    /// Answer healthy without calling anything.
    Mock,
    /// Call the upstream.
    Real,
}

/// The `REDIAI_*` settings.
#[derive(Debug, Clone)]
pub struct RediSettings {
    /// `REDIAI_MODE`.
    pub mode: RediMode,
    /// `REDIAI_BASE_URL`, required in `real` mode.
    pub base_url: String,
    /// `REDIAI_HEALTH_PATH` (default `/health`).
    pub health_path: String,
    /// `REDIAI_HEALTH_CACHE_TTL_SECONDS`.
    pub cache_ttl: Duration,
}

impl RediSettings {
    /// Reads the `REDIAI_*` variables, recording problems in `env`.
    pub fn from_env(env: &mut Env) -> RediSettings {
        let mode = match env.string("REDIAI_MODE", "mock").as_str() {
            "mock" => RediMode::Mock,
            "real" => RediMode::Real,
            other => {
                env.error(format!("REDIAI_MODE={other:?}: expected mock or real"));
                RediMode::Mock
            }
        };
        let base_url = env.string("REDIAI_BASE_URL", "");
        if mode == RediMode::Real
            && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            env.error(format!(
                "REDIAI_BASE_URL={base_url:?}: REDIAI_MODE=real needs an http:// or https:// URL"
            ));
        }
        let health_path = env.string("REDIAI_HEALTH_PATH", "/health");
        if !health_path.starts_with('/') {
            env.error(format!(
                "REDIAI_HEALTH_PATH={health_path:?}: must start with /"
            ));
        }
        RediSettings {
            mode,
            base_url: base_url.trim_end_matches('/').to_owned(),
            health_path,
            cache_ttl: env.seconds("REDIAI_HEALTH_CACHE_TTL_SECONDS", 30.0),
        }
    }
}

/// The checker with its cache.
pub struct RediHealth {
    settings: RediSettings,
    client: reqwest::Client,
    cache: Mutex<Option<(Instant, Value)>>,
}

impl RediHealth {
    /// A checker for `settings`.
    pub fn new(settings: RediSettings) -> RediHealth {
        RediHealth {
            client: reqwest::Client::builder()
                .timeout(UPSTREAM_TIMEOUT)
                .build()
                .expect("an HTTP client with a timeout"),
            settings,
            cache: Mutex::new(None),
        }
    }

    async fn call(&self) -> Value {
        let url = format!("{}{}", self.settings.base_url, self.settings.health_path);
        match self.client.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => json!({"status": "healthy"}),
            Ok(resp) => {
                json!({"status": "down", "error": format!("HTTP {}", resp.status().as_u16())})
            }
            Err(e) if e.is_timeout() => json!({
                "status": "down",
                "error": format!("no answer within {} s", UPSTREAM_TIMEOUT.as_secs()),
            }),
            Err(e) => json!({"status": "down", "error": e.to_string()}),
        }
    }

    /// The health, from the cache while it is fresh.
    pub async fn check(&self) -> Value {
        if self.settings.mode == RediMode::Mock {
            return json!({"status": "healthy"});
        }
        if let Some((at, value)) = self.cache.lock().expect("cache lock").as_ref() {
            if at.elapsed() < self.settings.cache_ttl {
                return value.clone();
            }
        }
        let value = self.call().await;
        *self.cache.lock().expect("cache lock") = Some((Instant::now(), value.clone()));
        value
    }
}

/// `GET /api/redi/health`.
#[utoipa::path(
    get,
    path = "/api/redi/health",
    tag = "ops",
    summary = "Upstream (RediAI) health, as the original service reported it",
    description = "REDIAI_MODE=mock answers healthy; real calls REDIAI_BASE_URL + REDIAI_HEALTH_PATH (5 s timeout, cached REDIAI_HEALTH_CACHE_TTL_SECONDS).",
    responses(
        (status = 200, description = "{\"status\":\"healthy\"} or {\"status\":\"down\",\"error\":...}", body = Object),
        crate::http::openapi::KeyErrors,
    )
)]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.redi.check().await)
}
