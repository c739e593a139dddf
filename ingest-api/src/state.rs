//! [`AppState`]: what every handler shares (configuration, the producer, the read pool, metric
//! handles, readiness), built once at start-up.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tunix_pipeline::ops::Readiness;

use crate::compat::redi;
use crate::governance::deleted;
use crate::http::read_connections::ReadConnections;
use crate::http::{db, metrics};
use crate::producer::{EventProducer, ProducerSettings};
use crate::IngestConfig;

/// What every handler shares.
pub struct AppState {
    /// Configuration.
    pub cfg: IngestConfig,
    /// Appends events to the topic.
    pub producer: EventProducer,
    /// Hot-path metric handles.
    pub metrics: metrics::IngestMetrics,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// `/readyz` checks: `broker`; draining once shutdown begins.
    pub readiness: Arc<Readiness>,
    /// Read endpoints' pool (lazy: ingestion works while Postgres is down).
    pub pool: PgPool,
    /// Connections of the hottest reads (a trace by id, list pages), `DB_POOL_SIZE` of them,
    /// beside the pool.
    pub reads: ReadConnections,
    /// The batched "is this a deleted trace?" check of keyed POSTs.
    pub deleted: deleted::DeletedCheck,
    /// The upstream health check of `GET /api/redi/health`, with its cache.
    pub redi: redi::RediHealth,
    /// The OpenAPI document, set when the router is built.
    pub openapi: std::sync::OnceLock<utoipa::openapi::OpenApi>,
}

impl AppState {
    /// Builds the state: producer and pool are created, nothing is connected yet.
    pub fn new(cfg: IngestConfig) -> anyhow::Result<Arc<AppState>> {
        // The recorder first: metric handles created before it exists record nothing.
        let prometheus = tunix_pipeline::telemetry::init_metrics();
        let rule_names: Vec<&str> = cfg
            .redaction
            .as_deref()
            .map(|r| r.names().collect())
            .unwrap_or_default();
        let metrics = metrics::IngestMetrics::with_redaction_rules(&rule_names);
        let producer = EventProducer::new(
            &cfg.kafka,
            ProducerSettings {
                timeout: cfg.produce_timeout,
                linger_ms: cfg.linger_ms,
                batch_messages: cfg.batch_messages,
                compression: cfg.compression.clone(),
                queue_max_messages: cfg.producer_queue_max_messages,
                framing: cfg.event_encoding,
            },
            metrics.clone(),
        )?;
        let mut db = cfg.db.clone();
        db.statement_timeout = Some(db::QUERY_TIMEOUT);
        db.interactive = true;
        let pool = db.pool()?;
        let reads = ReadConnections::new(
            pool.connect_options(),
            db.pool_size as usize,
            db.pool_timeout,
        );
        Ok(Arc::new(AppState {
            reads,
            deleted: deleted::DeletedCheck::new(pool.clone(), db::QUERY_TIMEOUT),
            pool,
            producer,
            metrics,
            prometheus,
            readiness: Readiness::new(&["broker"]),
            redi: redi::RediHealth::new(cfg.redi.clone()),
            openapi: std::sync::OnceLock::new(),
            cfg,
        }))
    }
}
