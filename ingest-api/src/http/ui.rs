//! The web UI: static files embedded in the binary (no JavaScript build step, no CDN), served
//! from the public address. The source in `ingest-api/ui/` is what is served: `index.html`,
//! `app.js` and `app.css`, and the ES modules in `ui/lib/` and `ui/views/` ([`MODULES`]).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");
const EXAMPLE: &str = include_str!("../../../testdata/example-temperature.json");

/// The UI's modules, `(directory, file, source)`: every `.js` file in `ui/lib/` and
/// `ui/views/` (a test keeps this list and the directories equal).
pub const MODULES: &[(&str, &str, &str)] = &[
    ("lib", "api.js", include_str!("../../ui/lib/api.js")),
    ("lib", "chart.js", include_str!("../../ui/lib/chart.js")),
    ("lib", "dom.js", include_str!("../../ui/lib/dom.js")),
    (
        "lib",
        "highlight.js",
        include_str!("../../ui/lib/highlight.js"),
    ),
    (
        "lib",
        "markdown.js",
        include_str!("../../ui/lib/markdown.js"),
    ),
    ("lib", "route.js", include_str!("../../ui/lib/route.js")),
    (
        "views",
        "charts.js",
        include_str!("../../ui/views/charts.js"),
    ),
    (
        "views",
        "compare.js",
        include_str!("../../ui/views/compare.js"),
    ),
    (
        "views",
        "datasets.js",
        include_str!("../../ui/views/datasets.js"),
    ),
    (
        "views",
        "health.js",
        include_str!("../../ui/views/health.js"),
    ),
    ("views", "ops.js", include_str!("../../ui/views/ops.js")),
    ("views", "runs.js", include_str!("../../ui/views/runs.js")),
    (
        "views",
        "submit.js",
        include_str!("../../ui/views/submit.js"),
    ),
    ("views", "trace.js", include_str!("../../ui/views/trace.js")),
    (
        "views",
        "traces.js",
        include_str!("../../ui/views/traces.js"),
    ),
];

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

/// `GET /ui/{dir}/{file}`: one of the UI's ES modules ([`MODULES`]).
#[utoipa::path(get, path = "/ui/{dir}/{file}", tag = "ops", summary = "Web UI module",
    params(("dir" = String, Path, description = "lib or views"), ("file" = String, Path, description = "the module's file name")),
    responses((status = 200, content_type = "text/javascript", body = String), (status = 404, description = "No such module")))]
pub async fn module(Path((dir, file)): Path<(String, String)>) -> Response {
    match MODULES.iter().find(|(d, f, _)| *d == dir && *f == file) {
        Some((_, _, source)) => asset("text/javascript; charset=utf-8", source).into_response(),
        None => (StatusCode::NOT_FOUND, "no such UI module").into_response(),
    }
}

/// `GET /ui/example.json`: the original service's "Load example" trace.
#[utoipa::path(get, path = "/ui/example.json", tag = "ops", summary = "Example trace for the UI", responses((status = 200, body = crate::http::openapi::TraceIn)))]
pub async fn example() -> impl IntoResponse {
    asset("application/json", EXAMPLE)
}

#[cfg(test)]
mod tests {
    use super::MODULES;

    #[test]
    fn every_module_in_the_ui_directories_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk = Vec::new();
        for dir in ["lib", "views"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".js") {
                    on_disk.push(format!("{dir}/{name}"));
                }
            }
        }
        on_disk.sort();
        let served: Vec<String> = MODULES.iter().map(|(d, f, _)| format!("{d}/{f}")).collect();
        assert_eq!(served, on_disk, "ui.rs MODULES lists every module, sorted");
    }
}
