//! Judging traces: recording and retracting scores (events on the topic, in the trace's own
//! partition), the seed API's `baseline` score, and the side-by-side comparison.
//!
//! A score for an id the read models do not know yet is accepted: a harness usually scores right
//! after its POST's 202, and the submission is earlier in the same partition, so the projector
//! applies it first. A score whose trace does not exist when the projector reaches it (never
//! submitted, or deleted) is ignored by the read models and counted
//! (`tunix_projector_scores_ignored_total`); its event stays in the topic like any other.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, value::RawValue, Value};
use tunix_schemas::score::{self, ScoreBatchError, ScoreInput};
use tunix_schemas::{ScoreRecorded, ScoreRetracted, Tombstone, Trace, TraceEvent};
use uuid::Uuid;

use crate::body::read_limited;
use crate::error::ApiError;
use crate::ingest::{iso, now, produce_error, rejected, require_json};
use crate::read::{parse_id, raw_payload, stored_trace, StoredTrace};
use crate::AppState;

/// The name the `baseline` criteria records its score under.
pub const BASELINE: &str = "baseline";

fn recorded(input: ScoreInput, at: chrono::DateTime<chrono::Utc>) -> TraceEvent {
    TraceEvent::ScoreRecorded(ScoreRecorded {
        trace_id: input.trace_id,
        name: input.name,
        value: input.value,
        source: input.source,
        comment: input.comment,
        recorded_at: at,
    })
}

/// `202` body of `POST /api/traces/{id}/scores`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreAccepted {
    /// The trace.
    pub trace_id: Uuid,
    /// The score's name.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Acceptance time.
    pub recorded_at: String,
}

/// `POST /api/traces/{id}/scores`: records a score (the latest per name wins).
#[utoipa::path(
    post,
    path = "/api/traces/{id}/scores",
    tag = "scores",
    summary = "Record a score",
    description = "{name, value, source?, comment?}: name 1-64 characters, value a finite number. Answers 202 once the broker has the event. The latest score per (trace, name) wins.",
    params(("id" = String, Path, description = "Trace id (UUID)")),
    request_body(content = crate::openapi::ScoreIn, content_type = "application/json"),
    responses(
        (status = 202, body = ScoreAccepted),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 415, body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn record(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    require_json(&headers)?;
    let (bytes, _) = read_limited(
        &headers,
        body,
        state.cfg.trace_max_bytes,
        state.cfg.body_read_timeout,
    )
    .await?;
    let input = score::parse_score(&bytes, id).map_err(|e| rejected(&state, e))?;
    let at = now();
    let answer = ScoreAccepted {
        trace_id: id,
        name: input.name.clone(),
        value: input.value,
        recorded_at: iso(&at),
    };
    state
        .producer
        .append(&[recorded(input, at)])
        .await
        .map_err(|e| produce_error(&state, e))?;
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// `202` body of `POST /api/scores/batch`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreBatchAccepted {
    /// Scores recorded.
    pub count: usize,
    /// Acceptance time shared by all of them.
    pub recorded_at: String,
}

/// `POST /api/scores/batch`: up to 1,000 scores, all or nothing.
#[utoipa::path(
    post,
    path = "/api/scores/batch",
    tag = "scores",
    summary = "Record up to 1,000 scores",
    description = "A JSON array of {trace_id, name, value, source?, comment?}. All or nothing: one invalid item rejects the batch (422, paths like [\"body\",7,\"value\"]).",
    request_body(content = Vec<crate::openapi::ScoreBatchItem>, content_type = "application/json"),
    responses(
        (status = 202, body = ScoreBatchAccepted),
        (status = 400, description = "Empty batch", body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 413, description = "More than 1,000 items or a body over BATCH_MAX_BYTES", body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn record_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let (bytes, _) = read_limited(
        &headers,
        body,
        state.cfg.batch_max_bytes,
        state.cfg.body_read_timeout,
    )
    .await?;
    let inputs = score::parse_score_batch(&bytes).map_err(|e| match e {
        ScoreBatchError::Invalid(errs) => rejected(&state, errs),
        ScoreBatchError::Empty => {
            ApiError::BadRequest("batch must contain at least one score".into())
        }
        ScoreBatchError::TooMany(n) => ApiError::TooLarge(format!(
            "batch has {n} scores; at most {} are allowed",
            score::SCORE_BATCH_MAX
        )),
    })?;
    let at = now();
    let count = inputs.len();
    let events: Vec<TraceEvent> = inputs.into_iter().map(|i| recorded(i, at)).collect();
    state
        .producer
        .append(&events)
        .await
        .map_err(|e| produce_error(&state, e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ScoreBatchAccepted {
            count,
            recorded_at: iso(&at),
        }),
    )
        .into_response())
}

/// `DELETE /api/traces/{id}/scores/{name}`: retracts one score (an event too).
#[utoipa::path(
    delete,
    path = "/api/traces/{id}/scores/{name}",
    tag = "scores",
    summary = "Retract a score",
    params(
        ("id" = String, Path, description = "Trace id (UUID)"),
        ("name" = String, Path, description = "Score name"),
    ),
    responses(
        (status = 202, description = "{trace_id, name, retracted_at}", body = Object),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn retract(
    State(state): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    score::check_name(&name).map_err(|e| ApiError::InvalidParam {
        param: "name".into(),
        msg: e.errors()[0].msg.clone(),
        location: "path",
    })?;
    let at = now();
    state
        .producer
        .append_then_erase(
            &[TraceEvent::ScoreRetracted(ScoreRetracted {
                trace_id: id,
                name: name.clone(),
                retracted_at: at,
            })],
            // Then a tombstone: compaction keeps nothing of the retracted score, not even the
            // retraction.
            &[Tombstone::score(id, &name)],
            &[],
        )
        .await
        .map_err(|e| produce_error(&state, e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"trace_id": id, "name": name, "retracted_at": iso(&at)})),
    )
        .into_response())
}

/// The `baseline` score of a stored trace, with the seed's `details`.
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

/// `POST /api/traces/{id}/score` (the seed API): computes the `baseline` score and records it.
#[utoipa::path(
    post,
    path = "/api/traces/{id}/score",
    tag = "scores",
    summary = "Score a trace by the seed's baseline criteria",
    description = "Body {\"criteria\":\"baseline\"} (the default and only value). step_score = min(step_count/10, 1)*50, length_score = min(avg_step_len/500, 1)*50 (average step content length in characters), score = their sum (0-100), recorded as the score named baseline. Answers {trace_id, score, details} once the broker has the event.",
    params(("id" = String, Path, description = "Trace id (UUID)")),
    responses(
        (status = 202, description = "{trace_id, score, details: {step_count, avg_step_length, total_chars, step_score, length_score, criteria, scored_at}}", body = Object),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "The trace is not stored (yet)", body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn baseline(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (bytes, _) = read_limited(&headers, body, 64 * 1024, state.cfg.body_read_timeout).await?;
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

/// `GET /api/traces/compare?base=<id>&other=<id>` (the seed API).
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
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "detail names the unknown id", body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
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
