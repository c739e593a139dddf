//! One way to start a consumer service: the writer and the projector are this runner with their
//! sink (and the projector with one extra task).
//!
//! [`ServiceConfig`] is the configuration they share (Kafka, Postgres, the consumer's batching and
//! leases, the ops address, migrations, log format), read with the service's own variable names.
//! [`run_consumer_service`] serves `/healthz`, `/readyz` and `/metrics`, applies migrations
//! (waiting for Postgres), runs the consumer group on its own thread until shutdown, and drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Env};
use crate::consumer::{
    run_group, ConsumerDeps, ConsumerMetrics, ConsumerSettings, SettingNames, Sink,
};
use crate::db::DbSettings;
use crate::kafka::KafkaSettings;
use crate::ops::{ops_router, OpsState, Readiness};
use crate::telemetry::LogFormat;

/// Configuration of a consumer service (the writer's or the projector's), from the environment.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Kafka brokers and topics.
    pub kafka: KafkaSettings,
    /// Postgres.
    pub db: DbSettings,
    /// Batching, leases and retries.
    pub consumer: ConsumerSettings,
    /// Where `/healthz`, `/readyz`, `/metrics` are served (`WRITER_OPS_ADDR`, ...).
    pub ops_addr: SocketAddr,
    /// `RUN_MIGRATIONS`: apply pending migrations at start-up.
    pub run_migrations: bool,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
}

/// How one consumer service names its settings and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// The program, e.g. `tunix-writer` (also the default consumer group).
    pub program: &'static str,
    /// Metric prefix of the consumer core's metrics, e.g. `tunix_writer`.
    pub metrics_prefix: &'static str,
    /// The consumer's variable names (`WRITER_*`).
    pub settings: SettingNames,
    /// The ops address variable, e.g. `WRITER_OPS_ADDR`.
    pub ops_addr_var: &'static str,
    /// Its default.
    pub ops_addr_default: SocketAddr,
}

impl ServiceConfig {
    /// Reads every variable of `spec`, reporting all problems at once.
    pub fn from_env(spec: &ServiceSpec, mut env: Env) -> Result<ServiceConfig, ConfigError> {
        let cfg = ServiceConfig::read(spec, &mut env);
        env.finish()?;
        Ok(cfg)
    }

    /// Every environment variable the service reads (documentation tests check the README).
    pub fn variables(spec: &ServiceSpec) -> Vec<&'static str> {
        let mut env = Env::from_map(Vec::<(String, String)>::new());
        ServiceConfig::read(spec, &mut env);
        env.names_read()
    }

    fn read(spec: &ServiceSpec, env: &mut Env) -> ServiceConfig {
        let kafka = KafkaSettings::from_env(env);
        let consumer = ConsumerSettings::from_env(env, &spec.settings, spec.program);
        ServiceConfig {
            kafka,
            db: DbSettings::from_env(env),
            consumer,
            ops_addr: env.parse(spec.ops_addr_var, spec.ops_addr_default),
            run_migrations: env.flag("RUN_MIGRATIONS", true),
            log_format: env.parse("LOG_FORMAT", LogFormat::Text),
        }
    }
}

/// Binds a service's listening address, naming the variable it came from on failure.
pub async fn bind(addr: SocketAddr, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {variable}={addr}: {e}"))
}

/// Runs a consumer service until `shutdown` is cancelled: ops endpoints on `ops_listener`,
/// migrations (when configured), then `alongside` (extra tasks, given the pool and the shutdown
/// token) and the consumer group on a dedicated thread. Returns when both the consumer and the
/// ops server have stopped.
///
/// `make_sink` runs after the Prometheus recorder is installed: metric handles a sink creates
/// before that would record nothing.
pub async fn run_consumer_service<S, F, Fut>(
    spec: &ServiceSpec,
    cfg: ServiceConfig,
    make_sink: impl FnOnce() -> S,
    ops_listener: TcpListener,
    shutdown: CancellationToken,
    alongside: F,
) -> anyhow::Result<()>
where
    S: Sink,
    F: FnOnce(PgPool, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    cfg.kafka.check_access().await?;
    let metrics = crate::telemetry::init_metrics();
    let sink = Arc::new(make_sink());
    let readiness = Readiness::new(&["kafka", "postgres"]);
    let pool = cfg.db.pool()?;
    tracing::info!(
        database = %cfg.db.redacted_url(),
        brokers = %cfg.kafka.brokers,
        topic = %cfg.kafka.topic,
        group = %cfg.consumer.group_id,
        ops = %ops_listener.local_addr()?,
        "{} starting",
        spec.program
    );
    let ops = tokio::spawn(crate::http::serve(
        ops_listener,
        ops_router(OpsState {
            readiness: readiness.clone(),
            metrics,
        }),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    if cfg.run_migrations {
        crate::db::migrate_with_retry(&pool, &readiness, &shutdown).await;
    }
    tokio::spawn(alongside(pool.clone(), shutdown.clone()));
    let deps = ConsumerDeps {
        kafka: cfg.kafka,
        settings: cfg.consumer,
        pool,
        sink,
        readiness: readiness.clone(),
        metrics: Arc::new(ConsumerMetrics::new(spec.metrics_prefix)),
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
