//! # tunix-testkit
//!
//! Helpers for tests that run against the **real** Postgres and Kafka-protocol broker started by
//! `infra/test.sh` (it exports `TUNIX_TEST_DATABASE_URL` and `TUNIX_TEST_KAFKA_BROKERS`):
//!
//! - [`TestDb`]: a fresh, migrated database per test, dropped afterwards;
//! - [`TestTopic`]: a fresh topic (and dead-letter topic) per test;
//! - [`Service`]: a service binary as a child process, to SIGKILL, SIGTERM and restart;
//! - [`PgCluster`]: a private Postgres for tests that stop it;
//! - [`Broker`] and [`KafkaCluster`]: private Apache Kafka nodes for tests that stop, kill or
//!   cluster brokers, and [`kafka_tool`] for Kafka's own admin tools;
//! - [`ApicurioRegistry`]: a real external Schema Registry (Apicurio Registry, through its
//!   Confluent-compatible API) to kill and restart;
//! - [`eventually`]: poll-with-deadline instead of sleeps;
//! - [`arb`]: generators of hostile trace bodies for property tests.

pub mod arb;
mod broker;
mod kafka;
mod process;
mod registry;
mod stack;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use broker::{kafka_libs, kafka_tool, Broker, ClusterOptions, KafkaCluster, KafkaNode};
pub use kafka::{consume_all, produce_events, produce_null, produce_raw, TestTopic};
pub use process::{binary, free_port, run_to_exit, Service};
pub use registry::ApicurioRegistry;
pub use stack::{PgCluster, TestDb};

/// The Postgres server tests create their databases on (an admin URL, any database).
pub fn database_url() -> String {
    std::env::var("TUNIX_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TUNIX_TEST_DATABASE_URL is not set: run the suite with ./infra/test.sh, which starts Postgres and the broker")
    })
}

/// The broker tests create their topics on.
pub fn kafka_brokers() -> String {
    std::env::var("TUNIX_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("TUNIX_TEST_KAFKA_BROKERS is not set: run the suite with ./infra/test.sh, which starts Postgres and the broker")
    })
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_path_buf()
}

/// Where tests leave files worth keeping (logs of killed services, screenshots).
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var("TUNIX_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("artifacts"));
    std::fs::create_dir_all(&dir).expect("create artifacts dir");
    dir
}

/// A short random suffix for names of databases, topics and groups.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{prefix}_{:012x}", n & 0xffff_ffff_ffff)
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// The 550 seed traces as JSON values.
pub fn dataset() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo_root().join("testdata/dev-reasoning-v2.jsonl"))
        .expect("read testdata/dev-reasoning-v2.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("dataset line is JSON"))
        .collect()
}

/// The seed traces as validated [`tunix_schemas::Trace`]s.
pub fn dataset_traces() -> Vec<tunix_schemas::Trace> {
    dataset()
        .iter()
        .map(|v| {
            tunix_schemas::Trace::parse_json(serde_json::to_string(v).unwrap().as_bytes())
                .expect("dataset traces are valid")
        })
        .collect()
}

/// A submitted event for `trace` with a fresh id.
pub fn submitted(trace: tunix_schemas::Trace) -> tunix_schemas::TraceEvent {
    tunix_schemas::TraceEvent::Submitted(tunix_schemas::TraceSubmitted {
        id: tunix_schemas::ids::new_trace_id(),
        created_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
        trace,
        idempotency_key: None,
    })
}

/// A tombstone for `id`.
pub fn deleted(id: uuid::Uuid) -> tunix_schemas::TraceEvent {
    tunix_schemas::TraceEvent::Deleted(tunix_schemas::TraceDeleted {
        id,
        deleted_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
        reason: Some("test".into()),
    })
}
