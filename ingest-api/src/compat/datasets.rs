//! The original service's dataset routes: `POST /api/datasets/build` (its build request, mapped
//! onto a dataset definition) and `GET /api/datasets/{key}/export.jsonl` (an export by key).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tunix_schemas::{ErrorKind, Loc, ValidationErrors};

use crate::datasets::create::{create_from, parse_request, BODY_MAX};
use crate::datasets::export::{export_params, export_response};
use crate::datasets::store::{self, DatasetState};
use crate::http::body::{accepted_encoding, read_json};
use crate::http::common::rejected;
use crate::http::db::db_error;
use crate::http::error::ApiError;
use crate::AppState;

/// The original's `limit` bounds and default.
const BUILD_LIMIT_MAX: i64 = 10_000;
const BUILD_LIMIT_DEFAULT: i64 = 100;

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
        (status = 409, body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn build_original(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_json(&state, &headers, body, BODY_MAX).await?;
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
            "manifest_path": row.resource_path(),
        })),
    )
        .into_response())
}

/// `GET /api/datasets/{key}/export.jsonl?format=`: the original service's export, by key.
#[utoipa::path(
    get,
    path = "/api/datasets/{name}/export.jsonl",
    tag = "datasets",
    summary = "Export by the original's dataset key",
    description = "`name` is the dataset key `<name>-<version>`. format: trace, tunix_sft or training_example (and chat).",
    params(("name" = String, Path, description = "The dataset key"), ("format" = Option<String>, Query)),
    responses(
        (status = 200, content_type = "application/x-ndjson"),
        (status = 404, body = crate::http::openapi::ErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn export_original(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (format, split) = export_params(raw.as_deref())?;
    let found = store::find_by_key(&state.pool, &key)
        .await
        .map_err(|e| db_error(&state, &e))?;
    let row = match found {
        Some(row) if !DatasetState::Deleted.is(&row.state) => row,
        _ => return Err(ApiError::NotFound(format!("dataset {key:?} not found"))),
    };
    export_response(state, row, format, split, accepted_encoding(&headers)).await
}
