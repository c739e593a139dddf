//! The web UI: static files embedded in the binary (no JavaScript build step), served from the
//! public address. The source in `ingest-api/ui/` is what is served.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");
const EXAMPLE: &str = include_str!("../../../testdata/example-temperature.json");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `GET /`: the web UI.
#[utoipa::path(get, path = "/", tag = "ops", summary = "Web UI", responses((status = 200, content_type = "text/html", body = String)))]
pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /ui/app.js`.
#[utoipa::path(get, path = "/ui/app.js", tag = "ops", summary = "Web UI script", responses((status = 200, content_type = "text/javascript", body = String)))]
pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /ui/app.css`.
#[utoipa::path(get, path = "/ui/app.css", tag = "ops", summary = "Web UI styles", responses((status = 200, content_type = "text/css", body = String)))]
pub async fn app_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /ui/example.json`: the original service's "Load example" trace.
#[utoipa::path(get, path = "/ui/example.json", tag = "ops", summary = "Example trace for the UI", responses((status = 200, body = crate::http::openapi::TraceIn)))]
pub async fn example() -> impl IntoResponse {
    asset("application/json", EXAMPLE)
}
