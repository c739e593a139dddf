//! The router: every route the public address serves, grouped by the API-key scope it demands.
//!
//! A route is registered in exactly one scope group, and the group's route layer checks the key
//! before the handler runs, so no handler can forget authentication. `tests/api/auth.rs` walks the
//! served routes and proves each `/api` route demands the scope the README documents.
//!
//! | group | scope | routes |
//! | --- | --- | --- |
//! | ingest | `ingest` | `POST /api/traces`, `POST /api/traces/batch`, scores: record, retract, batch, baseline, `POST /v1/traces` (OTLP; errors as `google.rpc.Status`) |
//! | read | `read` | `GET /api/traces`, `GET /api/traces/{id}`, `GET /api/traces/compare`, `GET /api/traces/stats`, `GET /api/redi/health`, datasets: list, get, export, the built-in Schema Registry (`GET /api/registry/...`) |
//! | admin | `admin` | `DELETE /api/traces/{id}`, bulk deletes (`/api/deletions`), `GET /api/audit`, datasets: create, build (original), delete |
//! | any key | any valid key | `GET /api/health` |
//! | open | none | `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, the UI |
//!
//! Routes come from `utoipa_axum`, so the OpenAPI document lists exactly what is served.

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::compat::{self, redi};
use crate::governance::{audit, deletions, erase};
use crate::http::auth::{enforce, ApiKeys, Requirement, Scope};
use crate::http::{cors, error, health, metrics, openapi, pipeline_status, ui};
use crate::traces::{read, stats, write};
use crate::{datasets, otlp, registry, scores, AppState};

/// The documented scope of every `/api` route (`None`: any valid key). The README's
/// authentication table lists the same; tests prove the router enforces exactly this.
pub const ROUTE_SCOPES: &[(&str, &str, Option<Scope>)] = &[
    ("POST", "/api/traces", Some(Scope::Ingest)),
    ("POST", "/api/traces/batch", Some(Scope::Ingest)),
    ("GET", "/api/traces", Some(Scope::Read)),
    ("GET", "/api/traces/{id}", Some(Scope::Read)),
    ("DELETE", "/api/traces/{id}", Some(Scope::Admin)),
    ("POST", "/api/deletions", Some(Scope::Admin)),
    ("GET", "/api/deletions/{id}", Some(Scope::Admin)),
    ("DELETE", "/api/deletions/{id}", Some(Scope::Admin)),
    ("GET", "/api/audit", Some(Scope::Admin)),
    ("POST", "/api/traces/{id}/scores", Some(Scope::Ingest)),
    (
        "DELETE",
        "/api/traces/{id}/scores/{name}",
        Some(Scope::Ingest),
    ),
    ("POST", "/api/scores/batch", Some(Scope::Ingest)),
    ("POST", "/api/traces/{id}/score", Some(Scope::Ingest)),
    ("GET", "/api/traces/compare", Some(Scope::Read)),
    ("GET", "/api/traces/stats", Some(Scope::Read)),
    ("GET", "/api/redi/health", Some(Scope::Read)),
    ("GET", "/api/pipeline", Some(Scope::Read)),
    ("POST", "/api/datasets", Some(Scope::Admin)),
    ("POST", "/api/datasets/build", Some(Scope::Admin)),
    ("GET", "/api/datasets", Some(Scope::Read)),
    ("GET", "/api/datasets/{name}/{version}", Some(Scope::Read)),
    (
        "DELETE",
        "/api/datasets/{name}/{version}",
        Some(Scope::Admin),
    ),
    (
        "GET",
        "/api/datasets/{name}/{version}/export",
        Some(Scope::Read),
    ),
    (
        "GET",
        "/api/datasets/{name}/export.jsonl",
        Some(Scope::Read),
    ),
    ("GET", "/api/registry/schemas/ids/{id}", Some(Scope::Read)),
    ("GET", "/api/registry/subjects", Some(Scope::Read)),
    (
        "GET",
        "/api/registry/subjects/{subject}/versions",
        Some(Scope::Read),
    ),
    (
        "GET",
        "/api/registry/subjects/{subject}/versions/{version}",
        Some(Scope::Read),
    ),
    ("GET", "/api/health", None),
    ("POST", "/v1/traces", Some(Scope::Ingest)),
];

/// The route layer demanding `scope` (any valid key when `None`).
macro_rules! scoped {
    ($keys:expr, $scope:expr) => {
        axum::middleware::from_fn_with_state(Requirement::new($keys.clone(), $scope), enforce)
    };
}

/// Every route with its OpenAPI operation and its scope.
fn documented_routes(keys: &Arc<ApiKeys>) -> OpenApiRouter<Arc<AppState>> {
    let ingest = OpenApiRouter::new()
        .routes(routes!(write::submit))
        .routes(routes!(write::submit_batch))
        .routes(routes!(scores::record))
        .routes(routes!(scores::retract))
        .routes(routes!(scores::record_batch))
        .routes(routes!(compat::scores::baseline))
        .route_layer(scoped!(keys, Some(Scope::Ingest)));
    // OTLP exporters read errors as `google.rpc.Status` in their own encoding, the key check's
    // included: the conversion wraps the scope check.
    let otlp = OpenApiRouter::new()
        .routes(routes!(otlp::export::export))
        .route_layer(scoped!(keys, Some(Scope::Ingest)))
        .route_layer(axum::middleware::from_fn(otlp::export::status_bodies));
    let read = OpenApiRouter::new()
        .routes(routes!(read::list))
        .routes(routes!(stats::stats))
        .routes(routes!(pipeline_status::status))
        .routes(routes!(read::get))
        .routes(routes!(compat::scores::compare))
        .routes(routes!(redi::health))
        .routes(routes!(datasets::list))
        .routes(routes!(datasets::get))
        .routes(routes!(datasets::export::export))
        .routes(routes!(compat::datasets::export_original))
        .routes(routes!(registry::schema_by_id))
        .routes(routes!(registry::subjects))
        .routes(routes!(registry::subject_versions))
        .routes(routes!(registry::subject_version))
        .route_layer(scoped!(keys, Some(Scope::Read)));
    let admin = OpenApiRouter::new()
        .routes(routes!(erase::delete))
        .routes(routes!(datasets::create::create))
        .routes(routes!(compat::datasets::build_original))
        .routes(routes!(datasets::delete))
        .routes(routes!(deletions::request_deletion))
        .routes(routes!(deletions::get_deletion, deletions::cancel_deletion))
        .routes(routes!(audit::audit))
        .route_layer(scoped!(keys, Some(Scope::Admin)));
    let any_key = OpenApiRouter::new()
        .routes(routes!(health::api_health))
        .route_layer(scoped!(keys, None));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics_endpoint))
        .routes(routes!(health::openapi_json))
        .routes(routes!(ui::index))
        .routes(routes!(ui::app_js))
        .routes(routes!(ui::app_css))
        .routes(routes!(ui::module))
        .routes(routes!(ui::example))
        .merge(ingest)
        .merge(otlp)
        .merge(read)
        .merge(admin)
        .merge(any_key)
}

/// The OpenAPI document of [`app`].
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented_routes(&Arc::new(ApiKeys::default())).into_openapi()
}

/// The router: every route the public address serves.
pub fn app(state: Arc<AppState>) -> Router {
    let keys = Arc::new(state.cfg.api_keys.clone());
    let origins = state.cfg.cors_origins.clone();
    let (router, doc) = documented_routes(&keys).split_for_parts();
    let _ = state.openapi.set(doc);
    let router = router
        .with_state(state)
        // Unknown routes and wrong methods answer like every other error: {"detail": ...}.
        .layer(axum::middleware::from_fn(error::json_error_bodies))
        .layer(axum::middleware::from_fn(metrics::track));
    if origins.is_empty() {
        router
    } else {
        // Outermost: a preflight never reaches routing or authentication.
        router.layer(axum::middleware::from_fn_with_state(
            cors::Origins(Arc::new(origins)),
            cors::cors,
        ))
    }
}
