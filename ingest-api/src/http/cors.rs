//! CORS for a UI served from another origin (the original service's UI ran on its own dev server).
//!
//! Off unless `CORS_ORIGINS` lists origins (`https://ui.example.com,http://localhost:5173`, or
//! `*` for any). For an allowed origin, preflight requests (`OPTIONS` with
//! `Access-Control-Request-Method`) are answered 204 with the methods and headers the API uses, and
//! every answer carries `Access-Control-Allow-Origin` and exposes `Location` and `Retry-After`.
//! Other origins get no CORS headers, so browsers keep them out. API keys still apply: CORS only
//! decides which pages may call, not who is authorised.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Methods the API answers.
const METHODS: &str = "GET, POST, DELETE";
/// Request headers the API reads.
const HEADERS: &str =
    "authorization, content-type, content-encoding, idempotency-key, x-delete-reason";
/// Response headers a browser script may read.
const EXPOSED: &str = "location, retry-after";

/// The allowed origins.
#[derive(Clone)]
pub struct Origins(pub Arc<Vec<String>>);

impl Origins {
    fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == "*" || o == origin)
    }
}

/// Middleware (outermost, so preflights never reach routing).
pub async fn cors(State(origins): State<Origins>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| origins.allows(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        } else {
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
    }
    response
}
