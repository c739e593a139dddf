//! `POST /api/traces` and `POST /api/traces/batch`: validate, give ids, append, answer after the
//! broker's acknowledgement.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tunix_schemas::{
    ids, BatchError, BatchFormat, Trace, TraceEvent, TraceSubmitted, ValidationErrors,
};
use uuid::Uuid;

use crate::auth::Scope;
use crate::body::{media_type, read_limited};
use crate::error::ApiError;
use crate::producer::ProduceError;
use crate::AppState;

/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// `202` body of `POST /api/traces`.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// The trace id.
    pub id: Uuid,
    /// Acceptance time, ISO-8601 UTC with microseconds.
    pub created_at: String,
    /// The trace's version label.
    pub trace_version: String,
}

/// `202` body of `POST /api/traces/batch`.
#[derive(Debug, Serialize)]
pub struct BatchAccepted {
    /// Number of traces appended.
    pub count: usize,
    /// Their ids, in input order.
    pub ids: Vec<Uuid>,
    /// Acceptance time shared by every trace of the batch.
    pub created_at: String,
}

/// ISO-8601 UTC with microseconds and `Z`, the format of every timestamp in the API.
pub fn iso(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_MAX
        || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers).as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {other} is not supported: send application/json (curl: -H 'Content-Type: application/json')"
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "missing Content-Type: send application/json (curl: -H 'Content-Type: application/json')".into(),
        )),
    }
}

fn rejected(state: &AppState, errs: ValidationErrors) -> ApiError {
    for e in errs.errors() {
        state.metrics.validation_failure(e.kind.as_str());
    }
    ApiError::Validation(errs)
}

pub(crate) fn produce_error(state: &AppState, e: ProduceError) -> ApiError {
    match e {
        ProduceError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        other => {
            tracing::warn!(error = %other, "append failed; answering 503");
            ApiError::unavailable(other.to_string(), state.cfg.retry_after_secs)
        }
    }
}

fn now() -> DateTime<Utc> {
    tunix_schemas::truncate_to_micros(Utc::now())
}

/// `POST /api/traces`.
pub async fn submit(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.cfg.api_keys.check(&headers, Some(Scope::Ingest))?;
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let (bytes, wire) = read_limited(
        &headers,
        body,
        state.cfg.trace_max_bytes,
        state.cfg.body_read_timeout,
    )
    .await?;
    state.metrics.bytes_in.increment(wire as u64);
    let trace = Trace::parse_json(&bytes).map_err(|e| rejected(&state, e))?;

    let id = key
        .as_deref()
        .map_or_else(ids::new_trace_id, ids::idempotent_trace_id);
    let created_at = now();
    let trace_version = trace.trace_version().to_owned();
    let event = TraceEvent::Submitted(TraceSubmitted {
        id,
        created_at,
        trace,
        idempotency_key: key,
    });
    state
        .producer
        .append(std::slice::from_ref(&event))
        .await
        .map_err(|e| produce_error(&state, e))?;
    state.metrics.accepted.increment(1);

    let location = format!("/api/traces/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            created_at: iso(&created_at),
            trace_version,
        }),
    )
        .into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("ids are ASCII"),
    );
    Ok(response)
}

/// `POST /api/traces/batch`: a JSON array or NDJSON, all or nothing.
pub async fn submit_batch(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.cfg.api_keys.check(&headers, Some(Scope::Ingest))?;
    let format = match media_type(&headers).as_deref() {
        Some("application/json") => BatchFormat::JsonArray,
        Some("application/x-ndjson" | "application/jsonl" | "application/jsonlines" | "application/x-jsonlines") => {
            BatchFormat::Ndjson
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "{}: send application/json (an array of traces) or application/x-ndjson (one trace per line)",
                other.map_or("missing Content-Type".to_owned(), |t| format!("Content-Type {t} is not supported"))
            )))
        }
    };
    let key = idempotency_key(&headers)?;
    let (bytes, wire) = read_limited(
        &headers,
        body,
        state.cfg.batch_max_bytes,
        state.cfg.body_read_timeout,
    )
    .await?;
    state.metrics.bytes_in.increment(wire as u64);
    let item_limit = state.cfg.trace_max_bytes;
    let parsed = if bytes.len() <= 1 << 20 {
        tunix_schemas::parse_batch(&bytes, format, item_limit)
    } else {
        tokio::task::spawn_blocking(move || tunix_schemas::parse_batch(&bytes, format, item_limit))
            .await
            .map_err(|e| ApiError::unavailable(format!("validation task failed: {e}"), 1))?
    };
    let traces = parsed.map_err(|e| match e {
        BatchError::Empty => ApiError::BadRequest("batch must contain at least one trace".into()),
        BatchError::TooMany { .. } | BatchError::ItemTooLarge { .. } => {
            ApiError::TooLarge(e.to_string())
        }
        BatchError::Invalid(errs) => rejected(&state, errs),
    })?;

    let created_at = now();
    let events: Vec<TraceEvent> = traces
        .into_iter()
        .enumerate()
        .map(|(n, trace)| {
            TraceEvent::Submitted(TraceSubmitted {
                id: key
                    .as_deref()
                    .map_or_else(ids::new_trace_id, |k| ids::idempotent_batch_item_id(k, n)),
                created_at,
                trace,
                idempotency_key: key.clone(),
            })
        })
        .collect();
    let ids: Vec<Uuid> = events.iter().map(TraceEvent::id).collect();
    state
        .producer
        .append(&events)
        .await
        .map_err(|e| produce_error(&state, e))?;
    state.metrics.accepted.increment(ids.len() as u64);
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchAccepted {
            count: ids.len(),
            ids,
            created_at: iso(&created_at),
        }),
    )
        .into_response())
}
