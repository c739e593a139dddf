//! The consumer core: consume a partition, apply a batch to Postgres in one transaction, and
//! advance the position only once the batch is durable.
//!
//! The writer and the projector are both a [`Sink`] plugged into this core, so the delivery
//! discipline lives in one place. Each guarantee has one file that owns it:
//!
//! | guarantee | file |
//! | --- | --- |
//! | the loop: poll, batch, apply; hand partitions over on shutdown; replays | `run.rs` |
//! | bounded batches, and the positions a batch moves to (pure) | `batch.rs` |
//! | every record is batched or recognised as stale; offset gaps; decoding | `intake.rs` |
//! | exactly-once effect: effect and positions in one transaction; retries; isolating refused rows | `commit.rs` |
//! | positions live in Postgres; the zombie fence | `position.rs` |
//! | partition ownership through leases in Postgres | `leases.rs` |
//! | nothing dropped silently: the dead-letter topic | `dead_letter.rs` |
//! | how the member talks to Kafka (librdkafka settings, statistics) | `client.rs` |
//! | what one running member knows about its partitions | `member.rs` |
//! | folding a batch into set-based changes per trace id | `fold.rs` |
//! | metric names and lag gauges | `metrics.rs` |
//!
//! In short:
//!
//! - **Positions live in Postgres** (`consumer_offsets`), written in the same transaction as the
//!   batch's effect. On every partition assignment the member seeks to them. A crash at any point
//!   leaves neither a gap nor a double. Kafka group commits happen afterwards, for lag tooling only.
//! - **Zombie fence**: each batch locks its partitions' rows and checks they still hold the position
//!   this member expects. A member that lost a partition (rebalance, long pause) and wakes up late
//!   rolls back and re-seeks instead of applying stale events.
//! - **Poison records** (undecodable, or breaking the trace rules) go to the dead-letter topic with
//!   their original bytes and provenance headers *before* the batch that skips them commits.
//!   Records Postgres itself refuses (a data error) are isolated one by one with savepoints and
//!   dead-lettered the same way; the rest of the batch still commits.
//! - **Postgres down**: the batch is retried with capped exponential backoff, positions do not move,
//!   readiness turns 503, and consumption resumes by itself.
//! - **Partition ownership** comes from leases in Postgres (`consumer_leases`), not from the
//!   Kafka group protocol: members of a group split the partitions fairly, a killed member's
//!   leases expire after the lease TTL and are taken over, and a clean shutdown hands them over at
//!   once. Before giving a partition up, the in-flight batch is finished (bounded by a timeout) or
//!   abandoned; an abandoned batch is simply re-read by the next owner, because its position never
//!   moved.
//! - **Offset gaps** are records the log no longer holds (compaction, retention): Kafka never
//!   skips a record it holds, so a gap is accepted, counted and logged, never re-fetched.
//!
//! Kafka calls run on a dedicated OS thread with a `BaseConsumer`; Postgres work is driven from it
//! with `Handle::block_on`, so positions are loaded before a partition starts fetching.

mod batch;
mod client;
mod commit;
mod dead_letter;
mod fold;
mod intake;
pub mod leases;
mod member;
mod metrics;
mod position;
mod run;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgConnection;
use tunix_schemas::TraceEvent;

pub use self::fold::{fold, Plan};
pub use self::metrics::ConsumerMetrics;
pub use self::position::{load_positions, stored_positions, Position};
pub use self::run::{replay_until_caught_up, run_group, ReplayProgress};

/// Bound on one broker metadata, watermark or seek call.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

use crate::config::Env;

/// Tuning of one consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Kafka consumer group (and client id prefix).
    pub group_id: String,
    /// This instance's member id in the group's leases: unique per running process. A restarted
    /// instance that reuses its id keeps its partitions without waiting for the lease TTL.
    pub instance_id: String,
    /// How long a lease lives without renewal; a killed instance's partitions move after this.
    pub lease_ttl: Duration,
    /// Flush a batch once it holds this many records.
    pub batch_max_records: usize,
    /// ... or this many bytes of record values.
    pub batch_max_bytes: usize,
    /// ... or when its oldest record has waited this long.
    pub batch_max_wait: Duration,
    /// First retry delay when Postgres fails.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How long a revoke or shutdown may spend finishing the in-flight batch.
    pub drain_timeout: Duration,
    /// Upper bound on one batch transaction; past it the batch is retried.
    pub batch_timeout: Duration,
}

impl ConsumerSettings {
    /// Reads the consumer variables named by `names` (`WRITER_*` or `PROJECTOR_*`).
    pub fn from_env(env: &mut Env, names: &SettingNames, default_group: &str) -> ConsumerSettings {
        ConsumerSettings {
            instance_id: env.string(
                names.instance_id,
                &format!("{}-{}", hostname(), std::process::id()),
            ),
            lease_ttl: env.millis(names.lease_ttl_ms, 10_000),
            group_id: env.string(names.group_id, default_group),
            batch_max_records: env.bounded(names.batch_max_records, 2000, 1, 100_000),
            batch_max_bytes: env.bounded(names.batch_max_bytes, 8 << 20, 1024, 256 << 20),
            batch_max_wait: env.millis(names.batch_max_wait_ms, 100),
            backoff_initial: Duration::from_millis(100),
            backoff_max: env.millis(names.backoff_max_ms, 10_000),
            drain_timeout: env.millis(names.drain_timeout_ms, 10_000),
            batch_timeout: Duration::from_secs(60),
        }
    }

    /// Defaults with the given group (tests).
    pub fn with_group(group_id: &str) -> ConsumerSettings {
        ConsumerSettings {
            group_id: group_id.to_owned(),
            instance_id: format!("{group_id}-1"),
            lease_ttl: Duration::from_secs(10),
            batch_max_records: 2000,
            batch_max_bytes: 8 << 20,
            batch_max_wait: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(10),
            batch_timeout: Duration::from_secs(60),
        }
    }
}

/// This machine's host name (a pod name under Kubernetes), part of the default instance id.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The [`SettingNames`] of a service whose variables start with `$prefix`, e.g.
/// `setting_names!("WRITER")` gives `WRITER_GROUP_ID`, `WRITER_BATCH_MAX_RECORDS`, ...
#[macro_export]
macro_rules! setting_names {
    ($prefix:literal) => {
        $crate::consumer::SettingNames {
            group_id: concat!($prefix, "_GROUP_ID"),
            instance_id: concat!($prefix, "_INSTANCE_ID"),
            lease_ttl_ms: concat!($prefix, "_LEASE_TTL_MS"),
            batch_max_records: concat!($prefix, "_BATCH_MAX_RECORDS"),
            batch_max_bytes: concat!($prefix, "_BATCH_MAX_BYTES"),
            batch_max_wait_ms: concat!($prefix, "_BATCH_MAX_WAIT_MS"),
            backoff_max_ms: concat!($prefix, "_BACKOFF_MAX_MS"),
            drain_timeout_ms: concat!($prefix, "_DRAIN_TIMEOUT_MS"),
        }
    };
}

/// The environment variable names of one consumer's settings.
#[derive(Debug, Clone, Copy)]
pub struct SettingNames {
    /// Consumer group id.
    pub group_id: &'static str,
    /// Member id for partition leases.
    pub instance_id: &'static str,
    /// Lease TTL, in ms.
    pub lease_ttl_ms: &'static str,
    /// Records per batch.
    pub batch_max_records: &'static str,
    /// Bytes per batch.
    pub batch_max_bytes: &'static str,
    /// Linger per batch, in ms.
    pub batch_max_wait_ms: &'static str,
    /// Backoff cap, in ms.
    pub backoff_max_ms: &'static str,
    /// Drain bound, in ms.
    pub drain_timeout_ms: &'static str,
}

/// One decoded record of the topic, with the message it came from (kept for dead-lettering).
#[derive(Debug)]
pub struct Record {
    /// The decoded event.
    pub event: TraceEvent,
    /// The original message: partition, offset, timestamp, key, headers and value bytes.
    pub message: OwnedMessage,
}

impl Record {
    /// The record's partition.
    pub fn partition(&self) -> i32 {
        self.message.partition()
    }
    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.message.offset()
    }
    /// Size of the record value in bytes.
    pub fn value_len(&self) -> usize {
        self.message.payload().map_or(0, <[u8]>::len)
    }
    /// Whether the record is a Kafka tombstone (a null value), whose event was derived from its
    /// key (`tunix_schemas::interpret_tombstone`).
    pub fn is_tombstone(&self) -> bool {
        self.message.payload().is_none()
    }
}

/// What a sink did with a batch, for logs and generic metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Rows created.
    pub inserted: u64,
    /// Submissions whose id already existed (redelivery, retries).
    pub duplicates: u64,
    /// Rows removed by tombstones.
    pub deleted: u64,
    /// Scores recorded or retracted.
    pub scores: u64,
    /// Scores ignored because their trace does not exist (never submitted, or deleted).
    pub orphan_scores: u64,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, rhs: Self) {
        self.inserted += rhs.inserted;
        self.duplicates += rhs.duplicates;
        self.deleted += rhs.deleted;
        self.scores += rhs.scores;
        self.orphan_scores += rhs.orphan_scores;
    }
}

/// A read model maintained from the topic.
pub trait Sink: Send + Sync + 'static {
    /// The name under which positions are stored (`consumer_offsets.target`). Called inside each
    /// batch's transaction, so a sink whose target can change (a rebuild switching versions)
    /// reads it consistently with the batch.
    fn target(
        &self,
        conn: &mut PgConnection,
    ) -> impl std::future::Future<Output = Result<String, sqlx::Error>> + Send;

    /// Applies `records` (in partition-offset order) inside the open transaction `conn`. Must be
    /// idempotent per trace id: replays and redeliveries happen.
    fn apply(
        &self,
        conn: &mut PgConnection,
        target: &str,
        records: &[Record],
    ) -> impl std::future::Future<Output = Result<Applied, sqlx::Error>> + Send;
}

/// What the core needs from a running service besides the sink.
pub struct ConsumerDeps<S: Sink> {
    /// How to reach Kafka, and which topics.
    pub kafka: crate::kafka::KafkaSettings,
    /// Batch and retry tuning.
    pub settings: ConsumerSettings,
    /// The database holding the read model and the positions.
    pub pool: sqlx::PgPool,
    /// The read model.
    pub sink: Arc<S>,
    /// Where readiness is reported (`kafka`, `postgres` checks).
    pub readiness: Arc<crate::ops::Readiness>,
    /// Metric names and handles.
    pub metrics: Arc<ConsumerMetrics>,
    /// Cancelled on shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
}
