//! # tunix-projector
//!
//! Owns the list view (`trace_list`), the read model behind `GET /api/traces`: one row per trace
//! with the summary the UI lists, indexed for newest-first paging and version filters.
//!
//! - **Maintenance**: a [`view::ViewSink`] plugged into the shared consumer core, so positions are
//!   stored in Postgres in the same transaction as the view changes (exactly-once effect, no gap,
//!   no double after any crash), deletes are applied, and poison records go to the DLQ.
//! - **Rebuild** ([`rebuild::rebuild`], `tunix-projector rebuild`): replays the topic from offset 0
//!   into a fresh version of the view while the service keeps serving the current one, then
//!   switches the `trace_list` view to it in one transaction.

pub mod audit;
pub mod datasets;
pub mod rebuild;
pub mod scores;
pub mod view;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tunix_pipeline::config::{ConfigError, Env};
use tunix_pipeline::service::{run_consumer_service, ServiceConfig, ServiceSpec};

/// Metric names specific to the projector (the core adds the `tunix_projector_*` consumer
/// metrics: events applied, lag in records and seconds, batch latency, ...).
pub mod metric_names {
    /// The active version of the list view.
    pub const VIEW_VERSION: &str = "tunix_projector_view_version";
    /// 1 while a rebuild runs, else 0.
    pub const REBUILD_IN_PROGRESS: &str = "tunix_projector_rebuild_in_progress";
    /// Fraction of the topic a running rebuild has applied (0..1).
    pub const REBUILD_PROGRESS: &str = "tunix_projector_rebuild_progress_ratio";
    /// Records a running rebuild still has to apply.
    pub const REBUILD_LAG: &str = "tunix_projector_rebuild_lag_records";
    /// Score recordings and retractions applied to the scores table.
    pub const SCORES_APPLIED: &str = "tunix_projector_scores_applied_total";
    /// Scores ignored because their trace is deleted.
    pub const SCORES_IGNORED: &str = "tunix_projector_scores_ignored_total";
    /// Tombstones the projector appended for deleted traces' keys (the erasure outbox).
    pub const TOMBSTONES_APPENDED: &str = "tunix_projector_tombstones_appended_total";
    /// Tombstones queued in the erasure outbox, not yet appended.
    pub const ERASURE_OUTBOX: &str = "tunix_projector_erasure_outbox";
}

/// Projector configuration, from the environment (the shared consumer-service settings).
pub type ProjectorConfig = ServiceConfig;

/// The projector's variable and metric names.
pub const SPEC: ServiceSpec = ServiceSpec {
    program: "tunix-projector",
    metrics_prefix: "tunix_projector",
    settings: tunix_pipeline::setting_names!("PROJECTOR"),
    ops_addr_var: concat!("PROJECTOR", "_OPS_ADDR"),
    ops_addr_default: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9102),
};

/// Reads the projector's configuration, reporting all problems at once.
pub fn config_from_env(env: Env) -> Result<ProjectorConfig, ConfigError> {
    ServiceConfig::from_env(&SPEC, env)
}

/// Every environment variable the projector reads (documentation tests check the README).
pub fn variables() -> Vec<&'static str> {
    ServiceConfig::variables(&SPEC)
}

/// Exports the active view version and any running rebuild's progress (from `projection_state`)
/// every two seconds, until shutdown.
async fn view_gauges(pool: sqlx::PgPool, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = shutdown.cancelled() => return,
        }
        let row = sqlx::query!(
            "SELECT active_version, rebuild_applied, rebuild_lag, rebuild_updated_at
             FROM projection_state WHERE name = $1",
            view::VIEW_NAME
        )
        .fetch_one(&pool)
        .await;
        let Ok(row) = row else {
            continue;
        };
        let (version, applied, lag, updated) = (
            row.active_version,
            row.rebuild_applied,
            row.rebuild_lag,
            row.rebuild_updated_at,
        );
        metrics::gauge!(metric_names::VIEW_VERSION).set(f64::from(version));
        // A rebuild that stopped reporting for a minute died; do not show it as running.
        let running =
            updated.is_some_and(|t| chrono::Utc::now() - t < chrono::Duration::seconds(60));
        let (applied, lag) = (applied.unwrap_or(0), lag.unwrap_or(0));
        metrics::gauge!(metric_names::REBUILD_IN_PROGRESS).set(if running { 1.0 } else { 0.0 });
        metrics::gauge!(metric_names::REBUILD_LAG).set(if running { lag as f64 } else { 0.0 });
        let ratio = if applied + lag > 0 {
            applied as f64 / (applied + lag) as f64
        } else {
            0.0
        };
        metrics::gauge!(metric_names::REBUILD_PROGRESS).set(if running { ratio } else { 0.0 });
    }
}

/// Runs the projector until `shutdown` is cancelled: ops endpoints on `ops_listener`, the view
/// gauges, the erasure outbox's drain, and the consumer on a dedicated thread.
pub async fn run(
    cfg: ProjectorConfig,
    ops_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kafka = cfg.kafka.clone();
    run_consumer_service(
        &SPEC,
        cfg,
        view::ViewSink::default,
        ops_listener,
        shutdown,
        move |pool, shutdown| async move {
            tokio::join!(
                view_gauges(pool.clone(), shutdown.clone()),
                tunix_pipeline::erasure::drain_outbox(
                    pool,
                    kafka,
                    SPEC.metrics_prefix,
                    Duration::from_millis(250),
                    shutdown,
                )
            );
        },
    )
    .await
}
