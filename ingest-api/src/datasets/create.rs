//! Creating a dataset: `POST /api/datasets` (and, through it, the original service's build in
//! `crate::compat::datasets`). Parses the definition, claims `(name, version)`, selects the
//! members in one snapshot, appends them and waits briefly for the projector to seal the build.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{Connection, Row};
use tunix_schemas::dataset::{
    assign_eval, check_name_version, dataset_key_text, Definition, MembershipDigest, Selection,
    Split, CHUNK_MEMBERS,
};
use tunix_schemas::{
    pg_text, DatasetCreated, DatasetMember, DatasetMembers, ErrorKind, FrozenScore, Loc,
    TraceEvent, ValidationErrors,
};
use uuid::Uuid;

use super::store::{self, DatasetRow, DatasetState};
use super::DatasetOut;
use crate::http::body::read_json;
use crate::http::common::{now, produce_error, rejected};
use crate::http::db::db_error;
use crate::http::error::ApiError;
use crate::traces::filter::ListQuery;
use crate::traces::filter_object::parse_filter_object;
use crate::AppState;

/// How long a creation waits for the projector to mark the new build ready.
pub const READY_WAIT: Duration = Duration::from_secs(10);
/// A `building` claim older than this is taken over by a retry with the same definition (the
/// creation that made it died before sealing).
pub const STALE_CLAIM: Duration = Duration::from_secs(120);
/// Largest request body of a creation.
pub(crate) const BODY_MAX: usize = 64 * 1024;
/// Chunks appended per produce call (bounds the memory of a large creation).
const CHUNKS_PER_APPEND: usize = 8;

/// The dataset `(name, version)` or the one holding `key`; a failed query is a 503 or 500.
async fn find(
    state: &AppState,
    name: &str,
    version: &str,
    key: &str,
) -> Result<Option<DatasetRow>, ApiError> {
    store::find(&state.pool, name, version, key)
        .await
        .map_err(|e| db_error(state, &e))
}

/// A creation request, as parsed.
pub(crate) struct Request {
    name: String,
    version: String,
    definition: Definition,
    query: ListQuery,
}

/// Parses `{name, version, filter, selection, seed?, limit?, split?}`; every problem at once.
pub(crate) fn parse_request(body: &[u8]) -> Result<Request, ValidationErrors> {
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
    let parsed_filter = parse_filter_object(obj.get("filter"), &root, &mut errs);
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
    match (DatasetState::Ready.is(&row.state), created) {
        (true, true) => StatusCode::CREATED,
        (true, false) => StatusCode::OK,
        (false, _) => StatusCode::ACCEPTED,
    }
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
            if DatasetState::Deleted.is(&row.state) {
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
            let stale = DatasetState::Building.is(&row.state)
                && Utc::now() - row.claimed_at
                    > chrono::Duration::from_std(STALE_CLAIM).expect("small");
            if !stale {
                return Ok(Claim::Existing(Box::new(row)));
            }
            // The creation that claimed it died before sealing: take the claim over.
            let build = Uuid::now_v7();
            let taken = store::take_over(&state.pool, &req.name, &req.version, build, row.build_id)
                .await
                .map_err(|e| db_error(state, &e))?;
            if taken {
                return Ok(Claim::Build(build));
            }
            continue;
        }
        let build = Uuid::now_v7();
        let claimed = store::claim(&state.pool, &req.name, &req.version, &key, build, canonical)
            .await
            .map_err(|e| db_error(state, &e))?;
        if claimed {
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
    // One snapshot for the ids and their scores; no read limit (a creation may take long).
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query!("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let random_seed = match req.definition.selection {
        Selection::Random => Some(req.definition.seed.unwrap_or_default()),
        Selection::Latest => None,
    };
    let ids: Vec<Uuid> = req
        .query
        .members_sql(random_seed, req.definition.limit)
        .build()
        .persistent(false)
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
        let rows = sqlx::query!(
            r#"SELECT trace_id AS "trace_id!", name AS "name!", value AS "value!", source,
                      recorded_at AS "recorded_at!"
               FROM trace_scores WHERE trace_id = ANY($1) ORDER BY trace_id, name"#,
            slice
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        for row in rows {
            scores.entry(row.trace_id).or_default().push(FrozenScore {
                name: pg_text::decode(&row.name).into_owned(),
                value: row.value,
                source: row.source.map(|s| pg_text::decode(&s).into_owned()),
                recorded_at: row.recorded_at,
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
pub(crate) async fn create_from(
    state: &AppState,
    req: Request,
) -> Result<(StatusCode, DatasetRow), ApiError> {
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
            Some(row) if !DatasetState::Building.is(&row.state) || Instant::now() >= deadline => {
                return Ok((creation_status(&row, true), row));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
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
        (status = 409, body = crate::http::openapi::ErrorBody),
        (status = 415, body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_json(&state, &headers, body, BODY_MAX).await?;
    let req = parse_request(&bytes).map_err(|e| rejected(&state, e))?;
    let (status, row) = create_from(&state, req).await?;
    let mut resp = (status, Json(row.out())).into_response();
    if let Ok(v) = HeaderValue::from_str(&row.resource_path()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
