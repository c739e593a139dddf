//! Owns the `erasure_operations` table: every statement on it, its states and its advisory locks.
//!
//! A row is a bulk delete or a retention sweep. Its life: `planned` (a dry run, holding a
//! token digest) → `running` → `done`, `failed` or `cancelled`. Handlers and the runner go
//! through these functions, so a state or a lock id is spelled once.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// `requested_by` of retention sweeps (also their audit `action`).
pub const RETENTION: &str = "retention";

/// Advisory lock (transaction scope) under which one replica at a time schedules retention.
const RETENTION_SCHEDULER_LOCK: i64 = 7_367_001;
/// Advisory lock class (session scope, with the operation id's hash) held while running one
/// operation, so two replicas never run the same one.
const OPERATION_LOCK_CLASS: i32 = 7_367_002;

/// The state of an operation, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpState {
    /// A dry run: only its confirmation can start it.
    Planned,
    /// Erasing, page by page.
    Running,
    /// Every matched trace erased.
    Done,
    /// Stopped by an error (its `error` says which).
    Failed,
    /// Stopped by `DELETE /api/deletions/{id}`.
    Cancelled,
}

impl OpState {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            OpState::Planned => "planned",
            OpState::Running => "running",
            OpState::Done => "done",
            OpState::Failed => "failed",
            OpState::Cancelled => "cancelled",
        }
    }
}

/// An operation as `GET /api/deletions/{id}` shows it (never a planned one).
///
/// Fields are the table's columns of the same name.
#[allow(missing_docs)]
pub struct OperationRow {
    pub id: Uuid,
    pub state: String,
    pub filter: Value,
    pub created_before: DateTime<Utc>,
    pub matched: i64,
    pub deleted: i64,
    pub requested_by: String,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a dry run stored, found by its token's digest.
///
/// Fields are the table's columns of the same name.
#[allow(missing_docs)]
pub struct Plan {
    pub id: Uuid,
    pub filter: Value,
    pub created_before: DateTime<Utc>,
    pub matched: i64,
    pub state: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A dry run to store: what its confirmation must match.
///
/// Fields are the table's columns of the same name.
#[allow(missing_docs)]
pub struct NewPlan<'a> {
    pub filter: &'a Value,
    pub created_before: DateTime<Utc>,
    pub requested_by: &'a str,
    pub reason: Option<&'a str>,
    pub matched: i64,
    pub token_digest: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// Stores a dry run.
pub async fn insert_plan(db: impl PgExecutor<'_>, plan: NewPlan<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO erasure_operations
           (id, filter, created_before, requested_by, reason, state, matched, token_digest, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        Uuid::now_v7(),
        plan.filter,
        plan.created_before,
        plan.requested_by,
        plan.reason,
        OpState::Planned.as_str(),
        plan.matched,
        plan.token_digest,
        plan.expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The dry run a token digest belongs to.
pub async fn plan_by_token(db: impl PgExecutor<'_>, digest: &str) -> sqlx::Result<Option<Plan>> {
    sqlx::query_as!(
        Plan,
        "SELECT id, filter, created_before, matched, state, expires_at
         FROM erasure_operations WHERE token_digest = $1",
        digest
    )
    .fetch_optional(db)
    .await
}

/// Starts a planned operation; false when another confirmation already started it.
pub async fn start(
    db: impl PgExecutor<'_>,
    id: Uuid,
    requested_by: &str,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let started = sqlx::query!(
        "UPDATE erasure_operations
         SET state = $4, requested_by = $2, reason = COALESCE($3, reason),
             updated_at = now(), expires_at = NULL
         WHERE id = $1 AND state = $5",
        id,
        requested_by,
        reason,
        OpState::Running.as_str(),
        OpState::Planned.as_str(),
    )
    .execute(db)
    .await?;
    Ok(started.rows_affected() == 1)
}

/// An operation that is past planning.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<OperationRow>> {
    sqlx::query_as!(
        OperationRow,
        "SELECT id, state, filter, created_before, matched, deleted, requested_by, reason,
                error, created_at, updated_at, finished_at
         FROM erasure_operations WHERE id = $1 AND state <> $2",
        id,
        OpState::Planned.as_str(),
    )
    .fetch_optional(db)
    .await
}

/// Cancels a running operation; false when it was not running.
pub async fn cancel(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let cancelled = sqlx::query!(
        "UPDATE erasure_operations SET state = $2, finished_at = now(), updated_at = now()
         WHERE id = $1 AND state = $3",
        id,
        OpState::Cancelled.as_str(),
        OpState::Running.as_str(),
    )
    .execute(db)
    .await?;
    Ok(cancelled.rows_affected() == 1)
}

/// Forgets dry runs nobody confirmed whose tokens expired over a day ago.
pub async fn purge_expired_plans(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM erasure_operations WHERE state = $1 AND expires_at < now() - interval '1 day'",
        OpState::Planned.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Traces still to erase by running operations: (bulk deletes, retention sweeps).
pub async fn remaining(db: impl PgExecutor<'_>) -> sqlx::Result<(i64, i64)> {
    let rows = sqlx::query!(
        r#"SELECT requested_by = $1 AS "retention!",
                  COALESCE(sum(matched - deleted), 0)::bigint AS "remaining!"
           FROM erasure_operations WHERE state = $2 GROUP BY 1"#,
        RETENTION,
        OpState::Running.as_str(),
    )
    .fetch_all(db)
    .await?;
    let (mut bulk, mut retention) = (0, 0);
    for r in rows {
        if r.retention {
            retention += r.remaining.max(0);
        } else {
            bulk += r.remaining.max(0);
        }
    }
    Ok((bulk, retention))
}

/// Takes the retention scheduler's lock for the rest of the transaction; false when another
/// replica holds it.
pub async fn lock_retention_scheduler(tx: &mut PgConnection) -> sqlx::Result<bool> {
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
        RETENTION_SCHEDULER_LOCK
    )
    .fetch_one(tx)
    .await?;
    Ok(locked)
}

/// The state and start of the newest retention sweep.
pub async fn last_sweep(db: impl PgExecutor<'_>) -> sqlx::Result<Option<(String, DateTime<Utc>)>> {
    let row = sqlx::query!(
        "SELECT state, created_at FROM erasure_operations WHERE requested_by = $1
         ORDER BY created_at DESC LIMIT 1",
        RETENTION
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.state, r.created_at)))
}

/// Stores a retention sweep, running from the start.
pub async fn insert_sweep(
    db: impl PgExecutor<'_>,
    id: Uuid,
    cutoff: DateTime<Utc>,
    matched: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO erasure_operations (id, filter, created_before, requested_by, state, matched)
         VALUES ($1, '{}'::jsonb, $2, $3, $4, $5)",
        id,
        cutoff,
        RETENTION,
        OpState::Running.as_str(),
        matched,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Running operations, oldest first.
pub async fn running(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM erasure_operations WHERE state = $1 ORDER BY created_at",
        OpState::Running.as_str(),
    )
    .fetch_all(db)
    .await
}

/// Takes the session lock of operation `id` on `conn`; false when another replica runs it.
/// Released by [`unlock`], or when the connection closes (this process died).
pub async fn try_lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1, hashtext($2::text)) AS "locked!""#,
        OPERATION_LOCK_CLASS,
        id.to_string(),
    )
    .fetch_one(conn)
    .await
}

/// Releases the lock [`try_lock`] took.
pub async fn unlock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        "SELECT pg_advisory_unlock($1, hashtext($2::text))",
        OPERATION_LOCK_CLASS,
        id.to_string(),
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// What the runner needs of an operation.
///
/// Fields are the table's columns of the same name.
#[allow(missing_docs)]
pub struct Work {
    pub filter: Value,
    pub created_before: DateTime<Utc>,
    pub requested_by: String,
    pub reason: Option<String>,
    pub state: String,
}

/// Loads operation `id` for running.
pub async fn work(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Work> {
    sqlx::query_as!(
        Work,
        "SELECT filter, created_before, requested_by, reason, state FROM erasure_operations WHERE id = $1",
        id
    )
    .fetch_one(db)
    .await
}

/// Ends operation `id` as failed, with the reason.
pub async fn fail(db: impl PgExecutor<'_>, id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE erasure_operations SET state = $2, error = $3, finished_at = now(), updated_at = now()
         WHERE id = $1",
        id,
        OpState::Failed.as_str(),
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Ends operation `id` as done. The running count can be off after a crash (a page appended but
/// not counted, or appended twice), so it is settled here.
pub async fn finish(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE erasure_operations
         SET state = $2, deleted = matched, finished_at = now(), updated_at = now()
         WHERE id = $1",
        id,
        OpState::Done.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Counts `n` more erased traces; false when the operation stopped running (cancelled).
pub async fn add_deleted(db: impl PgExecutor<'_>, id: Uuid, n: i64) -> sqlx::Result<bool> {
    let still_running = sqlx::query!(
        "UPDATE erasure_operations SET deleted = deleted + $2, updated_at = now()
         WHERE id = $1 AND state = $3",
        id,
        n,
        OpState::Running.as_str(),
    )
    .execute(db)
    .await?;
    Ok(still_running.rows_affected() == 1)
}
