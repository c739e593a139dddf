//! Datasets: frozen selections of traces, and their exports.
//!
//! Creating a dataset (`POST /api/datasets`, or the original's `POST /api/datasets/build`):
//!
//! 1. the definition is validated (its `filter` takes the list's parameters, parsed by the same
//!    code as `GET /api/traces`);
//! 2. `(name, version)` and its key `<name>-<version>` are claimed in `datasets` (state
//!    `building`), so a second creation with another definition is 409 and one with the same
//!    definition is idempotent;
//! 3. the members are selected in one repeatable-read snapshot of the read models (ids in the
//!    selection's order, then each member's scores), the split assigned
//!    (`schemas::dataset::assign_eval`);
//! 4. the membership goes to the topic as `DatasetMembers` chunks and is sealed by a
//!    `DatasetCreated` (all in the dataset's partition), and the answer waits, up to
//!    [`READY_WAIT`], for the projector to mark the build ready (201; 202 if it is still
//!    building).
//!
//! Membership therefore lives in the topic and survives a replay into an empty database; a
//! member is removed only by deleting its trace (exports omit it and count it in the
//! `X-Tunix-Omitted` header). Creation and export run without the read API's 5 s query limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sqlx::{Connection, Row};
use tunix_schemas::dataset::{
    self, assign_eval, check_name_version, dataset_key_text, Definition, ExportTrace, Format,
    MembershipDigest, RowContext, Selection, Split, CHUNK_MEMBERS,
};
use tunix_schemas::{
    pg_text, DatasetCreated, DatasetDeleted, DatasetMember, DatasetMembers, ErrorKind, FrozenScore,
    Loc, TraceEvent, ValidationErrors,
};
use uuid::Uuid;

use crate::body::read_limited;
use crate::error::ApiError;
use crate::ingest::{iso, now, produce_error, rejected, require_json};
use crate::list::ListQuery;
use crate::parquet_export::{ParquetRows, ParquetTrace};
use crate::read::db_error;
use crate::AppState;

/// How long a creation waits for the projector to mark the new build ready.
pub const READY_WAIT: Duration = Duration::from_secs(10);
/// A `building` claim older than this is taken over by a retry with the same definition (the
/// creation that made it died before sealing).
pub const STALE_CLAIM: Duration = Duration::from_secs(120);
/// Largest request body of a creation.
const BODY_MAX: usize = 64 * 1024;
/// The original's `limit` bounds and default.
const BUILD_LIMIT_MAX: i64 = 10_000;
const BUILD_LIMIT_DEFAULT: i64 = 100;
/// Chunks appended per produce call (bounds the memory of a large creation).
const CHUNKS_PER_APPEND: usize = 8;

/// A dataset as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetOut {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The original service's identifier, `<name>-<version>`.
    pub key: String,
    /// `building`, `ready` or `deleted`.
    pub state: String,
    /// The build whose membership this is.
    pub build_id: Uuid,
    /// The definition: `{filter, selection, seed, limit, split}`.
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Members (`null` while building).
    pub member_count: Option<i64>,
    /// Members in the eval split.
    pub eval_count: Option<i64>,
    /// Members in the train split.
    pub train_count: Option<i64>,
    /// sha256 (hex) of the membership (ids and splits in order).
    pub digest: Option<String>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Deletion time.
    pub deleted_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DatasetRow {
    name: String,
    version: String,
    key: String,
    state: String,
    build_id: Uuid,
    definition: String,
    member_count: Option<i64>,
    eval_count: Option<i64>,
    digest: Option<String>,
    created_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    claimed_at: DateTime<Utc>,
}

impl DatasetRow {
    fn out(&self) -> DatasetOut {
        DatasetOut {
            name: self.name.clone(),
            version: self.version.clone(),
            key: self.key.clone(),
            state: self.state.clone(),
            build_id: self.build_id,
            definition: serde_json::from_str(&self.definition).unwrap_or(Value::Null),
            member_count: self.member_count,
            eval_count: self.eval_count,
            train_count: self.member_count.zip(self.eval_count).map(|(m, e)| m - e),
            digest: self.digest.clone(),
            created_at: self.created_at.as_ref().map(iso),
            deleted_at: self.deleted_at.as_ref().map(iso),
        }
    }
}

const ROW_COLUMNS: &str = "name, version, key, state, build_id, definition, member_count, \
                           eval_count, digest, created_at, deleted_at, claimed_at";

async fn find(
    state: &AppState,
    name: &str,
    version: &str,
    key: &str,
) -> Result<Option<DatasetRow>, ApiError> {
    sqlx::query_as::<_, DatasetRow>(&format!(
        "SELECT {ROW_COLUMNS} FROM datasets WHERE (name = $1 AND version = $2) OR key = $3
         ORDER BY (name = $1 AND version = $2) DESC LIMIT 1"
    ))
    .bind(name)
    .bind(version)
    .bind(key)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(state, &e))
}

async fn find_by_key(state: &AppState, key: &str) -> Result<Option<DatasetRow>, ApiError> {
    sqlx::query_as::<_, DatasetRow>(&format!(
        "SELECT {ROW_COLUMNS} FROM datasets WHERE key = $1"
    ))
    .bind(key)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(state, &e))
}

/// A creation request, as parsed.
struct Request {
    name: String,
    version: String,
    definition: Definition,
    query: ListQuery,
}

fn filter_value(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Number(n) => Some(vec![n.to_string()]),
        Value::Bool(b) => Some(vec![b.to_string()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                filter_value(i)
                    .filter(|v| v.len() == 1)
                    .map(|mut v| v.remove(0))
            })
            .collect(),
        _ => None,
    }
}

/// Parses a list filter given as JSON (`{"meta.run": "17", "q": "paris", "tag": ["a", "b"]}`):
/// the one encoding of filters shared by datasets, bulk deletes and the CLI. Keys are the list's
/// query parameters, values a string, number or boolean or a non-empty array of them (a repeated
/// parameter). Problems are pushed to `errs` under `<root>.filter.<key>`; returns the filter and
/// its parsed query when there were none.
pub(crate) fn parse_filter(
    value: Option<&Value>,
    root: &Loc,
    errs: &mut ValidationErrors,
) -> Option<(BTreeMap<String, Vec<String>>, ListQuery)> {
    let before = errs.errors().len();
    let mut filter: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) => {
            for (k, v) in f {
                if matches!(k.as_str(), "limit" | "offset" | "cursor") {
                    errs.push(
                        root.child("filter").child(k.clone()),
                        ErrorKind::ValueError,
                        format!("{k} is a paging parameter, not a filter; use the dataset's limit"),
                    );
                    continue;
                }
                match filter_value(v) {
                    Some(values) if !values.is_empty() => {
                        filter.insert(k.clone(), values);
                    }
                    _ => errs.push(
                        root.child("filter").child(k.clone()),
                        ErrorKind::ValueError,
                        "a filter value is a string, number or boolean, or a non-empty array of them",
                    ),
                }
            }
        }
        Some(_) => errs.push(
            root.child("filter"),
            ErrorKind::DictType,
            "filter should be an object of list parameters, e.g. {\"meta.run\": \"17\", \"q\": \"paris\"}",
        ),
    }
    // The filter, parsed by the list's own rules; its errors name the parameter under `filter`.
    let raw: String = {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, values) in &filter {
            for v in values {
                ser.append_pair(k, v);
            }
        }
        ser.finish()
    };
    let query = match ListQuery::parse(Some(&raw)) {
        Ok(q) => Some(q),
        Err(ApiError::InvalidParam { param, msg, .. }) => {
            errs.push(
                root.child("filter").child(param.to_string()),
                ErrorKind::ValueError,
                msg,
            );
            None
        }
        Err(other) => {
            errs.push(
                root.child("filter"),
                ErrorKind::ValueError,
                other.to_string(),
            );
            None
        }
    };
    match query {
        Some(q) if errs.errors().len() == before => Some((filter, q)),
        _ => None,
    }
}

/// Parses `{name, version, filter, selection, seed?, limit?, split?}`; every problem at once.
fn parse_request(body: &[u8]) -> Result<Request, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let root = Loc::body();
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let mut errs = ValidationErrors::default();
        errs.push(
            root.clone(),
            ErrorKind::JsonInvalid,
            format!("JSON decode error: {e}"),
        );
        errs
    })?;
    let Value::Object(obj) = value else {
        errs.push(root, ErrorKind::DictType, "Input should be an object");
        return Err(errs);
    };
    let text = |k: &str, errs: &mut ValidationErrors| match obj.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => {
            errs.push(
                root.child(k.to_owned()),
                ErrorKind::Missing,
                "Field required",
            );
            String::new()
        }
        Some(_) => {
            errs.push(
                root.child(k.to_owned()),
                ErrorKind::StringType,
                "Input should be a string",
            );
            String::new()
        }
    };
    let name = text("name", &mut errs);
    let version = text("version", &mut errs);
    if !name.is_empty() && !version.is_empty() {
        if let Err(e) = check_name_version(&name, &version) {
            errs.extend(e);
        }
        if version == "export.jsonl" {
            errs.push(
                root.child("version"),
                ErrorKind::ValueError,
                "version 'export.jsonl' is reserved",
            );
        }
    }
    let integer = |k: &str, errs: &mut ValidationErrors, loc: Loc, v: Option<&Value>| match v {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(_) => {
            errs.push(loc, ErrorKind::IntType, format!("{k} should be an integer"));
            None
        }
    };
    let parsed_filter = parse_filter(obj.get("filter"), &root, &mut errs);
    let selection = match obj.get("selection") {
        None | Some(Value::Null) => Selection::Latest,
        Some(Value::String(s)) if s == "latest" => Selection::Latest,
        Some(Value::String(s)) if s == "random" => Selection::Random,
        Some(_) => {
            errs.push(
                root.child("selection"),
                ErrorKind::ValueError,
                "selection should be 'latest' or 'random'",
            );
            Selection::Latest
        }
    };
    let seed = integer("seed", &mut errs, root.child("seed"), obj.get("seed"));
    if selection == Selection::Random && seed.is_none() && !obj.contains_key("seed") {
        errs.push(
            root.child("seed"),
            ErrorKind::Missing,
            "a random selection needs a seed (an integer)",
        );
    }
    let limit = integer("limit", &mut errs, root.child("limit"), obj.get("limit"));
    if limit.is_some_and(|l| l < 1) {
        errs.push(
            root.child("limit"),
            ErrorKind::GreaterThanEqual,
            "limit should be at least 1",
        );
    }
    let split = match obj.get("split") {
        None | Some(Value::Null) => None,
        Some(Value::Object(s)) => {
            let loc = root.child("split");
            let fraction = match s.get("eval_fraction") {
                Some(Value::Number(n)) => n.as_f64().filter(|f| (0.0..=1.0).contains(f)),
                _ => None,
            };
            if fraction.is_none() {
                errs.push(
                    loc.child("eval_fraction"),
                    ErrorKind::ValueError,
                    "eval_fraction should be a number from 0 to 1",
                );
            }
            let seed = integer("seed", &mut errs, loc.child("seed"), s.get("seed"));
            if seed.is_none() && !s.contains_key("seed") {
                errs.push(loc.child("seed"), ErrorKind::Missing, "Field required");
            }
            fraction.zip(seed).map(|(eval_fraction, seed)| Split {
                eval_fraction,
                seed,
            })
        }
        Some(_) => {
            errs.push(
                root.child("split"),
                ErrorKind::DictType,
                "split should be {eval_fraction, seed}",
            );
            None
        }
    };
    let (filter, query) = match parsed_filter {
        Some((f, q)) => (f, Some(q)),
        None => (BTreeMap::new(), None),
    };
    match query {
        Some(query) if errs.is_empty() => Ok(Request {
            name,
            version,
            definition: Definition {
                filter,
                selection,
                seed: if selection == Selection::Random {
                    seed
                } else {
                    None
                },
                limit,
                split,
            },
            query,
        }),
        _ => Err(errs),
    }
}

/// The status a creation answers with: 201 created and ready, 200 already there with the same
/// definition, 202 still being built.
fn creation_status(row: &DatasetRow, created: bool) -> StatusCode {
    match (row.state.as_str(), created) {
        ("ready", true) => StatusCode::CREATED,
        ("ready", false) => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    }
}

/// The URL path of a dataset's resource.
fn resource_path(row: &DatasetRow) -> String {
    format!("/api/datasets/{}/{}", row.name, row.version)
}

/// The outcome of claiming `(name, version)`.
enum Claim {
    /// Ours to build, with this build id.
    Build(Uuid),
    /// Already created (or being created) with the same definition.
    Existing(Box<DatasetRow>),
}

async fn claim(state: &AppState, req: &Request, canonical: &str) -> Result<Claim, ApiError> {
    let key = dataset_key_text(&req.name, &req.version);
    for _ in 0..3 {
        if let Some(row) = find(state, &req.name, &req.version, &key).await? {
            if (row.name.as_str(), row.version.as_str())
                != (req.name.as_str(), req.version.as_str())
            {
                return Err(ApiError::Conflict(format!(
                    "the key {key:?} is taken by dataset {:?} version {:?}; choose another name or version",
                    row.name, row.version
                )));
            }
            if row.state == "deleted" {
                return Err(ApiError::Conflict(format!(
                    "dataset {key:?} was deleted; a name and version are never reused"
                )));
            }
            if row.definition != canonical {
                return Err(ApiError::Conflict(format!(
                    "dataset {key:?} exists with another definition: {}",
                    row.definition
                )));
            }
            let stale = row.state == "building"
                && Utc::now() - row.claimed_at
                    > chrono::Duration::from_std(STALE_CLAIM).expect("small");
            if !stale {
                return Ok(Claim::Existing(Box::new(row)));
            }
            // The creation that claimed it died before sealing: take the claim over.
            let build = Uuid::now_v7();
            let taken = sqlx::query(
                "UPDATE datasets SET build_id = $3, claimed_at = now()
                 WHERE name = $1 AND version = $2 AND build_id = $4 AND state = 'building'",
            )
            .bind(&req.name)
            .bind(&req.version)
            .bind(build)
            .bind(row.build_id)
            .execute(&state.pool)
            .await
            .map_err(|e| db_error(state, &e))?;
            if taken.rows_affected() == 1 {
                return Ok(Claim::Build(build));
            }
            continue;
        }
        let build = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO datasets (name, version, key, build_id, definition, state)
             VALUES ($1, $2, $3, $4, $5, 'building') ON CONFLICT DO NOTHING",
        )
        .bind(&req.name)
        .bind(&req.version)
        .bind(&key)
        .bind(build)
        .bind(canonical)
        .execute(&state.pool)
        .await
        .map_err(|e| db_error(state, &e))?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Build(build));
        }
    }
    Err(ApiError::unavailable(
        "the dataset is being claimed concurrently; retry",
        state.cfg.retry_after_secs,
    ))
}

/// Selects the members (one snapshot), assigns the split, and writes the events. Returns the
/// sealing event.
async fn build(
    state: &AppState,
    req: &Request,
    canonical: &str,
    build_id: Uuid,
) -> Result<DatasetCreated, ApiError> {
    let db = |e: sqlx::Error| db_error(state, &e);
    let mut conn = state.pool.acquire().await.map_err(db)?;
    let mut tx = conn.begin().await.map_err(db)?;
    for setting in [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        "SET LOCAL statement_timeout = 0",
    ] {
        sqlx::query(setting).execute(&mut *tx).await.map_err(db)?;
    }
    let random_seed = match req.definition.selection {
        Selection::Random => Some(req.definition.seed.unwrap_or_default()),
        Selection::Latest => None,
    };
    let ids: Vec<Uuid> = req
        .query
        .members_sql(random_seed, req.definition.limit)
        .build()
        .fetch(&mut *tx)
        .map_ok(|row| row.get::<Uuid, _>(0))
        .try_collect()
        .await
        .map_err(db)?;
    let eval = assign_eval(&ids, req.definition.split.as_ref());
    let mut digest = MembershipDigest::default();
    for (id, e) in ids.iter().zip(&eval) {
        digest.add(id, *e);
    }
    let chunks = ids.len().div_ceil(CHUNK_MEMBERS);
    let mut pending = Vec::with_capacity(CHUNKS_PER_APPEND);
    for (chunk, range) in (0..ids.len())
        .step_by(CHUNK_MEMBERS)
        .map(|start| (start, start..(start + CHUNK_MEMBERS).min(ids.len())))
        .enumerate()
        .map(|(n, (_, r))| (n, r))
    {
        let slice = &ids[range.clone()];
        let mut scores: std::collections::HashMap<Uuid, Vec<FrozenScore>> = Default::default();
        let rows = sqlx::query(
            "SELECT trace_id, name, value, source, recorded_at FROM trace_scores
             WHERE trace_id = ANY($1) ORDER BY trace_id, name",
        )
        .bind(slice)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        for row in rows {
            let source: Option<String> = row.get("source");
            scores
                .entry(row.get("trace_id"))
                .or_default()
                .push(FrozenScore {
                    name: pg_text::decode(row.get::<&str, _>("name")).into_owned(),
                    value: row.get("value"),
                    source: source.map(|s| pg_text::decode(&s).into_owned()),
                    recorded_at: row.get("recorded_at"),
                });
        }
        pending.push(TraceEvent::DatasetMembers(DatasetMembers {
            build_id,
            name: req.name.clone(),
            version: req.version.clone(),
            chunk: chunk as i32,
            first_position: range.start as i64,
            members: range
                .map(|n| DatasetMember {
                    trace_id: ids[n],
                    eval: eval[n],
                    scores: scores.remove(&ids[n]).unwrap_or_default(),
                })
                .collect(),
        }));
        if pending.len() == CHUNKS_PER_APPEND {
            state
                .producer
                .append(&pending)
                .await
                .map_err(|e| produce_error(state, e))?;
            pending.clear();
        }
    }
    tx.commit().await.map_err(db)?;
    let created = DatasetCreated {
        build_id,
        name: req.name.clone(),
        version: req.version.clone(),
        definition: canonical.to_owned(),
        member_count: ids.len() as i64,
        eval_count: eval.iter().filter(|e| **e).count() as i64,
        chunks: chunks as i32,
        digest: digest.finish(),
        created_at: now(),
    };
    pending.push(TraceEvent::DatasetCreated(created.clone()));
    state
        .producer
        .append(&pending)
        .await
        .map_err(|e| produce_error(state, e))?;
    Ok(created)
}

/// Creates the dataset (or finds the same one); returns its row and the status to answer with.
async fn create_from(state: &AppState, req: Request) -> Result<(StatusCode, DatasetRow), ApiError> {
    let canonical = req.definition.canonical();
    let build_id = match claim(state, &req, &canonical).await? {
        Claim::Existing(row) => return Ok((creation_status(&row, false), *row)),
        Claim::Build(b) => b,
    };
    let started = Instant::now();
    let created = build(state, &req, &canonical, build_id).await?;
    tracing::info!(
        name = %req.name, version = %req.version, members = created.member_count,
        ms = started.elapsed().as_millis() as u64, "dataset created"
    );
    let key = dataset_key_text(&req.name, &req.version);
    let deadline = Instant::now() + READY_WAIT;
    loop {
        let row = find(state, &req.name, &req.version, &key).await?;
        match row {
            Some(row) if row.state != "building" || Instant::now() >= deadline => {
                return Ok((creation_status(&row, true), row));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    require_json(headers)?;
    let (bytes, _) = read_limited(headers, body, BODY_MAX, state.cfg.body_read_timeout).await?;
    Ok(bytes)
}

/// `POST /api/datasets`: creates a frozen dataset.
#[utoipa::path(
    post,
    path = "/api/datasets",
    tag = "datasets",
    summary = "Create a dataset",
    description = "{name, version, filter, selection, seed?, limit?, split?}. `filter` takes the list's parameters (trace_version, created_after, created_before, meta.<key>, tag, q, score.<name>) as an object; arrays repeat a parameter. `selection`: latest (default) or random (needs `seed`). `split`: {eval_fraction, seed}. Membership is frozen at creation. 201 when ready; 200 when the same definition already exists; 202 when the projector has not finished yet; 409 when the name and version (or the key name-version) are taken by another definition or were deleted.",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, body = DatasetOut),
        (status = 200, body = DatasetOut),
        (status = 202, body = DatasetOut),
        (status = 409, body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
        (status = 503, body = crate::openapi::ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&state, &headers, body).await?;
    let req = parse_request(&bytes).map_err(|e| rejected(&state, e))?;
    let (status, row) = create_from(&state, req).await?;
    let mut resp = (status, Json(row.out())).into_response();
    if let Ok(v) = HeaderValue::from_str(&resource_path(&row)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The original's build request.
#[derive(Deserialize)]
struct BuildIn {
    dataset_name: Value,
    dataset_version: Value,
    #[serde(default)]
    filters: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    selection_strategy: Option<Value>,
    #[serde(default)]
    seed: Option<Value>,
}

/// `POST /api/datasets/build`: the original service's creation.
#[utoipa::path(
    post,
    path = "/api/datasets/build",
    tag = "datasets",
    summary = "Build a dataset (the original service's API)",
    description = "{dataset_name, dataset_version, filters: {meta key: value}, limit (1-10,000, default 100), selection_strategy: latest|random, seed} -> {dataset_key, build_id, trace_count, manifest_path}.",
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, body = Object),
        (status = 409, body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ValidationErrorBody),
    )
)]
pub async fn build_original(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&state, &headers, body).await?;
    let orig: BuildIn = serde_json::from_slice(&bytes).map_err(|e| {
        let mut errs = ValidationErrors::default();
        errs.push(Loc::body(), ErrorKind::JsonInvalid, format!("{e}"));
        rejected(&state, errs)
    })?;
    let limit = orig
        .limit
        .clone()
        .unwrap_or(Value::from(BUILD_LIMIT_DEFAULT));
    if !limit
        .as_i64()
        .is_some_and(|l| (1..=BUILD_LIMIT_MAX).contains(&l))
    {
        let mut errs = ValidationErrors::default();
        errs.push(
            Loc::body().child("limit"),
            ErrorKind::ValueError,
            format!("limit should be an integer from 1 to {BUILD_LIMIT_MAX}"),
        );
        return Err(rejected(&state, errs));
    }
    let filter: serde_json::Map<String, Value> = orig
        .filters
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (format!("meta.{k}"), v))
        .collect();
    let ours = serde_json::json!({
        "name": orig.dataset_name,
        "version": orig.dataset_version,
        "filter": filter,
        "selection": orig.selection_strategy.unwrap_or(Value::from("latest")),
        "seed": orig.seed,
        "limit": limit,
    });
    let req = parse_request(ours.to_string().as_bytes()).map_err(|e| rejected(&state, e))?;
    let (status, row) = create_from(&state, req).await?;
    Ok((
        if status == StatusCode::OK {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(serde_json::json!({
            "dataset_key": row.key,
            "build_id": row.build_id,
            "trace_count": row.member_count,
            "manifest_path": resource_path(&row),
        })),
    )
        .into_response())
}

/// `GET /api/datasets`: every dataset that is not deleted, by name and version.
#[utoipa::path(
    get,
    path = "/api/datasets",
    tag = "datasets",
    summary = "List datasets",
    responses((status = 200, body = Vec<DatasetOut>))
)]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let rows = sqlx::query_as::<_, DatasetRow>(&format!(
        "SELECT {ROW_COLUMNS} FROM datasets WHERE state <> 'deleted' ORDER BY name, version"
    ))
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(&state, &e))?;
    Ok(Json(rows.iter().map(DatasetRow::out).collect::<Vec<_>>()).into_response())
}

async fn existing(state: &AppState, name: &str, version: &str) -> Result<DatasetRow, ApiError> {
    let key = dataset_key_text(name, version);
    match find(state, name, version, &key).await? {
        Some(row) if row.name == name && row.version == version && row.state != "deleted" => {
            Ok(row)
        }
        Some(row) if row.name == name && row.version == version => Err(ApiError::NotFound(
            format!("dataset {key:?} not found: it was deleted"),
        )),
        _ => Err(ApiError::NotFound(format!("dataset {key:?} not found"))),
    }
}

/// `GET /api/datasets/{name}/{version}`.
#[utoipa::path(
    get,
    path = "/api/datasets/{name}/{version}",
    tag = "datasets",
    summary = "One dataset: definition, counts, digest",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = DatasetOut), (status = 404, body = crate::openapi::ErrorBody))
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(existing(&state, &name, &version).await?.out()).into_response())
}

/// `DELETE /api/datasets/{name}/{version}`: removes the dataset, not its traces.
#[utoipa::path(
    delete,
    path = "/api/datasets/{name}/{version}",
    tag = "datasets",
    summary = "Delete a dataset (its traces stay)",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 202, body = Object), (status = 404, body = crate::openapi::ErrorBody))
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let row = existing(&state, &name, &version).await?;
    let at = now();
    state
        .producer
        .append(&[TraceEvent::DatasetDeleted(DatasetDeleted {
            build_id: row.build_id,
            name: row.name.clone(),
            version: row.version.clone(),
            deleted_at: at,
        })])
        .await
        .map_err(|e| produce_error(&state, e))?;
    // Refuse the name at once, before the projector applies the event.
    sqlx::query(
        "UPDATE datasets SET state = 'deleted', deleted_at = $3 WHERE name = $1 AND version = $2",
    )
    .bind(&row.name)
    .bind(&row.version)
    .bind(at)
    .execute(&state.pool)
    .await
    .map_err(|e| db_error(&state, &e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"name": row.name, "version": row.version, "deleted_at": iso(&at)})),
    )
        .into_response())
}

/// Which members an export covers.
#[derive(Clone, Copy)]
enum SplitSel {
    All,
    Train,
    Eval,
}

/// What an export writes: JSONL rows of a format, or one Parquet file.
#[derive(Clone, Copy)]
enum ExportFormat {
    Jsonl(Format),
    Parquet,
}

fn export_params(raw: Option<&str>) -> Result<(ExportFormat, SplitSel), ApiError> {
    let mut format = ExportFormat::Jsonl(Format::Trace);
    let mut split = SplitSel::All;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "format" if v == "parquet" => format = ExportFormat::Parquet,
            "format" => {
                format = ExportFormat::Jsonl(Format::parse(&v).ok_or_else(|| {
                    ApiError::InvalidParam {
                        param: "format".into(),
                        msg: "format should be trace, tunix_sft, training_example, chat or parquet"
                            .into(),
                        location: "query",
                    }
                })?)
            }
            "split" => {
                split = match v.as_ref() {
                    "all" => SplitSel::All,
                    "train" => SplitSel::Train,
                    "eval" => SplitSel::Eval,
                    _ => {
                        return Err(ApiError::InvalidParam {
                            param: "split".into(),
                            msg: "split should be train, eval or all".into(),
                            location: "query",
                        })
                    }
                }
            }
            _ => {}
        }
    }
    Ok((format, split))
}

const EXPORT_CHUNK_BYTES: usize = 64 * 1024;

/// Where an export's rows go.
enum Output {
    Jsonl {
        format: Format,
        buf: Vec<u8>,
        encoder: Encoder,
    },
    Parquet(Box<ParquetRows>),
}

/// How an export's bytes are encoded on the wire (`Accept-Encoding`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// zstd when the client accepts it, else gzip, else none (`q=0` refuses a coding).
    fn negotiate(headers: &HeaderMap) -> Encoding {
        let mut gzip = false;
        let mut zstd = false;
        for v in headers.get_all(header::ACCEPT_ENCODING) {
            for item in v.to_str().unwrap_or_default().split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                match coding.as_str() {
                    "gzip" | "x-gzip" => gzip |= !refused,
                    "zstd" => zstd |= !refused,
                    _ => {}
                }
            }
        }
        if zstd {
            Encoding::Zstd
        } else if gzip {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

/// Encodes the export stream chunk by chunk.
enum Encoder {
    Identity(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(encoding: Encoding) -> std::io::Result<Encoder> {
        Ok(match encoding {
            Encoding::Identity => Encoder::Identity(Vec::new()),
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
            Encoding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    fn write(&mut self, raw: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Encoder::Identity(out) => {
                out.extend_from_slice(raw);
                Ok(())
            }
            Encoder::Gzip(e) => e.write_all(raw),
            Encoder::Zstd(e) => e.write_all(raw),
        }
    }

    /// The encoded bytes produced so far (only ever appended to, so taking them is safe).
    fn take(&mut self) -> Vec<u8> {
        match self {
            Encoder::Identity(out) => std::mem::take(out),
            Encoder::Gzip(e) => std::mem::take(e.get_mut()),
            Encoder::Zstd(e) => std::mem::take(e.get_mut()),
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Identity(out) => Ok(out),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// Streams the JSONL export of `row`: members in order, deleted traces omitted (counted in
/// `X-Tunix-Omitted`).
async fn export_response(
    state: Arc<AppState>,
    row: DatasetRow,
    format: ExportFormat,
    split: SplitSel,
    encoding: Encoding,
) -> Result<Response, ApiError> {
    // Parquet pages are compressed already.
    let encoding = match format {
        ExportFormat::Parquet => Encoding::Identity,
        ExportFormat::Jsonl(_) => encoding,
    };
    if row.state != "ready" {
        return Err(ApiError::unavailable(
            "the dataset is still being built; retry shortly",
            state.cfg.retry_after_secs,
        ));
    }
    let split_sql = match split {
        SplitSel::All => "",
        SplitSel::Train => " AND NOT m.eval",
        SplitSel::Eval => " AND m.eval",
    };
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(|e| db_error(&state, &e))?;
    // Members walk the (build_id, position) key in order and probe `traces` by id, so the first
    // row comes at once: a hash join would read every trace first, a sort every member. The
    // omitted count starts from the (few) deleted ids, not from every member (`OFFSET 0` keeps
    // the planner from turning that around).
    for setting in [
        "SET enable_hashjoin = off",
        "SET enable_mergejoin = off",
        "SET enable_sort = off",
        "SET enable_seqscan = off",
        "SET max_parallel_workers_per_gather = 0",
        "SET statement_timeout = 0",
    ] {
        sqlx::query(setting)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error(&state, &e))?;
    }
    let omitted: i64 = match sqlx::query_scalar(&format!(
        "SELECT count(*) FROM trace_deletions d
         CROSS JOIN LATERAL (SELECT 1 FROM dataset_members m
                             WHERE m.trace_id = d.id AND m.build_id = $1{split_sql} OFFSET 0) x"
    ))
    .bind(row.build_id)
    .fetch_one(&mut *conn)
    .await
    {
        Ok(n) => n,
        Err(e) => {
            conn.close_on_drop(); // it carries the settings above
            return Err(db_error(&state, &e));
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let build_id = row.build_id;
    tokio::spawn(async move {
        let sql = format!(
            "SELECT m.trace_id, m.eval, m.scores::text AS scores, t.created_at, t.trace_version,
                    t.payload::text AS payload
             FROM dataset_members m JOIN traces t ON t.id = m.trace_id
             WHERE m.build_id = $1{split_sql}
               AND NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = m.trace_id)
             ORDER BY m.position"
        );
        // Ok(true): streamed to the end; Ok(false): the client went away.
        let result: Result<bool, sqlx::Error> = async {
            let mut rows = sqlx::query(&sql).bind(build_id).fetch(&mut *conn);
            let failed = |what: &str, e: &dyn std::fmt::Display| {
                tracing::error!(error = %e, "{what}; export stops");
                sqlx::Error::Protocol(format!("{what}: {e}"))
            };
            let mut out = match format {
                ExportFormat::Jsonl(f) => Output::Jsonl {
                    format: f,
                    buf: Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096),
                    encoder: Encoder::new(encoding).map_err(|e| failed("encoder", &e))?,
                },
                ExportFormat::Parquet => Output::Parquet(Box::default()),
            };
            while let Some(r) = rows.try_next().await? {
                let payload: &str = r.get("payload");
                let scores: &str = r.get("scores");
                let version = pg_text::decode(r.get::<&str, _>("trace_version"));
                let id: Uuid = r.get("trace_id");
                let created_at: DateTime<Utc> = r.get("created_at");
                let split = if r.get::<bool, _>("eval") {
                    "eval"
                } else {
                    "train"
                };
                let ready = match &mut out {
                    Output::Jsonl {
                        format,
                        buf,
                        encoder,
                    } => {
                        let trace: ExportTrace = serde_json::from_str(payload)
                            .map_err(|e| failed("a stored payload does not parse", &e))?;
                        let scores = RawValue::from_string(scores.to_owned())
                            .map_err(|e| failed("frozen scores", &e))?;
                        let cx = RowContext {
                            id,
                            created_at,
                            trace_version: &version,
                            scores: &scores,
                            split,
                        };
                        buf.extend_from_slice(dataset::export_row(*format, &cx, &trace).as_bytes());
                        buf.push(b'\n');
                        if buf.len() >= EXPORT_CHUNK_BYTES {
                            encoder.write(buf).map_err(|e| failed("encoder", &e))?;
                            buf.clear();
                            encoder.take()
                        } else {
                            Vec::new()
                        }
                    }
                    Output::Parquet(file) => {
                        let trace: ParquetTrace = serde_json::from_str(payload)
                            .map_err(|e| failed("a stored payload does not parse", &e))?;
                        file.push(&id, &created_at, &version, &trace, scores, split)
                            .map_err(|e| failed("parquet", &e))?;
                        file.take()
                    }
                };
                if !ready.is_empty() && tx.send(Ok(Bytes::from(ready))).await.is_err() {
                    return Ok(false); // the client went away: stop reading
                }
            }
            let last = match out {
                Output::Jsonl {
                    buf, mut encoder, ..
                } => {
                    encoder.write(&buf).map_err(|e| failed("encoder", &e))?;
                    encoder.finish().map_err(|e| failed("encoder", &e))?
                }
                Output::Parquet(file) => file.finish().map_err(|e| failed("parquet", &e))?,
            };
            if !last.is_empty() {
                let _ = tx.send(Ok(Bytes::from(last))).await;
            }
            Ok(true)
        }
        .await;
        // Back to the pool with the read API's settings restored. A query cut short is not
        // drained: its connection is closed, which stops the query in Postgres.
        if !matches!(result, Ok(true))
            || sqlx::query("RESET ALL").execute(&mut *conn).await.is_err()
        {
            conn.close_on_drop();
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "export failed mid-stream");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match format {
            ExportFormat::Jsonl(_) => "application/x-ndjson",
            ExportFormat::Parquet => "application/vnd.apache.parquet",
        }),
    );
    h.insert("x-tunix-omitted", HeaderValue::from(omitted));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    match encoding {
        Encoding::Identity => {}
        Encoding::Gzip => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Encoding::Zstd => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        }
    }
    let file = match format {
        ExportFormat::Jsonl(f) => format!("{}.jsonl", f.as_str()),
        ExportFormat::Parquet => "parquet".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.{file}\"",
        row.name, row.version
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `GET /api/datasets/{name}/{version}/export?format=&split=`: the members as JSONL, streamed.
#[utoipa::path(
    get,
    path = "/api/datasets/{name}/{version}/export",
    tag = "datasets",
    summary = "Export a dataset as JSONL or Parquet",
    description = "format: trace (default), tunix_sft, training_example, chat (JSONL) or parquet (one file, typed columns); split: all (default), train or eval. Rows in the dataset's order, each with the member's frozen scores and split. Members whose trace was deleted are omitted; X-Tunix-Omitted says how many. Accept-Encoding: zstd or gzip compresses the stream.",
    params(("name" = String, Path), ("version" = String, Path),
           ("format" = Option<String>, Query), ("split" = Option<String>, Query)),
    responses((status = 200, content_type = "application/x-ndjson"), (status = 404, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ValidationErrorBody))
)]
pub async fn export(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (format, split) = export_params(raw.as_deref())?;
    let row = existing(&state, &name, &version).await?;
    export_response(state, row, format, split, Encoding::negotiate(&headers)).await
}

/// `GET /api/datasets/{key}/export.jsonl?format=`: the original service's export, by key.
#[utoipa::path(
    get,
    path = "/api/datasets/{name}/export.jsonl",
    tag = "datasets",
    summary = "Export by the original's dataset key",
    description = "`name` is the dataset key `<name>-<version>`. format: trace, tunix_sft or training_example (and chat).",
    params(("name" = String, Path, description = "The dataset key"), ("format" = Option<String>, Query)),
    responses((status = 200, content_type = "application/x-ndjson"), (status = 404, body = crate::openapi::ErrorBody))
)]
pub async fn export_original(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (format, split) = export_params(raw.as_deref())?;
    let row = match find_by_key(&state, &key).await? {
        Some(row) if row.state != "deleted" => row,
        _ => return Err(ApiError::NotFound(format!("dataset {key:?} not found"))),
    };
    export_response(state, row, format, split, Encoding::negotiate(&headers)).await
}
