//! The original service's judging routes: `POST /api/traces/{id}/score` (the `baseline` score,
//! computed here and recorded like any score) and `GET /api/traces/compare` (two traces side by
//! side).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, value::RawValue, Value};
use tunix_schemas::score::{self, ScoreInput};
use tunix_schemas::Trace;
use uuid::Uuid;

use crate::http::body::read_body;
use crate::http::common::{iso, now, parse_id, produce_error};
use crate::http::error::ApiError;
use crate::scores::{recorded, BASELINE};
use crate::traces::read::{raw_payload, stored_trace, StoredTrace};
use crate::AppState;

/// Largest body of a baseline request (`{"criteria": "baseline"}` or nothing).
const BODY_MAX: usize = 64 * 1024;

/// The `baseline` score of a stored trace, with the original service's `details`.
fn baseline_of(t: &StoredTrace) -> Result<(f64, Value), ApiError> {
    let trace = Trace::parse_json(t.payload.as_bytes()).map_err(|e| {
        tracing::error!(id = %t.id, error = %e, "stored payload does not validate");
        ApiError::Internal
    })?;
    let b = score::baseline(&trace);
    Ok((
        b.score,
        json!({
            "step_count": b.step_count,
            "avg_step_length": b.avg_step_length,
            "total_chars": b.total_chars,
            "step_score": b.step_score,
            "length_score": b.length_score,
            "criteria": BASELINE,
        }),
    ))
}

/// `POST /api/traces/{id}/score` (the original service): computes the `baseline` score and records it.
#[utoipa::path(
    post,
    path = "/api/traces/{id}/score",
    tag = "scores",
    summary = "Score a trace by the original service's baseline criteria",
    description = "Body {\"criteria\":\"baseline\"} (the default and only value). step_score = min(step_count/10, 1)*50, length_score = min(avg_step_len/500, 1)*50 (average step content length in characters), score = their sum (0-100), recorded as the score named baseline. Answers {trace_id, score, details} once the broker has the event.",
    params(("id" = String, Path, description = "Trace id (UUID)")),
    responses(
        (status = 202, description = "{trace_id, score, details: {step_count, avg_step_length, total_chars, step_score, length_score, criteria, scored_at}}", body = Object),
        (status = 404, description = "The trace is not stored (yet)", body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn baseline(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (bytes, _) = read_body(&state, &headers, body, BODY_MAX).await?;
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let criteria = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("criteria").cloned());
        match criteria {
            None | Some(Value::Null) => {}
            Some(Value::String(c)) if c == BASELINE => {}
            Some(other) => {
                return Err(ApiError::Validation(tunix_schemas::ValidationErrors(vec![
                    tunix_schemas::ValidationError::new(
                        tunix_schemas::Loc::body().child("criteria"),
                        tunix_schemas::ErrorKind::ValueError,
                        format!(
                            "Value error, unknown criteria {other}; the only one is \"baseline\""
                        ),
                    ),
                ])));
            }
        }
    }
    let trace = stored_trace(&state, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Trace {id} not found")))?;
    let (value, mut details) = baseline_of(&trace)?;
    let at = now();
    details["scored_at"] = json!(iso(&at));
    state
        .producer
        .append(&[recorded(
            ScoreInput {
                trace_id: id,
                name: BASELINE.to_owned(),
                value,
                source: Some(BASELINE.to_owned()),
                comment: None,
            },
            at,
        )])
        .await
        .map_err(|e| produce_error(&state, e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"trace_id": id, "score": value, "details": details})),
    )
        .into_response())
}

/// One side of a comparison.
#[derive(Serialize)]
struct Side {
    id: Uuid,
    created_at: String,
    score: f64,
    trace_version: String,
    payload: Box<RawValue>,
}

/// `GET /api/traces/compare?base=<id>&other=<id>` (the original service).
#[utoipa::path(
    get,
    path = "/api/traces/compare",
    tag = "read",
    summary = "Compare two traces side by side",
    description = "Answers {base, other}, each {id, created_at, score, trace_version, payload}; score is the recorded baseline score, or computed for the answer (not stored: a GET never writes).",
    params(
        ("base" = String, Query, description = "Trace id (UUID)"),
        ("other" = String, Query, description = "Trace id (UUID)"),
    ),
    responses(
        (status = 200, description = "{base, other}", body = Object),
        (status = 404, description = "detail names the unknown id", body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn compare(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut base = None;
    let mut other = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "base" => base = Some(v.into_owned()),
            "other" => other = Some(v.into_owned()),
            _ => {}
        }
    }
    let id = |param: &'static str, v: Option<String>| -> Result<Uuid, ApiError> {
        let v = v.ok_or_else(|| ApiError::InvalidParam {
            param: param.into(),
            msg: "Field required".into(),
            location: "query",
        })?;
        Uuid::parse_str(v.trim()).map_err(|e| ApiError::InvalidParam {
            param: param.into(),
            msg: format!("Input should be a valid UUID, {e}"),
            location: "query",
        })
    };
    let (base, other) = (id("base", base)?, id("other", other)?);
    let mut sides = Vec::with_capacity(2);
    for (which, id) in [("base", base), ("other", other)] {
        let trace = stored_trace(&state, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("{which} trace {id} not found")))?;
        let recorded = trace.scores.get(BASELINE).map(|s| s.value);
        let score = match recorded {
            Some(v) => v,
            None => baseline_of(&trace)?.0,
        };
        sides.push(Side {
            id,
            created_at: iso(&trace.created_at),
            score,
            payload: raw_payload(&trace)?,
            trace_version: trace.trace_version,
        });
    }
    let other_side = sides.pop().expect("two sides");
    let base_side = sides.pop().expect("two sides");
    Ok(Json(json!({"base": base_side, "other": other_side})).into_response())
}
