//! Read endpoints: the list view (offset and keyset paging, filters) and one trace by id (with an
//! optional read-your-writes wait). Reads only need Postgres, never the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::{Connection, PgConnection};
use tunix_schemas::pg_text;
use uuid::Uuid;

use super::filter::{parse_int, ListQuery};
use crate::http::common::{iso, parse_id};
use crate::http::db::bounded;
use crate::http::error::ApiError;
use crate::AppState;

/// One row of the list view (never the payload).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListItem {
    /// Trace id.
    pub id: Uuid,
    /// Acceptance time.
    #[serde(serialize_with = "ser_iso")]
    #[schema(value_type = String, example = "2026-11-22T09:30:00.123456Z")]
    pub created_at: DateTime<Utc>,
    /// Version label.
    pub trace_version: String,
    /// Number of steps.
    pub step_count: i32,
    /// The first characters of the prompt.
    pub prompt_preview: String,
    /// Size of the stored JSON payload in bytes.
    pub payload_bytes: i32,
    /// The trace's scores by name.
    #[schema(value_type = Object)]
    pub scores: Scores,
    /// `meta.tags` (its strings of at most 256 characters), in order.
    pub tags: Vec<String>,
    /// The model, from `meta`: `gen_ai.request.model`, else `gen_ai.response.model`, else
    /// `model` (a string of at most 256 characters); `null` when none.
    pub model: Option<String>,
}

/// One score as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScoreOut {
    /// The value.
    pub value: f64,
    /// Who judged.
    pub source: Option<String>,
    /// Free text.
    pub comment: Option<String>,
    /// When it was recorded.
    #[serde(serialize_with = "ser_iso")]
    #[schema(value_type = String)]
    pub recorded_at: DateTime<Utc>,
}

/// Scores by name (`{name: {value, source, comment, recorded_at}}`).
pub type Scores = std::collections::BTreeMap<String, ScoreOut>;

/// A trace's scores as one array per column of the same rows, in the same order (each NULL
/// when the trace has none), as the read statements aggregate them: one statement answers with
/// rows and their scores.
#[derive(Debug, Default, sqlx::FromRow)]
pub(crate) struct ScoreArrays {
    names: Option<Vec<String>>,
    vals: Option<Vec<f64>>,
    sources: Option<Vec<Option<String>>>,
    comments: Option<Vec<Option<String>>>,
    recorded: Option<Vec<DateTime<Utc>>>,
}

impl ScoreArrays {
    /// The scores by name, text restored from the read models' encoding.
    fn into_scores(self) -> Scores {
        let text = |v: String| pg_text::decode(&v).into_owned();
        let columns = self.names.unwrap_or_default().into_iter().zip(
            self.vals.unwrap_or_default().into_iter().zip(
                self.sources.unwrap_or_default().into_iter().zip(
                    self.comments
                        .unwrap_or_default()
                        .into_iter()
                        .zip(self.recorded.unwrap_or_default()),
                ),
            ),
        );
        columns
            .map(|(name, (value, (source, (comment, recorded_at))))| {
                let score = ScoreOut {
                    value,
                    source: source.map(text),
                    comment: comment.map(text),
                    recorded_at,
                };
                (text(name), score)
            })
            .collect()
    }
}

/// One row of a page statement (`traces/filter_sql.rs`): the list columns and the scores.
#[derive(sqlx::FromRow)]
struct ListRow {
    id: Uuid,
    created_at: DateTime<Utc>,
    trace_version: String,
    step_count: i32,
    prompt_preview: String,
    payload_bytes: i32,
    #[sqlx(flatten)]
    scores: ScoreArrays,
    tags: Option<Vec<String>>,
    model: Option<String>,
}

impl ListRow {
    fn into_item(self) -> ListItem {
        let mut item = ListItem {
            id: self.id,
            created_at: self.created_at,
            trace_version: self.trace_version,
            step_count: self.step_count,
            prompt_preview: self.prompt_preview,
            payload_bytes: self.payload_bytes,
            scores: self.scores.into_scores(),
            tags: self.tags.unwrap_or_default(),
            model: self.model,
        };
        decode_text(&mut item.trace_version);
        decode_text(&mut item.prompt_preview);
        item.tags.iter_mut().for_each(decode_text);
        if let Some(m) = item.model.as_mut() {
            decode_text(m);
        }
        item
    }
}

/// A stored trace, as `GET /api/traces/{id}` and the comparison read it.
pub(crate) struct StoredTrace {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub trace_version: String,
    /// The payload text, exactly as stored.
    pub payload: String,
    /// Its scores (the projector's view).
    pub scores: Scores,
}

/// Reads one trace from the writer's table, with its scores, in one statement (one round trip:
/// the by-id read is the hottest one). A trace recorded as deleted is not returned, even before
/// the writer removed its row.
pub(crate) async fn stored_trace(
    state: &AppState,
    id: Uuid,
) -> Result<Option<StoredTrace>, ApiError> {
    let row = bounded(state, async {
        let mut conn = state.reads.acquire().await?;
        let row = sqlx::query!(
            r#"SELECT t.id, t.created_at, t.trace_version, t.payload::text AS "payload!",
                      sc.names AS "names: Vec<String>", sc.vals AS "vals: Vec<f64>",
                      sc.sources AS "sources: Vec<Option<String>>",
                      sc.comments AS "comments: Vec<Option<String>>",
                      sc.recorded AS "recorded: Vec<DateTime<Utc>>"
               FROM traces t
               LEFT JOIN LATERAL (
                   SELECT array_agg(s.name) AS names, array_agg(s.value) AS vals,
                          array_agg(s.source) AS sources, array_agg(s.comment) AS comments,
                          array_agg(s.recorded_at) AS recorded
                   FROM trace_scores s WHERE s.trace_id = t.id
               ) sc ON true
               WHERE t.id = $1
                 AND NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = $1)"#,
            id
        )
        .fetch_optional(&mut *conn)
        .await?;
        conn.release();
        Ok(row)
    })
    .await?;
    Ok(row.map(|r| {
        let scores = ScoreArrays {
            names: r.names,
            vals: r.vals,
            sources: r.sources,
            comments: r.comments,
            recorded: r.recorded,
        };
        StoredTrace {
            id: r.id,
            created_at: r.created_at,
            trace_version: pg_text::decode(&r.trace_version).into_owned(),
            payload: r.payload,
            scores: scores.into_scores(),
        }
    }))
}

/// The payload as raw JSON for an answer.
pub(crate) fn raw_payload(t: &StoredTrace) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(t.payload.clone()).map_err(|e| {
        tracing::error!(id = %t.id, error = %e, "stored payload is not JSON");
        ApiError::Internal
    })
}

fn ser_iso<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(t))
}

/// The `pagination` block.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    /// Page size used.
    pub limit: i64,
    /// Offset used (0 in cursor mode).
    pub offset: i64,
    /// Offset of the next page; null on the last page or in cursor mode.
    pub next_offset: Option<i64>,
    /// Opaque cursor for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/traces` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListPage {
    /// Newest first, ties broken by id (descending).
    pub data: Vec<ListItem>,
    /// Paging state.
    pub pagination: Pagination,
}

/// `GET /api/traces`.
#[utoipa::path(
    get,
    path = "/api/traces",
    tag = "read",
    summary = "List traces, newest first",
    description = "Ordered by (created_at, id) descending. Offset paging (next_offset) as in the original service, or keyset paging with the opaque cursor (next_cursor). Filters combine with both.",
    params(ListQuery),
    responses(
        (status = 200, body = ListPage),
        (status = 422, description = "A parameter is invalid; loc names it", body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ListPage>, ApiError> {
    let q = ListQuery::parse(raw.as_deref())?;
    let mut rows = page(&state, &q).await?;
    let more = rows.len() as i64 > q.limit;
    rows.truncate(q.limit as usize);
    let rows: Vec<ListItem> = rows.into_iter().map(ListRow::into_item).collect();
    let next_cursor = if more {
        rows.last().map(|r| q.cursor_after(&r.created_at, &r.id))
    } else {
        None
    };
    Ok(Json(ListPage {
        pagination: Pagination {
            limit: q.limit,
            offset: q.offset,
            next_offset: (more && q.after.is_none()).then(|| q.offset.saturating_add(q.limit)),
            next_cursor,
        },
        data: rows,
    }))
}

/// Rows of the newest-first window a selective page walks before it reads matches first.
pub const WINDOW_ROWS: i64 = 10_000;

/// One page of the list (with one extra row when another page follows); see
/// [`ListQuery::boundary_sql`] for why selective filters start with a window.
/// Each statement runs unnamed (planned for its values) unless [`ListQuery::reuses_plan`].
async fn page(state: &AppState, q: &ListQuery) -> Result<Vec<ListRow>, ApiError> {
    bounded(state, async {
        let mut conn = state.reads.acquire().await?;
        let rows = page_on(&mut conn, q).await?;
        conn.release();
        Ok(rows)
    })
    .await
}

async fn page_on(conn: &mut PgConnection, q: &ListQuery) -> Result<Vec<ListRow>, sqlx::Error> {
    if q.offset > 0 || !q.has_selective_filters() {
        let mut b = q.sql();
        let statement = b.build_query_as().persistent(q.reuses_plan());
        return statement.fetch_all(&mut *conn).await;
    }
    let mut rows: Vec<ListRow> = q
        .window_sql(WINDOW_ROWS)
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    let wanted = q.limit + 1;
    if rows.len() as i64 >= wanted {
        // Dense: the window held the page (it stopped reading as soon as it had it).
        return Ok(rows);
    }
    let boundary: Option<(DateTime<Utc>, Uuid)> = q
        .boundary_sql(WINDOW_ROWS)
        .build_query_as()
        .persistent(false)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(boundary) = boundary {
        // The boundary is read after the window, in another snapshot: rows that arrived in
        // between move it newer, over rows the window already returned. Continue after the
        // older of the two, so no trace is listed twice (rows between the window's last match
        // and the boundary did not match in the window's snapshot; reading them again is safe).
        let after = match rows.last() {
            Some(last) => boundary.min((last.created_at, last.id)),
            None => boundary,
        };
        let take = wanted - rows.len() as i64;
        // The window proved the filter sparse, so the candidates must come from its index,
        // one by one: a sequential scan, or a hash or merge join that reads the whole list, is
        // never right here, though a floored estimate (a prefix query's, say) can make the
        // planner believe otherwise.
        let mut tx = conn.begin().await?;
        crate::http::db::read_from_indexes(&mut tx).await?;
        let more: Vec<ListRow> = q
            .sparse_sql(after, take)
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.extend(more);
    }
    Ok(rows)
}

/// Restores a value the read models keep `pg_text`-encoded (NUL escaped).
fn decode_text(value: &mut String) {
    if let std::borrow::Cow::Owned(original) = pg_text::decode(value) {
        *value = original;
    }
}

/// `GET /api/traces/{id}` body; the payload is embedded as stored.
#[derive(Serialize)]
struct TraceBody {
    id: Uuid,
    created_at: String,
    trace_version: String,
    payload: Box<RawValue>,
    scores: Scores,
}

/// `GET /api/traces/{id}[?wait_ms=N]`: with `wait_ms`, waits up to that long (capped by
/// `WAIT_MAX_MS`) for the trace to become readable before answering 404.
#[utoipa::path(
    get,
    path = "/api/traces/{id}",
    tag = "read",
    summary = "Read one trace",
    params(
        ("id" = String, Path, description = "Trace id (UUID)"),
        ("wait_ms" = Option<u64>, Query, description = "Read-your-writes: wait up to this many ms (at most WAIT_MAX_MS) for the trace to become readable"),
    ),
    responses(
        (status = 200, body = crate::http::openapi::TraceOut),
        (status = 404, description = "detail contains \"not found\"", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Malformed id or wait_ms", body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut wait = Duration::ZERO;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if k == "wait_ms" {
            let max = state.cfg.wait_max.as_millis() as i64;
            wait = Duration::from_millis(parse_int("wait_ms", &v, 0, Some(max))? as u64);
        }
    }
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(trace) = stored_trace(&state, id).await? {
            return Ok(Json(TraceBody {
                id: trace.id,
                created_at: iso(&trace.created_at),
                payload: raw_payload(&trace)?,
                trace_version: trace.trace_version,
                scores: trace.scores,
            })
            .into_response());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ApiError::NotFound(format!("Trace {id} not found")));
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}
