//! The background runner of bulk deletes and retention sweeps: schedules sweeps, then erases
//! each running operation page by page through the same path as `DELETE`
//! (`super::erase::erase`), at most `ERASURE_RATE_PER_SECOND`. Each page skips ids already
//! recorded as deleted, so an operation interrupted by a crash resumes where it stopped when any
//! ingest-api instance starts its runner; an advisory lock keeps two instances off the same one.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tunix_schemas::{ErasureRequested, TraceEvent};
use uuid::Uuid;

use super::deletions::{operation_query, parse_request_filter};
use super::operations::{self, OpState, RETENTION};
use crate::http::common::{iso, now};
use crate::http::metrics::names;
use crate::traces::filter::ListQuery;
use crate::AppState;

/// Traces erased per page (one append and one Postgres statement each).
const PAGE: i64 = 200;

/// Why the runner stopped an operation early; it resumes on the next tick.
type RunError = Box<dyn std::error::Error + Send + Sync>;

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
            let _ = operations::purge_expired_plans(&state.pool).await;
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
    let Ok((bulk, retention)) = operations::remaining(&state.pool).await else {
        return;
    };
    metrics::gauge!(names::BULK_DELETE_REMAINING).set(bulk as f64);
    metrics::gauge!(names::RETENTION_BACKLOG).set(retention as f64);
}

/// Starts a retention sweep when none runs and the last one started an interval ago. Under an
/// advisory lock, so that replicas start one between them.
async fn schedule_retention(state: &AppState, days: u32) -> Result<(), sqlx::Error> {
    let mut tx = state.pool.begin().await?;
    if !operations::lock_retention_scheduler(&mut tx).await? {
        return Ok(());
    }
    let interval = chrono::Duration::from_std(state.cfg.retention_sweep_interval)
        .unwrap_or(chrono::Duration::hours(1));
    if let Some((st, at)) = operations::last_sweep(&mut *tx).await? {
        if st == OpState::Running.as_str() || Utc::now() - at < interval {
            return Ok(());
        }
    }
    let cutoff = now() - chrono::Duration::days(i64::from(days));
    let query = operation_query(ListQuery::default(), cutoff);
    let mut b = query.erasure_count_sql();
    let matched: i64 = b
        .build_query_scalar()
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    let id = Uuid::now_v7();
    operations::insert_sweep(&mut *tx, id, cutoff, matched).await?;
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
            .append(&[TraceEvent::ErasureRequested(audit)])
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
async fn run_pending(state: &AppState, shutdown: &CancellationToken) -> Result<(), RunError> {
    for id in operations::running(&state.pool).await? {
        // A session-level lock on a dedicated connection: released if this process dies.
        let mut lock = state.pool.acquire().await?;
        if !operations::try_lock(&mut lock, id).await? {
            continue;
        }
        let result = run_one(state, id, shutdown).await;
        let _ = operations::unlock(&mut lock, id).await;
        result?;
    }
    Ok(())
}

async fn run_one(state: &AppState, id: Uuid, shutdown: &CancellationToken) -> Result<(), RunError> {
    let work = operations::work(&state.pool, id).await?;
    if work.state != OpState::Running.as_str() {
        return Ok(());
    }
    let retention = work.requested_by == RETENTION;
    let via = if retention { RETENTION } else { "bulk_delete" };
    let query = match parse_request_filter(Some(&work.filter)) {
        Ok((_, q)) => operation_query(q, work.created_before),
        Err(e) => {
            let error = format!("stored filter no longer parses: {e}");
            operations::fail(&state.pool, id, &error).await?;
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
        let page: Vec<Uuid> = b
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&state.pool)
            .await?;
        if page.is_empty() {
            operations::finish(&state.pool, id).await?;
            if retention {
                metrics::counter!(names::RETENTION_SWEEPS).increment(1);
            }
            tracing::info!(%id, via, "erasure operation done");
            return Ok(());
        }
        super::erase::erase(state, via, None, &page, now(), work.reason.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        if !operations::add_deleted(&state.pool, id, page.len() as i64).await? {
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
