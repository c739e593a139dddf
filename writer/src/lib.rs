//! # tunix-writer
//!
//! Owns the `traces` table: every acknowledged trace, durable in Postgres with its full payload,
//! exactly once in effect.
//!
//! The writer is a [`Sink`] for the shared consumer core (`tunix_pipeline::consumer`), which
//! provides batching, positions stored in Postgres in the same transaction, the zombie fence,
//! dead-lettering and Postgres-outage backoff. This crate adds what is specific to the table:
//!
//! - each batch becomes a few set-based statements ([`store`]): deletions are recorded in
//!   `trace_deletions` and their rows removed; submissions are upserted from `unnest(...)` into a
//!   `json` payload column that keeps every trace exactly as submitted;
//! - the rules agree with a compacted topic (see `tunix_pipeline::consumer::fold`): the *last*
//!   submission of an id wins, and a deleted id is never stored again;
//! - a submission that replaces a *different* payload (an `Idempotency-Key` reused with another
//!   body) is reported (`tunix_writer_idempotency_conflicts_total`, a warning naming the id and
//!   key); the later submission stays stored, as compaction would keep it.
//!
//! **Where positions live.** In Postgres (`consumer_offsets`, target `traces`), committed with the
//! rows; Kafka group commits follow for lag tooling only. Inserts are idempotent anyway, but
//! keeping the position with the rows means a crash never re-does work and the fence stops a
//! zombie writer from re-applying a submission after a newer tombstone.

pub mod store;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use metrics::{counter, histogram, Counter, Histogram};
use sqlx::PgConnection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tunix_pipeline::config::{ConfigError, Env};
use tunix_pipeline::consumer::{fold, Applied, Record, Sink};
use tunix_pipeline::service::{run_consumer_service, ServiceConfig, ServiceSpec};
use tunix_schemas::TraceSubmitted;

/// The positions target of the writer (its table).
pub const TARGET: &str = "traces";

/// Metric names specific to the writer (the core adds `tunix_writer_*` consumer metrics).
pub mod metric_names {
    /// Rows created in `traces`.
    pub const ROWS_INSERTED: &str = "tunix_writer_rows_inserted_total";
    /// Submissions whose id already had a row (a redelivery, a keyed retry: the row is replaced
    /// by the later submission, last wins) or is deleted (skipped). The name predates
    /// replacing and stays: metric names are a public contract.
    pub const DUPLICATES_SKIPPED: &str = "tunix_writer_duplicates_skipped_total";
    /// Rows removed by tombstones.
    pub const ROWS_DELETED: &str = "tunix_writer_rows_deleted_total";
    /// Time of the batch INSERT statement.
    pub const INSERT_LATENCY: &str = "tunix_writer_insert_latency_seconds";
    /// Submissions whose Idempotency-Key was already used for a different body (the last stays).
    pub const IDEMPOTENCY_CONFLICTS: &str = "tunix_writer_idempotency_conflicts_total";
}

/// Writer configuration, from the environment (the shared consumer-service settings).
pub type WriterConfig = ServiceConfig;

/// The writer's variable and metric names.
pub const SPEC: ServiceSpec = ServiceSpec {
    program: "tunix-writer",
    metrics_prefix: "tunix_writer",
    settings: tunix_pipeline::setting_names!("WRITER"),
    ops_addr_var: concat!("WRITER", "_OPS_ADDR"),
    ops_addr_default: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9101),
};

/// Reads the writer's configuration, reporting all problems at once.
pub fn config_from_env(env: Env) -> Result<WriterConfig, ConfigError> {
    ServiceConfig::from_env(&SPEC, env)
}

/// Every environment variable the writer reads (documentation tests check the README).
pub fn variables() -> Vec<&'static str> {
    ServiceConfig::variables(&SPEC)
}

/// The `traces` table as a consumer sink.
pub struct TracesSink {
    inserted: Counter,
    duplicates: Counter,
    deleted: Counter,
    conflicts: Counter,
    insert_latency: Histogram,
}

impl Default for TracesSink {
    fn default() -> Self {
        TracesSink {
            inserted: counter!(metric_names::ROWS_INSERTED),
            duplicates: counter!(metric_names::DUPLICATES_SKIPPED),
            deleted: counter!(metric_names::ROWS_DELETED),
            conflicts: counter!(metric_names::IDEMPOTENCY_CONFLICTS),
            insert_latency: histogram!(metric_names::INSERT_LATENCY),
        }
    }
}

impl Sink for TracesSink {
    async fn target(&self, _conn: &mut PgConnection) -> Result<String, sqlx::Error> {
        Ok(TARGET.to_owned())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _target: &str,
        records: &[Record],
    ) -> Result<Applied, sqlx::Error> {
        let plan = fold(records);
        let mut applied = Applied::default();
        if !plan.delete.is_empty() {
            applied.deleted = store::delete(conn, &plan.delete).await?;
        }
        let mut conflicts: Vec<&TraceSubmitted> = plan.in_batch_conflicts.clone();
        if !plan.insert.is_empty() {
            let started = Instant::now();
            let up = store::upsert(conn, &plan.insert, &plan.first).await?;
            self.insert_latency.record(started.elapsed().as_secs_f64());
            applied.inserted = up.inserted;
            applied.duplicates = up.existing + up.deleted;
            conflicts.extend(
                plan.insert
                    .iter()
                    .copied()
                    .filter(|s| up.differing.contains(&s.id)),
            );
        }
        applied.duplicates += plan.in_batch_duplicates;
        for s in &conflicts {
            tracing::warn!(
                id = %s.id,
                idempotency_key = s.idempotency_key.as_deref().unwrap_or_default(),
                "Idempotency-Key reused with a different body; the later submission is stored"
            );
        }
        // Counted here, before commit: a rolled-back batch is retried and would count again, so
        // these are "rows written by committed or retried attempts"; the core's
        // records_applied_total counts committed records only.
        self.inserted.increment(applied.inserted);
        self.duplicates.increment(applied.duplicates);
        self.deleted.increment(applied.deleted);
        self.conflicts.increment(conflicts.len() as u64);
        Ok(applied)
    }
}

/// Runs the writer until `shutdown` is cancelled: ops endpoints on `ops_listener`, consumer on a
/// dedicated thread. Returns when both have stopped.
pub async fn run(
    cfg: WriterConfig,
    ops_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_consumer_service(
        &SPEC,
        cfg,
        TracesSink::default,
        ops_listener,
        shutdown,
        |_, _| async {},
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_errors() {
        let cfg = config_from_env(Env::from_map(Vec::<(String, String)>::new())).unwrap();
        assert_eq!(cfg.consumer.group_id, "tunix-writer");
        assert_eq!(cfg.ops_addr.port(), 9101);
        let err = config_from_env(Env::from_map([
            ("WRITER_BATCH_MAX_RECORDS", "0"),
            ("WRITER_OPS_ADDR", "nope"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }
}
