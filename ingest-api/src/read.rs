//! Read endpoints: the list view (offset and keyset paging, filters) and one trace by id (with an
//! optional read-your-writes wait). Reads only need Postgres, never the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::{Postgres, QueryBuilder};
use tunix_pipeline::db::ErrorCause;
use tunix_schemas::pg_text;
use uuid::Uuid;

use crate::error::ApiError;
use crate::ingest::iso;
use crate::AppState;

/// Default and maximum page sizes (the seed's).
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest `limit`.
pub const MAX_LIMIT: i64 = 100;
/// Upper bound of a single read query; past it the answer is 503. Also Postgres's
/// `statement_timeout` on ingest-api's connections, so an abandoned query stops there too.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One row of the list view (never the payload).
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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

/// Parsed `GET /api/traces` parameters.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    /// `limit`.
    pub limit: i64,
    /// `offset`.
    pub offset: i64,
    /// Decoded `cursor`: list strictly after this `(created_at, id)`.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    /// `trace_version`.
    pub trace_version: Option<String>,
    /// `created_after` (inclusive).
    pub created_after: Option<DateTime<Utc>>,
    /// `created_before` (exclusive).
    pub created_before: Option<DateTime<Utc>>,
}

fn param_error(param: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::InvalidParam {
        param,
        msg: msg.into(),
        location: "query",
    }
}

fn parse_int(param: &'static str, v: &str, min: i64, max: Option<i64>) -> Result<i64, ApiError> {
    let n: i64 = v.trim().parse().map_err(|_| {
        param_error(
            param,
            format!("Input should be a valid integer, unable to parse string as an integer ({param}={v:?})"),
        )
    })?;
    if n < min {
        return Err(param_error(
            param,
            format!("Input should be greater than or equal to {min} ({param}={n})"),
        ));
    }
    if let Some(max) = max {
        if n > max {
            return Err(param_error(
                param,
                format!("Input should be less than or equal to {max} ({param}={n})"),
            ));
        }
    }
    Ok(n)
}

/// The earliest instant PostgreSQL's `timestamptz` holds (4714-11-24 00:00 UTC BC, Julian day 0),
/// in microseconds since the Unix epoch. The latest (294276 AD) is beyond every instant chrono
/// parses, so only this bound needs checking.
pub const PG_MIN_MICROS: i64 = -210_866_803_200_000_000;

/// 422 unless `t` is an instant PostgreSQL can compare with (checked before any query, so a
/// client's out-of-range value never reaches the database and is never mistaken for an outage).
fn representable(param: &'static str, t: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if t.timestamp_micros() < PG_MIN_MICROS {
        return Err(param_error(
            param,
            format!("Input should be on or after 4714-11-24T00:00:00Z BC, the earliest instant stored ({param}={})", t.to_rfc3339()),
        ));
    }
    Ok(t)
}

/// Parses an ISO-8601 instant: RFC 3339 with an offset, a UTC date-time without one, or a date.
/// Instants before PostgreSQL's earliest are refused with 422.
pub fn parse_instant(param: &'static str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return representable(param, t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f") {
        return representable(param, t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return representable(
            param,
            d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
        );
    }
    Err(param_error(
        param,
        format!(
            "Input should be an ISO-8601 datetime such as 2026-11-22T09:30:00Z ({param}={v:?})"
        ),
    ))
}

/// Encodes a keyset cursor (opaque to clients).
pub fn encode_cursor(created_at: &DateTime<Utc>, id: &Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}:{id}", created_at.timestamp_micros()))
}

fn decode_cursor(v: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let raw = URL_SAFE_NO_PAD.decode(v.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(3, ':');
    if parts.next()? != "v1" {
        return None;
    }
    let micros: i64 = parts.next()?.parse().ok()?;
    let id = Uuid::parse_str(parts.next()?).ok()?;
    // Our cursors hold stored instants; one outside PostgreSQL's range was forged.
    if micros < PG_MIN_MICROS {
        return None;
    }
    Some((DateTime::<Utc>::from_timestamp_micros(micros)?, id))
}

impl ListQuery {
    /// Parses the raw query string with the seed's rules and messages.
    pub fn parse(raw: Option<&str>) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery {
            limit: DEFAULT_LIMIT,
            ..ListQuery::default()
        };
        let mut offset_given = false;
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "limit" => q.limit = parse_int("limit", &v, 1, Some(MAX_LIMIT))?,
                "offset" => {
                    q.offset = parse_int("offset", &v, 0, None)?;
                    offset_given = q.offset > 0;
                }
                "cursor" if !v.trim().is_empty() => {
                    q.after = Some(decode_cursor(&v).ok_or_else(|| {
                        param_error(
                            "cursor",
                            "invalid cursor: pass back next_cursor from a previous page unchanged",
                        )
                    })?)
                }
                "trace_version" if !v.is_empty() => {
                    if v.chars().count() > tunix_schemas::TRACE_VERSION_MAX_CHARS {
                        return Err(param_error(
                            "trace_version",
                            "String should have at most 64 characters",
                        ));
                    }
                    q.trace_version = Some(v.into_owned());
                }
                "created_after" if !v.is_empty() => {
                    q.created_after = Some(parse_instant("created_after", &v)?)
                }
                "created_before" if !v.is_empty() => {
                    q.created_before = Some(parse_instant("created_before", &v)?)
                }
                _ => {} // unknown parameters are ignored, as FastAPI does
            }
        }
        if q.after.is_some() && offset_given {
            return Err(param_error(
                "offset",
                "offset cannot be combined with cursor; use one paging mode",
            ));
        }
        Ok(q)
    }

    fn sql(&self) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new(
            "SELECT id, created_at, trace_version, step_count, prompt_preview, payload_bytes FROM trace_list WHERE true",
        );
        if let Some(v) = &self.trace_version {
            // The column holds pg_text-encoded values (NUL escaped): encode to compare exactly.
            b.push(" AND trace_version = ")
                .push_bind(pg_text::encode(v).into_owned());
        }
        if let Some(t) = &self.created_after {
            b.push(" AND created_at >= ").push_bind(*t);
        }
        if let Some(t) = &self.created_before {
            b.push(" AND created_at < ").push_bind(*t);
        }
        if let Some((t, id)) = &self.after {
            b.push(" AND (created_at, id) < (")
                .push_bind(*t)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        b.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(self.limit + 1);
        if self.offset > 0 {
            b.push(" OFFSET ").push_bind(self.offset);
        }
        b
    }
}

fn timed_out(state: &AppState) -> ApiError {
    ApiError::unavailable(
        format!(
            "the query took longer than the {} s read limit; narrow the filters or page with cursor",
            QUERY_TIMEOUT.as_secs()
        ),
        state.cfg.retry_after_secs,
    )
}

/// Maps a failed read query by its cause: an outage or the read limit is 503 (retry later), a
/// value PostgreSQL cannot represent is 422 (the client's mistake; parameters are validated
/// before querying, so this is a safety net), anything else is our bug (500).
fn db_error(state: &AppState, e: &sqlx::Error) -> ApiError {
    match tunix_pipeline::db::cause(e) {
        ErrorCause::Unavailable => {
            tracing::warn!(error = %e, "read query failed; answering 503");
            ApiError::unavailable(
                "the database is unavailable; retry shortly",
                state.cfg.retry_after_secs,
            )
        }
        ErrorCause::TimedOut => timed_out(state),
        ErrorCause::Input => {
            tracing::info!(error = %e, "read query refused a parameter value; answering 422");
            ApiError::InvalidParam {
                param: "query",
                msg: format!("a parameter is outside what the database can represent: {e}"),
                location: "query",
            }
        }
        ErrorCause::Internal => {
            tracing::error!(error = %e, "read query failed on a bug; answering 500");
            ApiError::Internal
        }
    }
}

async fn bounded<T>(
    state: &AppState,
    fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(QUERY_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(db_error(state, &e)),
        Err(_) => Err(timed_out(state)),
    }
}

/// The list parameters are documented from the same type that parses them, with the same limits.
impl utoipa::IntoParams for ListQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Type};
        let param = |name: &str, description: &str, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        let int = |min: i64, max: Option<i64>, default: i64| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min as f64))
                .maximum(max.map(|m| m as f64))
                .default(Some(default.into()))
        };
        let text = || ObjectBuilder::new().schema_type(Type::String);
        vec![
            param("limit", "Page size.", int(1, Some(MAX_LIMIT), DEFAULT_LIMIT)),
            param(
                "offset",
                "Rows to skip (offset paging); not with cursor.",
                int(0, None, 0),
            ),
            param(
                "cursor",
                "next_cursor of the previous page (keyset paging: page N costs the same as page 1).",
                text(),
            ),
            param(
                "trace_version",
                "Only this trace_version (exact match, at most 64 characters).",
                text().max_length(Some(tunix_schemas::TRACE_VERSION_MAX_CHARS)),
            ),
            param(
                "created_after",
                "Only traces created at or after this ISO-8601 instant.",
                text(),
            ),
            param(
                "created_before",
                "Only traces created before this ISO-8601 instant.",
                text(),
            ),
        ]
    }
}

/// `GET /api/traces`.
#[utoipa::path(
    get,
    path = "/api/traces",
    tag = "read",
    summary = "List traces, newest first",
    description = "Ordered by (created_at, id) descending. Offset paging (next_offset) as in the seed API, or keyset paging with the opaque cursor (next_cursor). Filters combine with both.",
    params(ListQuery),
    responses(
        (status = 200, body = ListPage),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 422, description = "A parameter is invalid; loc names it", body = crate::openapi::ValidationErrorBody),
        (status = 503, description = "Postgres unavailable", body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ListPage>, ApiError> {
    let q = ListQuery::parse(raw.as_deref())?;
    let mut rows: Vec<ListItem> =
        bounded(&state, q.sql().build_query_as().fetch_all(&state.pool)).await?;
    let more = rows.len() as i64 > q.limit;
    rows.truncate(q.limit as usize);
    for row in &mut rows {
        decode_text(&mut row.trace_version);
        decode_text(&mut row.prompt_preview);
    }
    let next_cursor = if more {
        rows.last().map(|r| encode_cursor(&r.created_at, &r.id))
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

/// Restores a value the read models keep `pg_text`-encoded (NUL escaped).
fn decode_text(value: &mut String) {
    if let std::borrow::Cow::Owned(original) = pg_text::decode(value) {
        *value = original;
    }
}

/// Parses a trace id. Besides the canonical hyphenated form, the spellings Python's `uuid.UUID`
/// (and so the seed API) accepted resolve to the same trace: no hyphens, braces, `urn:uuid:`,
/// any case. Answers always carry the canonical form.
pub(crate) fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim()).map_err(|e| ApiError::InvalidParam {
        param: "id",
        msg: format!("Input should be a valid UUID, {e}"),
        location: "path",
    })
}

/// `GET /api/traces/{id}` body; the payload is embedded as stored.
#[derive(Serialize)]
struct TraceBody {
    id: Uuid,
    created_at: String,
    trace_version: String,
    payload: Box<RawValue>,
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
        (status = 200, body = crate::openapi::TraceOut),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "detail contains \"not found\"", body = crate::openapi::ErrorBody),
        (status = 422, description = "Malformed id or wait_ms", body = crate::openapi::ValidationErrorBody),
        (status = 503, description = "Postgres unavailable", body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
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
        let row = bounded(
            &state,
            sqlx::query!(
                r#"SELECT id, created_at, trace_version, payload::text AS "payload!"
                   FROM traces WHERE id = $1"#,
                id
            )
            .fetch_optional(&state.pool),
        )
        .await?
        .map(|r| (r.id, r.created_at, r.trace_version, r.payload));
        if let Some((id, created_at, mut trace_version, payload)) = row {
            decode_text(&mut trace_version);
            let payload = RawValue::from_string(payload).map_err(|e| {
                tracing::error!(%id, error = %e, "stored payload is not JSON");
                ApiError::Internal
            })?;
            return Ok(Json(TraceBody {
                id,
                created_at: iso(&created_at),
                trace_version,
                payload,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_follow_the_seed_rules() {
        let q = ListQuery::parse(None).unwrap();
        assert_eq!((q.limit, q.offset), (20, 0));
        let q = ListQuery::parse(Some(
            "limit=100&offset=5&trace_version=1.0&created_after=2026-01-01",
        ))
        .unwrap();
        assert_eq!(
            (q.limit, q.offset, q.trace_version.as_deref()),
            (100, 5, Some("1.0"))
        );
        assert_eq!(
            q.created_after.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        for (raw, param) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=abc", "limit"),
            ("offset=-1", "offset"),
            ("created_before=yesterday", "created_before"),
            ("cursor=garbage", "cursor"),
        ] {
            match ListQuery::parse(Some(raw)) {
                Err(ApiError::InvalidParam { param: p, .. }) => assert_eq!(p, param, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn instants_are_refused_below_what_postgres_stores() {
        let min = DateTime::<Utc>::from_timestamp_micros(PG_MIN_MICROS).unwrap();
        assert_eq!(
            min.to_rfc3339(),
            "-4713-11-24T00:00:00+00:00",
            "Julian day 0"
        );
        let q = ListQuery::parse(Some("created_after=-4713-11-24")).unwrap();
        assert_eq!(q.created_after, Some(min));
        for raw in [
            "created_after=-4713-11-23",
            "created_before=-4713-11-23T23:59:59.999999",
            "created_before=-9999-01-01",
        ] {
            match ListQuery::parse(Some(raw)) {
                Err(ApiError::InvalidParam { param, .. }) => {
                    assert_eq!(param, raw.split('=').next().unwrap(), "{raw}")
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
        let forged = |micros: i64| URL_SAFE_NO_PAD.encode(format!("v1:{micros}:{}", Uuid::nil()));
        assert!(ListQuery::parse(Some(&format!("cursor={}", forged(PG_MIN_MICROS)))).is_ok());
        for micros in [PG_MIN_MICROS - 1, i64::MIN, i64::MAX] {
            match ListQuery::parse(Some(&format!("cursor={}", forged(micros)))) {
                Err(ApiError::InvalidParam { param, .. }) => assert_eq!(param, "cursor"),
                other => panic!("{micros}: {other:?}"),
            }
        }
    }

    #[test]
    fn alternative_uuid_spellings_are_the_same_id() {
        let id = parse_id("0191d6e2-7b7a-7c3e-8f00-123456789abc").unwrap();
        for spelling in [
            "0191d6e27b7a7c3e8f00123456789abc",
            "{0191d6e2-7b7a-7c3e-8f00-123456789abc}",
            "urn:uuid:0191d6e2-7b7a-7c3e-8f00-123456789abc",
            "0191D6E2-7B7A-7C3E-8F00-123456789ABC",
        ] {
            assert_eq!(parse_id(spelling).unwrap(), id, "{spelling}");
        }
        assert!(parse_id("0191d6e2-7b7a-7c3e-8f00-123456789ab").is_err());
    }

    #[test]
    fn cursors_round_trip_and_offsets_do_not_mix_with_them() {
        let t = DateTime::<Utc>::from_timestamp_micros(1_763_786_096_123_456).unwrap();
        let id = Uuid::now_v7();
        let c = encode_cursor(&t, &id);
        let q = ListQuery::parse(Some(&format!("cursor={c}"))).unwrap();
        assert_eq!(q.after, Some((t, id)));
        assert!(ListQuery::parse(Some(&format!("cursor={c}&offset=10"))).is_err());
        // Offsets in RFC 3339 with a percent-encoded plus sign.
        let q = ListQuery::parse(Some("created_before=2026-11-22T10%3A00%3A00%2B02%3A00")).unwrap();
        assert_eq!(
            q.created_before.unwrap().to_rfc3339(),
            "2026-11-22T08:00:00+00:00"
        );
    }
}
