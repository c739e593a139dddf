//! The one error type of the HTTP boundary; `IntoResponse` decides the status.
//!
//! - 4xx: the request is wrong and retrying it unchanged will fail again. Every body has a
//!   `detail` (a string, or FastAPI's list of `{loc, msg, type}` for validation).
//! - 503 + `Retry-After`: operational trouble (broker or database unavailable, producer queue full,
//!   delivery timed out). Retrying later, with the same `Idempotency-Key`, is safe.
//! - Never 500 for anything a client or an outage can cause; 500 only for our own bugs.
//!
//! [`json_error_bodies`] gives the answers axum produces by itself (unknown route 404, wrong
//! method 405 with `Allow`, extractor rejections) the same `{"detail": ...}` shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tunix_schemas::ValidationErrors;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422 with FastAPI-style `detail` entries.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// 422 about a query or path parameter, with a message that names it.
    #[error("invalid parameter {param}: {msg}")]
    InvalidParam {
        /// The parameter's name, e.g. `limit` or `meta.run`.
        param: std::borrow::Cow<'static, str>,
        /// What is wrong.
        msg: String,
        /// Where: `query` or `path`.
        location: &'static str,
    },
    /// 413, with the original service's message.
    #[error("payload too large")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 413 with a specific message (batch limits, the broker's message size limit).
    #[error("{0}")]
    TooLarge(String),
    /// 400: a request that cannot be interpreted at all (empty batch, bad header).
    #[error("{0}")]
    BadRequest(String),
    /// 415: wrong or missing `Content-Type`, unsupported `Content-Encoding`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 408: the body did not arrive in time.
    #[error("request body not received within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with what exists (a dataset name taken by another definition).
    #[error("{0}")]
    Conflict(String),
    /// 410: the request names something deleted for good (a keyed POST of a deleted trace).
    #[error("{0}")]
    Gone(String),
    /// 401.
    #[error("missing or invalid API key")]
    Unauthenticated,
    /// 403: the key lacks the named scope (`ingest`, `read` or `admin`).
    #[error("the API key lacks the {0} scope")]
    Forbidden(&'static str),
    /// 500: a bug on our side (never caused by a client or an outage); the cause is logged.
    #[error("internal error")]
    Internal,
    /// 503 + `Retry-After`: try again later.
    #[error("{detail}")]
    Unavailable {
        /// Why, for the client.
        detail: String,
        /// Seconds for `Retry-After`.
        retry_after: u64,
    },
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::InvalidParam { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::PayloadTooLarge { .. } | ApiError::TooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A 503 with the configured `Retry-After`.
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError::Unavailable {
            detail: detail.into(),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Validation(errs) => json!({ "detail": errs.errors() }),
            ApiError::InvalidParam {
                param,
                msg,
                location,
            } => {
                json!({ "detail": [{ "loc": [location, param], "msg": msg, "type": "value_error" }] })
            }
            ApiError::PayloadTooLarge { limit } => {
                json!({ "detail": format!("Payload size exceeds maximum of {limit} bytes") })
            }
            ApiError::Forbidden(scope) => json!({
                "detail": format!("this API key lacks the '{scope}' scope")
            }),
            other => json!({ "detail": other.to_string() }),
        };
        let mut resp = (status, Json(body)).into_response();
        match self {
            ApiError::Unavailable { retry_after, .. } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            ApiError::Unauthenticated => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tunix-rt\""),
                );
            }
            _ => {}
        }
        resp
    }
}

/// Middleware: a 4xx answer without a JSON body (axum's own 404 for an unknown route, 405 for a
/// wrong method, an extractor's plain-text rejection) gets FastAPI's shape `{"detail": "..."}`:
/// the reason phrase (`"Not Found"`, `"Method Not Allowed"`) or the rejection's text. Headers
/// such as `Allow` are kept.
pub async fn json_error_bodies(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // `application/json`, or a JSON-based type such as the Schema Registry API's
    // `application/vnd.schemaregistry.v1+json`, or OTLP's protobuf `Status`: its error body is
    // the contract.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|t| {
            t == "application/json" || t.ends_with("+json") || t == "application/x-protobuf"
        });
    if !status.is_client_error() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = match std::str::from_utf8(&text).map(str::trim) {
        Ok(t) if !t.is_empty() => t.to_owned(),
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        axum::body::Body::from(json!({ "detail": detail }).to_string()),
    )
}
