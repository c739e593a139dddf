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

pub mod rebuild;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tunix_pipeline::config::{ConfigError, Env};
use tunix_pipeline::consumer::{
    run_group, ConsumerDeps, ConsumerMetrics, ConsumerSettings, SettingNames,
};
use tunix_pipeline::db::DbSettings;
use tunix_pipeline::kafka::KafkaSettings;
use tunix_pipeline::ops::{ops_router, OpsState, Readiness};
use tunix_pipeline::telemetry::LogFormat;

/// The projector's consumer setting names.
pub const SETTING_NAMES: SettingNames = SettingNames {
    group_id: "PROJECTOR_GROUP_ID",
    instance_id: "PROJECTOR_INSTANCE_ID",
    lease_ttl_ms: "PROJECTOR_LEASE_TTL_MS",
    batch_max_records: "PROJECTOR_BATCH_MAX_RECORDS",
    batch_max_bytes: "PROJECTOR_BATCH_MAX_BYTES",
    batch_max_wait_ms: "PROJECTOR_BATCH_MAX_WAIT_MS",
    backoff_max_ms: "PROJECTOR_BACKOFF_MAX_MS",
    drain_timeout_ms: "PROJECTOR_DRAIN_TIMEOUT_MS",
};

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
}

/// Projector configuration, from the environment.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Kafka brokers and topics.
    pub kafka: KafkaSettings,
    /// Postgres.
    pub db: DbSettings,
    /// Batching, leases and retries.
    pub consumer: ConsumerSettings,
    /// `PROJECTOR_OPS_ADDR`: where `/healthz`, `/readyz`, `/metrics` are served.
    pub ops_addr: SocketAddr,
    /// `RUN_MIGRATIONS`: apply pending migrations at start-up.
    pub run_migrations: bool,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
}

impl ProjectorConfig {
    /// Reads every variable, reporting all problems at once.
    pub fn from_env(mut env: Env) -> Result<ProjectorConfig, ConfigError> {
        let cfg = ProjectorConfig::read(&mut env);
        env.finish()?;
        Ok(cfg)
    }

    /// Every environment variable the projector reads (documentation tests check the README).
    pub fn variables() -> Vec<&'static str> {
        let mut env = Env::from_map(Vec::<(String, String)>::new());
        ProjectorConfig::read(&mut env);
        env.names_read()
    }

    fn read(env: &mut Env) -> ProjectorConfig {
        ProjectorConfig {
            kafka: KafkaSettings::from_env(env),
            db: DbSettings::from_env(env),
            consumer: ConsumerSettings::from_env(env, &SETTING_NAMES, "tunix-projector"),
            ops_addr: env.parse(
                "PROJECTOR_OPS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9102)),
            ),
            run_migrations: env.flag("RUN_MIGRATIONS", true),
            log_format: env.parse("LOG_FORMAT", LogFormat::Text),
        }
    }
}

/// `projection_state` columns read for the gauges.
type RebuildRow = (
    i32,
    Option<i64>,
    Option<i64>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// Exports the active view version and any running rebuild's progress (from `projection_state`).
fn spawn_view_gauges(pool: sqlx::PgPool, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = shutdown.cancelled() => return,
            }
            let row: Result<RebuildRow, _> = sqlx::query_as(
                "SELECT active_version, rebuild_applied, rebuild_lag, rebuild_updated_at
                 FROM projection_state WHERE name = $1",
            )
            .bind(view::VIEW_NAME)
            .fetch_one(&pool)
            .await;
            let Ok((version, applied, lag, updated)) = row else {
                continue;
            };
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
    });
}

/// Runs the projector until `shutdown` is cancelled: ops endpoints on `ops_listener`, consumer on
/// a dedicated thread.
pub async fn run(
    cfg: ProjectorConfig,
    ops_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = tunix_pipeline::telemetry::init_metrics();
    let readiness = Readiness::new(&["kafka", "postgres"]);
    let pool = cfg.db.pool()?;
    tracing::info!(
        database = %cfg.db.redacted_url(),
        brokers = %cfg.kafka.brokers,
        topic = %cfg.kafka.topic,
        group = %cfg.consumer.group_id,
        ops = %ops_listener.local_addr()?,
        "projector starting"
    );
    let ops = tokio::spawn(tunix_pipeline::http::serve(
        ops_listener,
        ops_router(OpsState {
            readiness: readiness.clone(),
            metrics,
        }),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    if cfg.run_migrations {
        tunix_pipeline::db::migrate_with_retry(&pool, &readiness, &shutdown).await;
    }
    spawn_view_gauges(pool.clone(), shutdown.clone());
    let deps = ConsumerDeps {
        kafka: cfg.kafka.clone(),
        settings: cfg.consumer.clone(),
        pool,
        sink: Arc::new(view::ViewSink),
        readiness: readiness.clone(),
        metrics: Arc::new(ConsumerMetrics::new("tunix_projector")),
        shutdown: shutdown.clone(),
    };
    let rt = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || run_group(deps, rt)).await;
    readiness.start_draining();
    shutdown.cancel();
    let _ = ops.await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("consumer failed: {e}")),
        Err(e) => Err(anyhow::anyhow!("consumer thread panicked: {e}")),
    }
}
