//! The benchmark suites behind the `tunix-bench` subcommands, one module per suite named after
//! its subcommand (`produce-raw` is `produce_raw`; `ingest` is the binary's own loop over
//! [`crate::load`]). Each module's doc ends with its command, run from the repository root
//! against the local stack (`./infra/up.sh`) after `cargo build --release -p tunix-bench`.
//!
//! This module holds only what several suites share: where the stack is ([`StackEnv`]), the
//! producer, loads against the stack's ingest-api and the stack's processes.

pub mod codec;
pub mod consumers;
pub mod cost;
pub mod export;
pub mod failover;
pub mod freshness;
pub mod otlp;
pub mod produce_raw;
pub mod read;
pub mod soak;
pub mod speed;

pub use codec::codec;
pub use consumers::consumers;
pub use cost::{cost, StackProcesses};
pub use export::export;
pub use failover::{failover, FailoverSpec};
pub use freshness::freshness;
pub use otlp::{otlp, OtlpSpec};
pub use produce_raw::produce_raw;
pub use read::read;
pub use soak::soak;
pub use speed::{speed, SpeedSpec};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use tunix_pipeline::kafka::KafkaSettings;
use tunix_schemas::{Trace, TraceEvent, TraceSubmitted};

use crate::gen::Shape;
use crate::load::{LoadSpec, Stop};
use crate::report::{self, ProcessSamples};

/// Where the stack's Postgres and broker are: the environment, else `.stack/env` (written by
/// `infra/up.sh`), else the local-stack defaults.
pub struct StackEnv {
    /// `DATABASE_URL` of the stack (benchmarks create their own databases next to it).
    pub database_url: String,
    /// `KAFKA_BROKERS`.
    pub brokers: String,
}

impl StackEnv {
    /// Resolves the addresses.
    pub fn from_env(root: &Path) -> StackEnv {
        let mut file: HashMap<String, String> = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(root.join(".stack/env")) {
            for line in text.lines() {
                if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                    file.insert(k.to_owned(), v.trim_matches('\'').to_owned());
                }
            }
        }
        let get = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .or_else(|| file.get(k).cloned())
                .unwrap_or_else(|| d.to_owned())
        };
        StackEnv {
            database_url: get("DATABASE_URL", tunix_pipeline::db::DEFAULT_DATABASE_URL),
            brokers: get("KAFKA_BROKERS", tunix_pipeline::kafka::DEFAULT_BROKERS),
        }
    }

    /// Creates and migrates a fresh database next to the stack's; returns its URL and a pool.
    pub async fn fresh_database(&self, prefix: &str) -> anyhow::Result<(String, PgPool)> {
        let name = format!("{prefix}_{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let mut admin = PgConnectOptions::from_str(&self.database_url)?
            .connect()
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = tunix_pipeline::db::with_database(&self.database_url, &name);
        let pool = bench_pool(&url).await?;
        tunix_pipeline::db::migrate(&pool).await?;
        eprintln!("bench database: {name}");
        Ok((url, pool))
    }

    /// Drops a bench database.
    pub async fn drop_database(&self, url: &str) {
        let Some(name) = url
            .rsplit('/')
            .next()
            .map(|n| n.split('?').next().unwrap_or(n).to_owned())
        else {
            return;
        };
        if let Ok(admin) = PgConnectOptions::from_str(&self.database_url) {
            if let Ok(mut conn) = admin.connect().await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }

    /// Creates a fresh topic with 6 partitions (and its dead-letter topic).
    pub async fn fresh_topic(&self, prefix: &str) -> anyhow::Result<KafkaSettings> {
        let name = format!("{prefix}_{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let settings = KafkaSettings::new(&self.brokers, &name);
        settings.ensure_topics(Duration::from_secs(30)).await?;
        Ok(settings)
    }

    /// Deletes a bench topic and its dead-letter topic, so benchmarks leave the broker as they
    /// found it. A failure is reported, not fatal: the figures are already taken.
    pub async fn delete_topic(&self, topic: &KafkaSettings) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        let deleted = async {
            let admin: AdminClient<rdkafka::client::DefaultClientContext> =
                topic.client_config().create()?;
            admin
                .delete_topics(&[&topic.topic, &topic.dlq_topic], &AdminOptions::new())
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = deleted.await {
            eprintln!("could not delete bench topic {}: {e}", topic.topic);
        }
    }
}

/// A pool on a bench database.
async fn bench_pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?)
}

pub(crate) fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", "17825792")
        .set("queue.buffering.max.messages", "500000")
        .create()?)
}

pub(crate) fn submitted(trace: Trace) -> TraceEvent {
    TraceEvent::Submitted(TraceSubmitted {
        id: tunix_schemas::ids::new_trace_id(),
        created_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
        trace,
        idempotency_key: None,
    })
}

fn find_root(start: &Path) -> PathBuf {
    let mut dir = start.to_path_buf();
    while !dir.join("testdata").exists() && dir.pop() {}
    dir
}

fn quantiles(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.99), *samples.last().unwrap_or(&f64::NAN))
}

/// A load of dataset traces in single POSTs to the stack's ingest-api at `addr` (with
/// `TUNIX_API_KEY`, if set), without idempotency keys, collecting nothing.
pub(crate) fn stack_load(
    addr: &str,
    root: &Path,
    concurrency: usize,
    stop: Stop,
    rate: Option<f64>,
    seed: u64,
) -> LoadSpec {
    LoadSpec {
        addr: addr.to_owned(),
        concurrency,
        stop,
        rate,
        batch: 0,
        shape: Shape::Dataset,
        api_key: std::env::var("TUNIX_API_KEY").ok(),
        idempotency_keys: false,
        collect_ids: false,
        seed,
        repo_root: root.to_path_buf(),
        ack_tx: None,
    }
}

/// The processes `names` of the stack whose pid files are in `pid_dir` (where `infra/up.sh`
/// keeps them), in that order; `postgres` counts the postmaster and every backend, under
/// `postgres_label`.
pub(crate) fn stack_processes(
    pid_dir: &Path,
    names: &[&str],
    postgres_label: &str,
) -> Vec<ProcessSamples> {
    names
        .iter()
        .filter_map(|name| {
            report::read_pid(&pid_dir.join(format!("{name}.pid"))).map(|pid| match *name {
                "postgres" => ProcessSamples::tree(postgres_label, pid),
                _ => ProcessSamples::new(name, pid),
            })
        })
        .collect()
}
