//! # tunix-ingest-api
//!
//! Owns the public HTTP address of tunix-rt:
//!
//! - the front door for trace producers (`POST /api/traces`, `POST /api/traces/batch`): bodies
//!   are read under a byte cap (also after decompression), validated with `tunix-schemas`, given
//!   ids, appended to Kafka as Avro events, and acknowledged only after the broker's delivery
//!   report (`acks=all`, idempotent producer);
//! - deletes (`DELETE /api/traces/{id}`, a tombstone event) and the read endpoints over Postgres
//!   (`GET /api/traces`, `GET /api/traces/{id}`);
//! - health, readiness and Prometheus metrics.
//!
//! Where things live: [`router`] (routes and the scope each demands), [`server`] (listening,
//! broker probe, shutdown), [`ingest`] (every write: traces, batches, deletes), [`read`] (the
//! read endpoints), [`body`] (bodies under a byte cap, header rules), [`auth`], [`error`] (one
//! error type, its statuses), [`health`], [`producer`] (appending events), [`openapi`], [`ui`].
//!
//! [`app`] builds the router from an [`AppState`]; [`run`] serves it with graceful shutdown.

pub mod auth;
pub mod body;
pub mod config;
pub mod cors;
pub mod datasets;
pub mod deleted;
pub mod error;
pub mod governance;
pub mod health;
pub mod ingest;
pub mod list;
pub mod metrics;
pub mod openapi;
pub mod parquet_export;
pub mod producer;
pub mod read;
pub mod redi;
pub mod router;
pub mod schema_registry;
pub mod scores;
pub mod server;
pub mod ui;

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tunix_pipeline::ops::Readiness;

pub use config::IngestConfig;
pub use router::{app, openapi_document};
pub use server::{effective_addr, run};

use crate::producer::{EventProducer, ProducerSettings};

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
                compression: cfg.compression.clone(),
                queue_max_messages: cfg.producer_queue_max_messages,
                framing: cfg.event_encoding,
            },
            metrics.clone(),
        )?;
        let mut db = cfg.db.clone();
        db.statement_timeout = Some(read::QUERY_TIMEOUT);
        db.interactive = true;
        let pool = db.pool()?;
        Ok(Arc::new(AppState {
            deleted: deleted::DeletedCheck::new(pool.clone(), read::QUERY_TIMEOUT),
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
