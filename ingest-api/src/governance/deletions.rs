//! Bulk deletes: `POST /api/deletions` (a dry run, then its confirmation), progress
//! (`GET /api/deletions/{id}`) and cancellation (`DELETE /api/deletions/{id}`). The erasing
//! itself is the runner's ([`super::runner`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tunix_schemas::{ErasureRequested, ErrorKind, Loc, TraceEvent, ValidationErrors};
use uuid::Uuid;

use super::operations::{self, NewPlan, OpState, OperationRow};
use crate::http::auth::Caller;
use crate::http::body::read_json;
use crate::http::common::{iso, now, parse_id, produce_error};
use crate::http::db::bounded;
use crate::http::error::ApiError;
use crate::traces::filter::ListQuery;
use crate::traces::filter_object::parse_filter_object;
use crate::AppState;

/// How long a dry run's confirmation token stays valid.
pub const TOKEN_TTL_SECONDS: i64 = 600;
/// Largest request body.
const BODY_MAX: usize = 64 * 1024;

/// A bulk delete request: the dry run, or its confirmation.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeletionRequest {
    /// The list filter as JSON, as in a dataset definition: `{"meta.run": "17", "tag": ["a"],
    /// "q": "paris", "trace_version": "1", "created_after": "...", "created_before": "...",
    /// "score.correct": "lt:0.5"}`. An empty filter matches every trace.
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    /// `true`: count only, answer a confirmation token.
    #[serde(default)]
    pub dry_run: bool,
    /// The dry run's token, to start the deletion.
    pub token: Option<String>,
    /// Free text for the audit record.
    pub reason: Option<String>,
}

/// The answer of a dry run.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DryRun {
    /// Traces that match the filter and were created before `created_before`.
    pub matched: i64,
    /// The cutoff: traces created from now on are never swept by this deletion.
    pub created_before: String,
    /// Send back with the same filter to delete them.
    pub token: String,
    /// When the token stops being accepted.
    pub expires_at: String,
}

/// A bulk delete or retention sweep, as `GET /api/deletions/{id}` shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Operation {
    /// The operation's id (also its audit record's).
    pub id: Uuid,
    /// `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// The filter.
    #[schema(value_type = Object)]
    pub filter: Value,
    /// Only traces created before this are erased.
    pub created_before: String,
    /// Traces that matched when it started.
    pub matched: i64,
    /// Traces erased so far.
    pub deleted: i64,
    /// Who asked: an API key id, `anonymous`, or `retention`.
    pub requested_by: String,
    /// Free text given with the request.
    pub reason: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it started.
    pub created_at: String,
    /// Last progress.
    pub updated_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
}

impl From<OperationRow> for Operation {
    fn from(r: OperationRow) -> Operation {
        Operation {
            id: r.id,
            state: r.state,
            filter: r.filter,
            created_before: iso(&r.created_before),
            matched: r.matched,
            deleted: r.deleted,
            requested_by: r.requested_by,
            reason: r.reason,
            error: r.error,
            created_at: iso(&r.created_at),
            updated_at: iso(&r.updated_at),
            finished_at: r.finished_at.as_ref().map(iso),
        }
    }
}

fn canonical_filter(filter: &BTreeMap<String, Vec<String>>) -> Value {
    Value::Object(filter.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// Parses a stored or requested filter object (errors under `body.filter.<parameter>`).
pub(super) fn parse_request_filter(
    filter: Option<&Value>,
) -> Result<(BTreeMap<String, Vec<String>>, ListQuery), ApiError> {
    let mut errs = ValidationErrors::default();
    let parsed = parse_filter_object(filter, &Loc::body(), &mut errs);
    match parsed {
        Some(p) if errs.is_empty() => Ok(p),
        _ => Err(ApiError::Validation(errs)),
    }
}

/// A deletion's filter and reason are stored and audited as JSON (`jsonb`), which cannot hold
/// the NUL character: refused at the door, with the field's path, instead of failing later in
/// Postgres or in the projector.
fn refuse_nul(
    filter: &BTreeMap<String, Vec<String>>,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let mut errs = ValidationErrors::default();
    let msg = "the NUL character (\\u0000) cannot be stored in a deletion's filter or reason";
    for (k, values) in filter {
        if k.contains('\0') || values.iter().any(|v| v.contains('\0')) {
            errs.push(
                Loc::body().child("filter").child(k.clone()),
                ErrorKind::ValueError,
                msg,
            );
        }
    }
    if reason.is_some_and(|r| r.contains('\0')) {
        errs.push(Loc::body().child("reason"), ErrorKind::ValueError, msg);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errs))
    }
}

/// The query that selects what an operation erases: the filter, with `created_before` lowered
/// to the cutoff.
pub(super) fn operation_query(mut query: ListQuery, cutoff: DateTime<Utc>) -> ListQuery {
    query.created_before = Some(query.created_before.map_or(cutoff, |c| c.min(cutoff)));
    query
}

/// How many traces an operation with `query` erases.
async fn count(state: &AppState, query: &ListQuery) -> Result<i64, ApiError> {
    let mut b = query.erasure_count_sql();
    let statement = b.build_query_scalar::<i64>().persistent(false);
    bounded(state, statement.fetch_one(&state.pool)).await
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /api/deletions`.
#[utoipa::path(
    post,
    path = "/api/deletions",
    tag = "governance",
    summary = "Delete every trace that matches a filter",
    description = "Two steps. {filter, dry_run: true} answers 200 with the number of matching traces created before now, that cutoff, and a confirmation token (10 minutes). {filter, token} with the same filter starts the deletion: 202 with the operation (Location: /api/deletions/{id}); 409 if the filter differs from the token's or the count under the same cutoff changed; 410 if the token expired. Traces arriving after the dry run are never swept.",
    request_body = DeletionRequest,
    responses(
        (status = 200, description = "Dry run", body = DryRun),
        (status = 202, description = "Deletion started", body = Operation),
        (status = 400, description = "Neither dry_run nor token", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "The token does not fit this filter, or the count changed", body = crate::http::openapi::ErrorBody),
        (status = 410, description = "The token expired or was used", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Bad filter; errors name body.filter.<parameter>", body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn request_deletion(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_json(&state, &headers, body, BODY_MAX).await?;
    let req: DeletionRequest = serde_json::from_slice(&body).map_err(|e| {
        let mut errs = ValidationErrors::default();
        errs.push(
            Loc::body(),
            ErrorKind::JsonInvalid,
            format!("JSON decode error: {e}"),
        );
        ApiError::Validation(errs)
    })?;
    let (filter, query) = parse_request_filter(req.filter.as_ref())?;
    refuse_nul(&filter, req.reason.as_deref())?;
    let asked = Asked {
        filter: canonical_filter(&filter),
        query,
        requested_by: caller.map_or_else(|| Caller::anonymous().0, |c| c.0 .0),
        reason: req.reason.map(|r| r.chars().take(500).collect()),
    };
    match (req.dry_run, req.token) {
        (true, _) => dry_run(&state, asked).await,
        (false, Some(token)) => confirm(&state, asked, &token).await,
        (false, None) => Err(ApiError::BadRequest(
            "send {\"filter\": ..., \"dry_run\": true} first, then the same filter with the token it answers".into(),
        )),
    }
}

/// A bulk delete request, parsed.
struct Asked {
    filter: Value,
    query: ListQuery,
    requested_by: String,
    reason: Option<String>,
}

/// Counts what the filter matches now, and stores the plan under a new token's digest.
async fn dry_run(state: &AppState, asked: Asked) -> Result<Response, ApiError> {
    let cutoff = now();
    let matched = count(state, &operation_query(asked.query, cutoff)).await?;
    // 244 random bits (two v4 UUIDs' worth); only its digest is stored.
    let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let expires_at = cutoff + chrono::Duration::seconds(TOKEN_TTL_SECONDS);
    let plan = NewPlan {
        filter: &asked.filter,
        created_before: cutoff,
        requested_by: &asked.requested_by,
        reason: asked.reason.as_deref(),
        matched,
        token_digest: &digest(&token),
        expires_at,
    };
    bounded(state, operations::insert_plan(&state.pool, plan)).await?;
    Ok((
        StatusCode::OK,
        Json(DryRun {
            matched,
            created_before: iso(&cutoff),
            token,
            expires_at: iso(&expires_at),
        }),
    )
        .into_response())
}

/// Starts the planned deletion `token` names, if the filter and the count still fit it.
async fn confirm(state: &AppState, asked: Asked, token: &str) -> Result<Response, ApiError> {
    let plan = bounded(
        state,
        operations::plan_by_token(&state.pool, &digest(token)),
    )
    .await?
    .ok_or_else(|| {
        ApiError::Conflict("unknown token: run the dry run with this filter first".into())
    })?;
    if plan.filter != asked.filter {
        return Err(ApiError::Conflict(format!(
            "the token was issued for another filter ({}); run the dry run with this one",
            plan.filter
        )));
    }
    if plan.state != OpState::Planned.as_str() || plan.expires_at.is_some_and(|e| e < Utc::now()) {
        return Err(ApiError::Gone(
            "the token expired or was already used; run the dry run again".into(),
        ));
    }
    let cutoff = plan.created_before;
    let matched = count(state, &operation_query(asked.query, cutoff)).await?;
    if matched != plan.matched {
        return Err(ApiError::Conflict(format!(
            "{matched} traces match now under the dry run's cutoff {}, not {}: \
             something changed them meanwhile; run the dry run again",
            iso(&cutoff),
            plan.matched
        )));
    }
    let id = plan.id;
    let audit = ErasureRequested {
        id,
        action: "bulk_delete".into(),
        requested_by: asked.requested_by.clone(),
        requested_at: now(),
        trace_id: None,
        filter: Some(asked.filter.to_string()),
        created_before: Some(cutoff),
        count: Some(matched),
        reason: asked.reason.clone(),
    };
    state
        .producer
        .append(&[TraceEvent::ErasureRequested(audit)])
        .await
        .map_err(|e| produce_error(state, e))?;
    // Only one confirmation wins a token.
    let started = operations::start(
        &state.pool,
        id,
        &asked.requested_by,
        asked.reason.as_deref(),
    );
    if !bounded(state, started).await? {
        return Err(ApiError::Gone("the token was already used".into()));
    }
    let op = bounded(state, operations::get(&state.pool, id))
        .await?
        .ok_or(ApiError::Internal)?;
    let mut response = (StatusCode::ACCEPTED, Json(Operation::from(op))).into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/deletions/{id}")).expect("ASCII"),
    );
    Ok(response)
}

/// `GET /api/deletions/{id}`.
#[utoipa::path(
    get,
    path = "/api/deletions/{id}",
    tag = "governance",
    summary = "Progress of a bulk delete or retention sweep",
    params(("id" = String, Path, description = "Operation id")),
    responses(
        (status = 200, body = Operation),
        (status = 404, body = crate::http::openapi::ErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn get_deletion(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Operation>, ApiError> {
    let id = parse_id(&id)?;
    bounded(&state, operations::get(&state.pool, id))
        .await?
        .map(|op| Json(op.into()))
        .ok_or_else(|| ApiError::NotFound(format!("no deletion {id}")))
}

/// `DELETE /api/deletions/{id}`: stops a running bulk delete or retention sweep after its
/// current page. What it erased stays erased.
#[utoipa::path(
    delete,
    path = "/api/deletions/{id}",
    tag = "governance",
    summary = "Cancel a running bulk delete or retention sweep",
    description = "The operation stops after its current page (at most 200 traces); traces already erased stay erased. 200 with the operation, state 'cancelled'; 409 if it is not running.",
    params(("id" = String, Path, description = "Operation id")),
    responses(
        (status = 200, body = Operation),
        (status = 404, body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Not running (done, failed or cancelled)", body = crate::http::openapi::ErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn cancel_deletion(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Operation>, ApiError> {
    let id = parse_id(&id)?;
    let cancelled = bounded(&state, operations::cancel(&state.pool, id)).await?;
    let op: Operation = bounded(&state, operations::get(&state.pool, id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no deletion {id}")))?
        .into();
    if !cancelled {
        return Err(ApiError::Conflict(format!(
            "deletion {id} is {}, not running",
            op.state
        )));
    }
    Ok(Json(op))
}
