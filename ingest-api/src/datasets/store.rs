//! Owns ingest-api's statements on the `datasets` table: finding a dataset, claiming a
//! `(name, version)` for a build, and refusing a deleted one at once. (The projector marks builds
//! ready and deleted from the events; see `projector/src/datasets.rs`.)

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// The state of a dataset, as stored (a `CHECK` constraint allows exactly these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetState {
    /// Claimed; its members are being appended, or the projector has not sealed it yet.
    Building,
    /// Sealed: membership complete.
    Ready,
    /// Deleted: the name and version are never reused.
    Deleted,
}

impl DatasetState {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            DatasetState::Building => "building",
            DatasetState::Ready => "ready",
            DatasetState::Deleted => "deleted",
        }
    }

    /// Whether `stored` is this state.
    pub fn is(self, stored: &str) -> bool {
        stored == self.as_str()
    }
}

/// A row of `datasets`.
///
/// Fields are the table's columns of the same name.
#[allow(missing_docs)]
pub struct DatasetRow {
    pub name: String,
    pub version: String,
    pub key: String,
    pub state: String,
    pub build_id: Uuid,
    pub definition: String,
    pub member_count: Option<i64>,
    pub eval_count: Option<i64>,
    pub digest: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub claimed_at: DateTime<Utc>,
}

impl DatasetRow {
    /// The URL path of its resource.
    pub fn resource_path(&self) -> String {
        format!("/api/datasets/{}/{}", self.name, self.version)
    }
}

/// The dataset `(name, version)`, or else the one holding `key`.
pub async fn find(
    db: impl PgExecutor<'_>,
    name: &str,
    version: &str,
    key: &str,
) -> sqlx::Result<Option<DatasetRow>> {
    sqlx::query_as!(
        DatasetRow,
        "SELECT name, version, key, state, build_id, definition, member_count, eval_count, digest,
                created_at, deleted_at, claimed_at
         FROM datasets WHERE (name = $1 AND version = $2) OR key = $3
         ORDER BY (name = $1 AND version = $2) DESC LIMIT 1",
        name,
        version,
        key
    )
    .fetch_optional(db)
    .await
}

/// The dataset holding `key` (`<name>-<version>`, the original service's identifier).
pub async fn find_by_key(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<Option<DatasetRow>> {
    sqlx::query_as!(
        DatasetRow,
        "SELECT name, version, key, state, build_id, definition, member_count, eval_count, digest,
                created_at, deleted_at, claimed_at
         FROM datasets WHERE key = $1",
        key
    )
    .fetch_optional(db)
    .await
}

/// Every dataset not deleted, by name and version.
pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<DatasetRow>> {
    sqlx::query_as!(
        DatasetRow,
        "SELECT name, version, key, state, build_id, definition, member_count, eval_count, digest,
                created_at, deleted_at, claimed_at
         FROM datasets WHERE state <> $1 ORDER BY name, version",
        DatasetState::Deleted.as_str()
    )
    .fetch_all(db)
    .await
}

/// Claims a new `(name, version)` for build `build_id`; false when it exists already.
pub async fn claim(
    db: impl PgExecutor<'_>,
    name: &str,
    version: &str,
    key: &str,
    build_id: Uuid,
    definition: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "INSERT INTO datasets (name, version, key, build_id, definition, state)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        name,
        version,
        key,
        build_id,
        definition,
        DatasetState::Building.as_str()
    )
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Takes over the building claim of `stale_build` for `build_id`; false when another creation
/// took it first (or it was sealed meanwhile).
pub async fn take_over(
    db: impl PgExecutor<'_>,
    name: &str,
    version: &str,
    build_id: Uuid,
    stale_build: Uuid,
) -> sqlx::Result<bool> {
    let taken = sqlx::query!(
        "UPDATE datasets SET build_id = $3, claimed_at = now()
         WHERE name = $1 AND version = $2 AND build_id = $4 AND state = $5",
        name,
        version,
        build_id,
        stale_build,
        DatasetState::Building.as_str()
    )
    .execute(db)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Marks a dataset deleted at once, before the projector applies its `DatasetDeleted`, so its
/// name is refused from the answer on.
pub async fn mark_deleted(
    db: impl PgExecutor<'_>,
    name: &str,
    version: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE datasets SET state = $4, deleted_at = $3 WHERE name = $1 AND version = $2",
        name,
        version,
        at,
        DatasetState::Deleted.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}
