//! Rebuilding the list view from offset 0 without downtime.
//!
//! 1. Create `trace_list_v{N+1}` and `trace_scores_v{N+1}` (primary keys only, for a fast bulk
//!    load).
//! 2. Replay every partition from the beginning into it, with progress (events/s, lag, ETA).
//! 3. Add the secondary indexes, then replay again to catch up with what arrived meanwhile.
//! 4. Switch: in one transaction, lock `projection_state`, point the `trace_list` and
//!    `trace_scores` views at the new tables and make them active. Readers see the old version until the commit and the new one
//!    after. The running projector's next batch finds the new version's positions (the rebuild's)
//!    differ from its own, re-seeks to them (the fence) and keeps the new table current.
//! 5. Drop the previous tables and their positions (unless asked to keep them).
//!
//! An interrupted rebuild leaves the active view untouched; running it again starts over. One
//! rebuild runs at a time (an advisory lock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use tunix_pipeline::consumer::{
    replay_until_caught_up, ConsumerDeps, ConsumerMetrics, ConsumerSettings, ReplayProgress,
};
use tunix_pipeline::ops::Readiness;

use crate::view::{self, table_name, VersionSink, VIEW_NAME};
use crate::ProjectorConfig;

/// Advisory lock key held for the whole rebuild: one rebuild at a time.
const REBUILD_LOCK: i64 = 0x7475_6e69_785f_7262; // "tunix_rb"

/// Rebuild options.
#[derive(Debug, Clone, Default)]
pub struct RebuildOptions {
    /// Keep the previous version's table after the switch (for comparison or rollback).
    pub keep_previous: bool,
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// The version that was active before.
    pub previous_version: i32,
    /// The version now active.
    pub version: i32,
    /// Events replayed (both passes).
    pub events: u64,
    /// Rows in the new view at the switch.
    pub rows: i64,
    /// Wall time.
    pub elapsed: Duration,
}

/// A progress line: `applied 120,000 events (45,000 ev/s), lag 12,345, ETA 0:00:03`.
pub fn progress_line(phase: &str, p: &ReplayProgress) -> String {
    let eta = if p.rate > 0.0 {
        let secs = (p.lag_records as f64 / p.rate).round() as u64;
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        "unknown".to_owned()
    };
    format!(
        "{phase}: applied {} events ({:.0} ev/s), lag {}, ETA {eta}",
        p.applied_records, p.rate, p.lag_records
    )
}

async fn report_progress(pool: &PgPool, version: i32, applied: i64, lag: i64) {
    let _ = sqlx::query!(
        "UPDATE projection_state
         SET rebuild_version = $2, rebuild_applied = $3, rebuild_lag = $4, rebuild_updated_at = now(),
             rebuild_started_at = coalesce(rebuild_started_at, now())
         WHERE name = $1",
        VIEW_NAME,
        version,
        applied,
        lag
    )
    .execute(pool)
    .await;
}

/// Rebuilds the list view into the next version and switches reads to it. `progress` receives a
/// human-readable line about once a second.
pub async fn rebuild(
    cfg: &ProjectorConfig,
    options: RebuildOptions,
    shutdown: CancellationToken,
    progress: impl FnMut(String) + Send + 'static,
) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let pool = cfg.db.pool()?;
    tunix_pipeline::db::migrate(&pool).await?;

    let mut lock = pool.acquire().await?.detach();
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1) AS "locked!""#,
        REBUILD_LOCK
    )
    .fetch_one(&mut lock)
    .await?;
    anyhow::ensure!(locked, "another rebuild is running");

    let previous = sqlx::query_scalar!(
        "SELECT active_version FROM projection_state WHERE name = $1",
        VIEW_NAME
    )
    .fetch_one(&pool)
    .await?;
    let version = previous + 1;
    let table = table_name(version);
    {
        // A leftover from an interrupted rebuild that never switched: start clean.
        let mut tx = pool.begin().await?;
        for t in [&table, &view::scores_table_name(version)] {
            sqlx::query(&format!("DROP TABLE IF EXISTS {t}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query!("DELETE FROM consumer_offsets WHERE target = $1", table)
            .execute(&mut *tx)
            .await?;
        for ddl in view::create_tables(version) {
            sqlx::query(&ddl).execute(&mut *tx).await?;
        }
        sqlx::query!(
            "UPDATE projection_state SET rebuild_version = $2, rebuild_applied = 0, rebuild_lag = NULL,
                 rebuild_started_at = now(), rebuild_updated_at = now() WHERE name = $1",
            VIEW_NAME,
            version
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    tracing::info!(previous, version, "rebuild started");

    let progress = Arc::new(std::sync::Mutex::new(progress));
    let mut events = 0;
    for phase in ["bulk replay", "catch-up"] {
        if phase == "catch-up" {
            for ddl in view::create_indexes(version) {
                sqlx::query(&ddl).execute(&pool).await?;
            }
            (progress.lock().expect("progress"))(format!("{table}: indexes built"));
        }
        let mut settings = ConsumerSettings::with_group("tunix-projector-rebuild");
        settings.batch_max_records = 5000;
        settings.batch_max_bytes = 16 << 20;
        let deps = ConsumerDeps {
            kafka: cfg.kafka.clone(),
            settings,
            pool: pool.clone(),
            sink: Arc::new(VersionSink {
                table: table.clone(),
            }),
            readiness: Readiness::new(&[]),
            metrics: Arc::new(ConsumerMetrics::new("tunix_projector_rebuild")),
            shutdown: shutdown.clone(),
        };
        let rt = tokio::runtime::Handle::current();
        let (progress, pool2, table2) = (progress.clone(), pool.clone(), table.clone());
        let done = tokio::task::spawn_blocking(move || {
            let rt2 = rt.clone();
            replay_until_caught_up(deps, rt, move |p| {
                rt2.block_on(report_progress(
                    &pool2,
                    version,
                    p.applied_records as i64,
                    p.lag_records,
                ));
                (progress.lock().expect("progress"))(progress_line(
                    &format!("{table2} {phase}"),
                    p,
                ));
            })
        })
        .await??;
        events += done.applied_records;
    }

    // The switch.
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "SELECT active_version FROM projection_state WHERE name = $1 FOR UPDATE",
        VIEW_NAME
    )
    .fetch_one(&mut *tx)
    .await?;
    for old_view in [VIEW_NAME, view::SCORES_VIEW] {
        sqlx::query(&format!("DROP VIEW IF EXISTS {old_view}"))
            .execute(&mut *tx)
            .await?;
    }
    for ddl in view::create_views(version) {
        sqlx::query(&ddl).execute(&mut *tx).await?;
    }
    sqlx::query!(
        "UPDATE projection_state SET active_version = $2, switched_at = now(), rebuild_version = NULL,
             rebuild_applied = NULL, rebuild_lag = NULL, rebuild_started_at = NULL, rebuild_updated_at = NULL
         WHERE name = $1",
        VIEW_NAME,
        version
    )
    .execute(&mut *tx)
    .await?;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        previous,
        version,
        rows,
        "reads switched to the rebuilt view"
    );

    if !options.keep_previous {
        let old = table_name(previous);
        let mut tx = pool.begin().await?;
        for t in [&old, &view::scores_table_name(previous)] {
            sqlx::query(&format!("DROP TABLE IF EXISTS {t}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query!("DELETE FROM consumer_offsets WHERE target = $1", old)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let _ = sqlx::query!("SELECT pg_advisory_unlock($1)", REBUILD_LOCK)
        .fetch_one(&mut lock)
        .await;
    let _ = lock.close().await;
    Ok(RebuildReport {
        previous_version: previous,
        version,
        events,
        rows,
        elapsed: started.elapsed(),
    })
}
