//! The one erasure path (`erase`): `DELETE /api/traces/{id}`, bulk deletes and retention
//! sweeps all append a trace's deletion and tombstones through it, then record the id as deleted.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tunix_schemas::{ErasureRequested, Tombstone, TraceDeleted, TraceEvent};
use uuid::Uuid;

use crate::http::auth::Caller;
use crate::http::common::{iso, now, parse_id, produce_error};
use crate::http::db::bounded;
use crate::http::error::ApiError;
use crate::AppState;

/// `202` body of `DELETE /api/traces/{id}`.
#[derive(Serialize)]
struct DeleteAccepted {
    id: Uuid,
    deleted_at: String,
    /// The audit record of this delete (`GET /api/audit`).
    audit_id: Uuid,
}

/// The events and tombstones that erase `ids`: a `TraceDeleted` per trace, then a tombstone for
/// each trace's key (the projector adds those of its score keys). Shared by `DELETE`, bulk
/// deletes and retention sweeps.
pub(crate) fn erasure_records(
    ids: &[Uuid],
    deleted_at: DateTime<Utc>,
    reason: Option<&str>,
) -> (Vec<TraceEvent>, Vec<Tombstone>) {
    let events = ids
        .iter()
        .map(|id| {
            TraceEvent::Deleted(TraceDeleted {
                id: *id,
                deleted_at,
                reason: reason.map(str::to_owned),
            })
        })
        .collect();
    (events, ids.iter().map(|id| Tombstone::trace(*id)).collect())
}

/// Appends the erasure of `ids` (preceded by `audit`, if any) and records the ids as deleted in
/// Postgres, so `GET` stops returning them and keyed POSTs cannot bring them back. The append
/// comes first: a failure after it leaves the deletion in the topic, where the writer and
/// projector record it anyway; the caller answers 503 and a retry is harmless.
pub(crate) async fn erase(
    state: &AppState,
    via: &'static str,
    audit: Option<ErasureRequested>,
    ids: &[Uuid],
    deleted_at: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let (mut events, tombstones) = erasure_records(ids, deleted_at, reason);
    if let Some(audit) = audit {
        events.insert(0, TraceEvent::ErasureRequested(audit));
    }
    let dead_letters: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    state
        .producer
        .append_with_tombstones(&events, &tombstones, &dead_letters)
        .await
        .map_err(|e| produce_error(state, e))?;
    let mut conn = bounded(state, state.pool.acquire()).await?;
    bounded(
        state,
        tunix_pipeline::erasure::record_deletions(&mut conn, ids),
    )
    .await?;
    state.metrics.erased(via, ids.len() as u64);
    Ok(())
}

/// `DELETE /api/traces/{id}`: erases the trace (see `docs/GOVERNANCE.md`). Idempotent: deleting
/// an unknown or already deleted id also answers 202.
#[utoipa::path(
    delete,
    path = "/api/traces/{id}",
    tag = "ingest",
    summary = "Delete a trace",
    description = "Appends an audit record, the deletion and a tombstone for the trace's key (the projector adds its score keys'), so that compaction leaves nothing of its content. GET answers 404 from the 202 on; the read models drop it within the freshness bound; a later POST with an Idempotency-Key that derives its id answers 410. Requires the admin scope when auth is on.",
    params(
        ("id" = String, Path, description = "Trace id (UUID)"),
        ("X-Delete-Reason" = Option<String>, Header, description = "Recorded in the deletion and the audit record (up to 500 characters)"),
    ),
    responses(
        (status = 202, body = crate::http::openapi::DeleteAccepted),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let deleted_at = now();
    let reason: Option<String> = headers
        .get("x-delete-reason")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect());
    let audit = ErasureRequested {
        id: Uuid::now_v7(),
        action: "delete".into(),
        requested_by: caller.map_or_else(|| Caller::anonymous().0, |c| c.0 .0),
        requested_at: deleted_at,
        trace_id: Some(id),
        filter: None,
        created_before: None,
        count: Some(1),
        reason: reason.clone(),
    };
    let audit_id = audit.id;
    erase(
        &state,
        "delete",
        Some(audit),
        &[id],
        deleted_at,
        reason.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeleteAccepted {
            id,
            deleted_at: iso(&deleted_at),
            audit_id,
        }),
    )
        .into_response())
}
