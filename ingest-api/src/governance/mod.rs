//! Governance: bulk deletes by filter, retention sweeps, and the audit log.
//!
//! Both kinds of mass erasure are *operations* (`erasure_operations`): a filter, a `created_before`
//! cutoff, the number of traces that matched, and how many are erased so far. A background
//! runner ([`run_operations`]) erases them page by page through the same path as `DELETE`
//! ([`crate::ingest::erase`]), at most `ERASURE_RATE_PER_SECOND`. Each page skips ids already
//! recorded as deleted, so an operation interrupted by a crash resumes where it stopped when any
//! ingest-api instance starts its runner; a Postgres advisory lock keeps two instances from
//! running the same one.
//!
//! - **Bulk delete** (`POST /api/deletions`, `admin`): a dry run answers the count and a
//!   confirmation token bound to the filter, the cutoff taken at the dry run and that count
//!   (valid [`TOKEN_TTL_SECONDS`]); the confirmation with the token starts the operation, unless
//!   the count under the same cutoff changed (409). `GET /api/deletions/{id}` shows progress;
//!   `DELETE /api/deletions/{id}` cancels after the current page.
//! - **Retention** (`RETENTION_DAYS`): every `RETENTION_SWEEP_INTERVAL_SECONDS`, an operation
//!   with the cutoff now − `RETENTION_DAYS` and no other filter.
//! - **Audit**: every delete, bulk delete and sweep appends an `ErasureRequested` event naming
//!   who asked (an API key id, never the key) and when; the projector stores them and
//!   `GET /api/audit` lists them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use tunix_schemas::{ErasureRequested, ErrorKind, Loc, ValidationErrors};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::ingest::{iso, now};
use crate::list::ListQuery;
use crate::read::{bounded, parse_id};
use crate::AppState;

/// How long a dry run's confirmation token stays valid.
pub const TOKEN_TTL_SECONDS: i64 = 600;
/// Traces erased per page (one append and one Postgres statement each).
const PAGE: i64 = 200;
/// `requested_by` of retention sweeps.
pub const RETENTION: &str = "retention";

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

fn canonical_filter(filter: &BTreeMap<String, Vec<String>>) -> Value {
    Value::Object(filter.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn parse_request_filter(
    filter: Option<&Value>,
) -> Result<(BTreeMap<String, Vec<String>>, ListQuery), ApiError> {
    let mut errs = ValidationErrors::default();
    let parsed = crate::datasets::parse_filter(filter, &Loc::body(), &mut errs);
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
fn operation_query(mut query: ListQuery, cutoff: DateTime<Utc>) -> ListQuery {
    query.created_before = Some(query.created_before.map_or(cutoff, |c| c.min(cutoff)));
    query
}

async fn count(state: &AppState, query: &ListQuery) -> Result<i64, ApiError> {
    let mut b = query.erasure_count_sql();
    bounded(state, b.build_query_scalar::<i64>().fetch_one(&state.pool)).await
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
        (status = 400, description = "Neither dry_run nor token", body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 409, description = "The token does not fit this filter, or the count changed", body = crate::openapi::ErrorBody),
        (status = 410, description = "The token expired or was used", body = crate::openapi::ErrorBody),
        (status = 422, description = "Bad filter; errors name body.filter.<parameter>", body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn request_deletion(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
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
    let filter_json = canonical_filter(&filter);
    let requested_by = caller.map_or_else(|| Caller::anonymous().0, |c| c.0 .0);
    let reason: Option<String> = req.reason.map(|r| r.chars().take(500).collect());
    match (req.dry_run, req.token) {
        (true, _) => {
            let cutoff = now();
            let matched = count(&state, &operation_query(query, cutoff)).await?;
            // 244 random bits (two v4 UUIDs' worth); only its digest is stored.
            let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
            let expires_at = cutoff + chrono::Duration::seconds(TOKEN_TTL_SECONDS);
            bounded(
                &state,
                sqlx::query(
                    "INSERT INTO erasure_operations
                       (id, filter, created_before, requested_by, reason, state, matched,
                        token_digest, expires_at)
                     VALUES ($1, $2, $3, $4, $5, 'planned', $6, $7, $8)",
                )
                .bind(Uuid::now_v7())
                .bind(&filter_json)
                .bind(cutoff)
                .bind(&requested_by)
                .bind(&reason)
                .bind(matched)
                .bind(digest(&token))
                .bind(expires_at)
                .execute(&state.pool),
            )
            .await?;
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
        (false, Some(token)) => {
            let row = bounded(
                &state,
                sqlx::query(
                    "SELECT id, filter, created_before, matched, state, expires_at
                     FROM erasure_operations WHERE token_digest = $1",
                )
                .bind(digest(&token))
                .fetch_optional(&state.pool),
            )
            .await?
            .ok_or_else(|| {
                ApiError::Conflict("unknown token: run the dry run with this filter first".into())
            })?;
            let id: Uuid = row.get("id");
            let planned_filter: Value = row.get("filter");
            let cutoff: DateTime<Utc> = row.get("created_before");
            let planned: i64 = row.get("matched");
            let op_state: String = row.get("state");
            let expires_at: Option<DateTime<Utc>> = row.get("expires_at");
            if planned_filter != filter_json {
                return Err(ApiError::Conflict(format!(
                    "the token was issued for another filter ({planned_filter}); run the dry run with this one"
                )));
            }
            if op_state != "planned" || expires_at.is_some_and(|e| e < Utc::now()) {
                return Err(ApiError::Gone(
                    "the token expired or was already used; run the dry run again".into(),
                ));
            }
            let matched = count(&state, &operation_query(query, cutoff)).await?;
            if matched != planned {
                return Err(ApiError::Conflict(format!(
                    "{matched} traces match now under the dry run's cutoff {}, not {planned}: \
                     something changed them meanwhile; run the dry run again",
                    iso(&cutoff)
                )));
            }
            let requested_at = now();
            let audit = ErasureRequested {
                id,
                action: "bulk_delete".into(),
                requested_by: requested_by.clone(),
                requested_at,
                trace_id: None,
                filter: Some(filter_json.to_string()),
                created_before: Some(cutoff),
                count: Some(matched),
                reason: reason.clone(),
            };
            state
                .producer
                .append(&[tunix_schemas::TraceEvent::ErasureRequested(audit)])
                .await
                .map_err(|e| crate::ingest::produce_error(&state, e))?;
            // Only one confirmation wins a token.
            let started = bounded(
                &state,
                sqlx::query(
                    "UPDATE erasure_operations
                     SET state = 'running', requested_by = $2, reason = COALESCE($3, reason),
                         updated_at = now(), expires_at = NULL
                     WHERE id = $1 AND state = 'planned'",
                )
                .bind(id)
                .bind(&requested_by)
                .bind(&reason)
                .execute(&state.pool),
            )
            .await?;
            if started.rows_affected() == 0 {
                return Err(ApiError::Gone("the token was already used".into()));
            }
            let op = operation(&state, id).await?.ok_or(ApiError::Internal)?;
            let mut response = (StatusCode::ACCEPTED, Json(op)).into_response();
            response.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("/api/deletions/{id}")).expect("ASCII"),
            );
            Ok(response)
        }
        (false, None) => Err(ApiError::BadRequest(
            "send {\"filter\": ..., \"dry_run\": true} first, then the same filter with the token it answers".into(),
        )),
    }
}

async fn operation(state: &AppState, id: Uuid) -> Result<Option<Operation>, ApiError> {
    let row = bounded(
        state,
        sqlx::query(
            "SELECT id, state, filter, created_before, matched, deleted, requested_by, reason,
                    error, created_at, updated_at, finished_at
             FROM erasure_operations WHERE id = $1 AND state <> 'planned'",
        )
        .bind(id)
        .fetch_optional(&state.pool),
    )
    .await?;
    Ok(row.map(|r| Operation {
        id: r.get("id"),
        state: r.get("state"),
        filter: r.get("filter"),
        created_before: iso(&r.get("created_before")),
        matched: r.get("matched"),
        deleted: r.get("deleted"),
        requested_by: r.get("requested_by"),
        reason: r.get("reason"),
        error: r.get("error"),
        created_at: iso(&r.get("created_at")),
        updated_at: iso(&r.get("updated_at")),
        finished_at: r
            .get::<Option<DateTime<Utc>>, _>("finished_at")
            .map(|t| iso(&t)),
    }))
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
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn get_deletion(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Operation>, ApiError> {
    let id = parse_id(&id)?;
    operation(&state, id)
        .await?
        .map(Json)
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
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody),
        (status = 409, description = "Not running (done, failed or cancelled)", body = crate::openapi::ErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn cancel_deletion(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Operation>, ApiError> {
    let id = parse_id(&id)?;
    let cancelled = bounded(
        &state,
        sqlx::query(
            "UPDATE erasure_operations
             SET state = 'cancelled', finished_at = now(), updated_at = now()
             WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .execute(&state.pool),
    )
    .await?;
    let op = operation(&state, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no deletion {id}")))?;
    if cancelled.rows_affected() == 0 {
        return Err(ApiError::Conflict(format!(
            "deletion {id} is {}, not running",
            op.state
        )));
    }
    Ok(Json(op))
}

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
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
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
        .map(|v| crate::list::parse_instant("before", v))
        .transpose()?;
    let rows = bounded(
        &state,
        sqlx::query(
            "SELECT id, action, requested_by, requested_at, trace_id, filter, created_before,
                    count, reason
             FROM audit_log
             WHERE ($1::timestamptz IS NULL OR requested_at < $1)
               AND ($2::text IS NULL OR action = $2)
             ORDER BY requested_at DESC, id DESC LIMIT $3",
        )
        .bind(before)
        .bind(&q.action)
        .bind(limit)
        .fetch_all(&state.pool),
    )
    .await?;
    let text = |v: String| tunix_schemas::pg_text::decode(&v).into_owned();
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.get::<Uuid, _>("id"),
                "action": text(r.get("action")),
                "requested_by": text(r.get("requested_by")),
                "requested_at": iso(&r.get("requested_at")),
                "trace_id": r.get::<Option<Uuid>, _>("trace_id"),
                "filter": r.get::<Option<Value>, _>("filter"),
                "created_before": r.get::<Option<DateTime<Utc>>, _>("created_before").map(|t| iso(&t)),
                "count": r.get::<Option<i64>, _>("count"),
                "reason": r.get::<Option<String>, _>("reason").map(text),
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

/// Runs bulk deletes and retention sweeps until `shutdown`.
pub async fn run_operations(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = shutdown.cancelled() => return,
        }
        ticks += 1;
        if ticks % 300 == 1 {
            // Dry runs nobody confirmed: their tokens expired long ago.
            let _ = sqlx::query(
                "DELETE FROM erasure_operations
                 WHERE state = 'planned' AND expires_at < now() - interval '1 day'",
            )
            .execute(&state.pool)
            .await;
        }
        if let Some(days) = state.cfg.retention_days {
            if let Err(e) = schedule_retention(&state, days).await {
                tracing::warn!(error = %e, "cannot schedule a retention sweep; retrying");
            }
        }
        if let Err(e) = run_pending(&state, &shutdown).await {
            tracing::warn!(error = %e, "erasure operation interrupted; it resumes shortly");
        }
        update_gauges(&state).await;
    }
}

async fn update_gauges(state: &AppState) {
    let Ok(rows) = sqlx::query(
        "SELECT requested_by = 'retention' AS retention, COALESCE(sum(matched - deleted), 0)::bigint AS remaining
         FROM erasure_operations WHERE state = 'running' GROUP BY 1",
    )
    .fetch_all(&state.pool)
    .await
    else {
        return;
    };
    let (mut bulk, mut retention) = (0i64, 0i64);
    for r in rows {
        let remaining: i64 = r.get("remaining");
        if r.get::<bool, _>("retention") {
            retention += remaining.max(0);
        } else {
            bulk += remaining.max(0);
        }
    }
    metrics::gauge!(crate::metrics::names::BULK_DELETE_REMAINING).set(bulk as f64);
    metrics::gauge!(crate::metrics::names::RETENTION_BACKLOG).set(retention as f64);
}

/// Starts a retention sweep when none runs and the last one started an interval ago. Under an
/// advisory lock, so that replicas start one between them.
async fn schedule_retention(state: &AppState, days: u32) -> Result<(), sqlx::Error> {
    let mut tx = state.pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7367001)")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(());
    }
    let last: Option<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT state, created_at FROM erasure_operations WHERE requested_by = $1
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(RETENTION)
    .fetch_optional(&mut *tx)
    .await?;
    let interval = chrono::Duration::from_std(state.cfg.retention_sweep_interval)
        .unwrap_or(chrono::Duration::hours(1));
    if let Some((st, at)) = last {
        if st == "running" || Utc::now() - at < interval {
            return Ok(());
        }
    }
    let cutoff = now() - chrono::Duration::days(i64::from(days));
    let query = operation_query(ListQuery::default(), cutoff);
    let mut b = query.erasure_count_sql();
    let matched: i64 = b.build_query_scalar().fetch_one(&mut *tx).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO erasure_operations (id, filter, created_before, requested_by, state, matched)
         VALUES ($1, '{}'::jsonb, $2, $3, 'running', $4)",
    )
    .bind(id)
    .bind(cutoff)
    .bind(RETENTION)
    .bind(matched)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(%id, days, cutoff = %iso(&cutoff), matched, "retention sweep started");
    if matched > 0 {
        let audit = ErasureRequested {
            id,
            action: RETENTION.into(),
            requested_by: RETENTION.into(),
            requested_at: now(),
            trace_id: None,
            filter: None,
            created_before: Some(cutoff),
            count: Some(matched),
            reason: Some(format!("RETENTION_DAYS={days}")),
        };
        if let Err(e) = state
            .producer
            .append(&[tunix_schemas::TraceEvent::ErasureRequested(audit)])
            .await
        {
            // The sweep runs anyway (deletions are what must happen); the audit record of a
            // sweep is appended when the broker is back, by the next one.
            tracing::warn!(error = %e, %id, "cannot append the sweep's audit record");
        }
    }
    Ok(())
}

/// Runs each running operation this instance can lock, page by page, to the end.
async fn run_pending(
    state: &AppState,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM erasure_operations WHERE state = 'running' ORDER BY created_at",
    )
    .fetch_all(&state.pool)
    .await?;
    for id in ids {
        // A session-level lock on a dedicated connection: released if this process dies.
        let mut lock = state.pool.acquire().await?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(7367002, hashtext($1::text))")
                .bind(id)
                .fetch_one(&mut *lock)
                .await?;
        if !locked {
            continue;
        }
        let result = run_one(state, id, shutdown).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock(7367002, hashtext($1::text))")
            .bind(id)
            .execute(&mut *lock)
            .await;
        result?;
    }
    Ok(())
}

async fn run_one(
    state: &AppState,
    id: Uuid,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let row = sqlx::query(
        "SELECT filter, created_before, requested_by, reason, state FROM erasure_operations WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&state.pool)
    .await?;
    if row.get::<String, _>("state") != "running" {
        return Ok(());
    }
    let filter: Value = row.get("filter");
    let cutoff: DateTime<Utc> = row.get("created_before");
    let retention = row.get::<String, _>("requested_by") == RETENTION;
    let via = if retention {
        "retention"
    } else {
        "bulk_delete"
    };
    let reason: Option<String> = row.get("reason");
    let query = match parse_request_filter(Some(&filter)) {
        Ok((_, q)) => operation_query(q, cutoff),
        Err(e) => {
            sqlx::query(
                "UPDATE erasure_operations SET state = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(format!("stored filter no longer parses: {e}"))
            .execute(&state.pool)
            .await?;
            return Ok(());
        }
    };
    let per_page = PAGE.min(i64::from(state.cfg.erasure_rate)).max(1);
    let pause = Duration::from_secs_f64(per_page as f64 / f64::from(state.cfg.erasure_rate));
    tracing::info!(%id, via, "erasure operation running");
    let mut last_gauges = tokio::time::Instant::now();
    update_gauges(state).await;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        let mut b = query.erasure_page_sql(per_page);
        let page: Vec<Uuid> = b.build_query_scalar().fetch_all(&state.pool).await?;
        if page.is_empty() {
            // Every matched trace is erased now. The running count can be off after a crash
            // (a page appended but not counted, or appended twice), so it is settled here.
            sqlx::query(
                "UPDATE erasure_operations
                 SET state = 'done', deleted = matched, finished_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&state.pool)
            .await?;
            if retention {
                metrics::counter!(crate::metrics::names::RETENTION_SWEEPS).increment(1);
            }
            tracing::info!(%id, via, "erasure operation done");
            return Ok(());
        }
        crate::ingest::erase(state, via, None, &page, now(), reason.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let still_running = sqlx::query(
            "UPDATE erasure_operations SET deleted = deleted + $2, updated_at = now()
             WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .bind(page.len() as i64)
        .execute(&state.pool)
        .await?;
        if still_running.rows_affected() == 0 {
            tracing::info!(%id, via, "erasure operation cancelled");
            update_gauges(state).await;
            return Ok(());
        }
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            update_gauges(state).await;
            last_gauges = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + pause) => {},
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}
