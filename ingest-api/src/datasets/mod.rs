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
//!    [`create::READY_WAIT`], for the projector to mark the build ready (201; 202 if it is still
//!    building).
//!
//! Membership therefore lives in the topic and survives a replay into an empty database; a
//! member is removed only by deleting its trace (exports omit it and count it in the
//! `X-Tunix-Omitted` header). Creation and export run without the read API's 5 s query limit.

//!
//! Where: [`create`] (definitions, claims, the build), [`export`] (JSONL and Parquet streams),
//! [`parquet`] (the Parquet encoder), [`store`] (the `datasets` table); the original service's
//! build and export routes are in `crate::compat::datasets`.

pub mod create;
pub mod export;
pub mod parquet;
pub mod store;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use tunix_schemas::dataset::dataset_key_text;
use tunix_schemas::{DatasetDeleted, TraceEvent};
use uuid::Uuid;

use crate::http::common::{iso, now, produce_error};
use crate::http::db::db_error;
use crate::http::error::ApiError;
use crate::AppState;
use store::{DatasetRow, DatasetState};

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

impl DatasetRow {
    /// The dataset as the API shows it.
    pub fn out(&self) -> DatasetOut {
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

/// `GET /api/datasets`: every dataset that is not deleted, by name and version.
#[utoipa::path(
    get,
    path = "/api/datasets",
    tag = "datasets",
    summary = "List datasets",
    responses(
        (status = 200, body = Vec<DatasetOut>),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let rows = store::list(&state.pool)
        .await
        .map_err(|e| db_error(&state, &e))?;
    Ok(Json(rows.iter().map(DatasetRow::out).collect::<Vec<_>>()).into_response())
}

/// The dataset `(name, version)`, unless it does not exist or was deleted (404).
async fn existing(state: &AppState, name: &str, version: &str) -> Result<DatasetRow, ApiError> {
    let key = dataset_key_text(name, version);
    let found = store::find(&state.pool, name, version, &key)
        .await
        .map_err(|e| db_error(state, &e))?;
    match found {
        Some(row)
            if row.name == name
                && row.version == version
                && !DatasetState::Deleted.is(&row.state) =>
        {
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
    responses(
        (status = 200, body = DatasetOut),
        (status = 404, body = crate::http::openapi::ErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
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
    responses(
        (status = 202, body = Object),
        (status = 404, body = crate::http::openapi::ErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
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
    store::mark_deleted(&state.pool, &row.name, &row.version, at)
        .await
        .map_err(|e| db_error(&state, &e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"name": row.name, "version": row.version, "deleted_at": iso(&at)})),
    )
        .into_response())
}
