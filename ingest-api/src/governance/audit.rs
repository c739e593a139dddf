//! `GET /api/audit`: who erased what (from the projector's `audit_log`), newest first.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::common::iso;
use crate::http::db::bounded;
use crate::http::error::ApiError;
use crate::traces::filter::parse_instant;
use crate::AppState;

/// `GET /api/audit` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Entries per page, 1-500 (default 50).
    pub limit: Option<i64>,
    /// Only entries before this time (ISO-8601): the previous page's last `requested_at`.
    pub before: Option<String>,
    /// Only this action: `delete`, `bulk_delete` or `retention`.
    pub action: Option<String>,
}

/// `GET /api/audit`.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "governance",
    summary = "Who erased what, newest first",
    description = "Every DELETE, bulk delete and retention sweep: action, requested_by (an API key id: 'key-' and 12 hex digits of the key's SHA-256; 'anonymous' without auth; 'retention'), requested_at, and the trace id or the filter, cutoff and count. Never any trace content. Visible once the projector applied the event.",
    params(AuditQuery),
    responses(
        (status = 200, description = "{data: [...], next_before}"),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::InvalidParam {
            param: "limit".into(),
            msg: "Input should be between 1 and 500".into(),
            location: "query",
        });
    }
    if let Some(action) = q.action.as_deref() {
        if !["delete", "bulk_delete", "retention"].contains(&action) {
            return Err(ApiError::InvalidParam {
                param: "action".into(),
                msg: format!("Input should be delete, bulk_delete or retention ({action:?})"),
                location: "query",
            });
        }
    }
    let before = q
        .before
        .as_deref()
        .map(|v| parse_instant("before", v))
        .transpose()?;
    let rows = bounded(
        &state,
        sqlx::query!(
            "SELECT id, action, requested_by, requested_at, trace_id, filter, created_before,
                    count, reason
             FROM audit_log
             WHERE ($1::timestamptz IS NULL OR requested_at < $1)
               AND ($2::text IS NULL OR action = $2)
             ORDER BY requested_at DESC, id DESC LIMIT $3",
            before,
            q.action,
            limit
        )
        .fetch_all(&state.pool),
    )
    .await?;
    let text = |v: String| tunix_schemas::pg_text::decode(&v).into_owned();
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "action": text(r.action),
                "requested_by": text(r.requested_by),
                "requested_at": iso(&r.requested_at),
                "trace_id": r.trace_id,
                "filter": r.filter,
                "created_before": r.created_before.as_ref().map(iso),
                "count": r.count,
                "reason": r.reason.map(text),
            })
        })
        .collect();
    let next_before = (data.len() as i64 == limit)
        .then(|| {
            data.last()
                .and_then(|d| d["requested_at"].as_str().map(str::to_owned))
        })
        .flatten();
    Ok(Json(json!({ "data": data, "next_before": next_before })))
}
