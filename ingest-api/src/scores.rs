//! Judging traces: recording and retracting scores (events on the topic, in the trace's own
//! partition). The original service's `baseline` score and comparison are in
//! `crate::compat::scores`.
//!
//! A score for an id the read models do not know yet is accepted: a harness usually scores right
//! after its POST's 202, and the submission is earlier in the same partition, so the projector
//! applies it first. A score whose trace does not exist when the projector reaches it (never
//! submitted, or deleted) is ignored by the read models and counted
//! (`tunix_projector_scores_ignored_total`); its event stays in the topic like any other.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use tunix_schemas::score::{self, ScoreBatchError, ScoreInput};
use tunix_schemas::{ScoreRecorded, ScoreRetracted, Tombstone, TraceEvent};
use uuid::Uuid;

use crate::http::body::read_json;
use crate::http::common::{iso, now, parse_id, produce_error, rejected};
use crate::http::error::ApiError;
use crate::AppState;

/// The name the `baseline` criteria records its score under.
pub const BASELINE: &str = "baseline";

/// The event recording `input` at `at`.
pub(crate) fn recorded(input: ScoreInput, at: chrono::DateTime<chrono::Utc>) -> TraceEvent {
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
    request_body(content = crate::http::openapi::ScoreIn, content_type = "application/json"),
    responses(
        (status = 202, body = ScoreAccepted),
        (status = 415, body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn record(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let bytes = read_json(&state, &headers, body, state.cfg.trace_max_bytes).await?;
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
    request_body(content = Vec<crate::http::openapi::ScoreBatchItem>, content_type = "application/json"),
    responses(
        (status = 202, body = ScoreBatchAccepted),
        (status = 400, description = "Empty batch", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "More than 1,000 items or a body over BATCH_MAX_BYTES", body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn record_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_json(&state, &headers, body, state.cfg.batch_max_bytes).await?;
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
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
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
        .append_with_tombstones(
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
