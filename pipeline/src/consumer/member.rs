//! **Owns: what one running instance of a consumer group knows about its partitions.**
//!
//! A [`Member`] is one process's share of a consumer group: the sink and its dependencies, the
//! dead-letter producer, and the [`Ledger`] of the partitions it owns. Each guarantee adds its
//! methods to `Member` in its own file (`intake`, `commit`, `leases`, `position`); the poll loop
//! in `run` ties them together.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::runtime::Handle;

use super::batch::{Batch, Limits};
use super::client::MemberContext;
use super::dead_letter::DeadLetters;
use super::position::Position;
use super::{ConsumerDeps, Sink};

/// The Kafka consumer of a member.
pub(super) type MemberConsumer<S> = BaseConsumer<MemberContext<S>>;

/// Per-partition bookkeeping, shared by the poll loop and librdkafka's statistics callback (which
/// runs inside `poll` on the same thread, so the lock is never contended; it exists for `Sync`).
#[derive(Default)]
pub(super) struct Ledger {
    /// Owned partitions and their committed positions (what the fence expects).
    pub committed: HashMap<i32, Position>,
    /// Next offset each partition should deliver: one past the last record read (batched or
    /// committed). Stale deliveries and gaps are judged against it.
    pub next_fetch: HashMap<i32, Position>,
    /// Records read and not yet applied.
    pub batch: Batch,
    /// Kafka timestamp (ms) of the newest applied record per partition, for `lag_seconds`.
    pub applied_ts: HashMap<i32, i64>,
    /// Latest high watermark per partition, from statistics or watermark queries.
    pub high_watermarks: HashMap<i32, i64>,
}

impl Ledger {
    /// Starts tracking `partition` from `position`.
    pub fn own(&mut self, partition: i32, position: Position) {
        self.committed.insert(partition, position);
        self.next_fetch.insert(partition, position);
    }

    /// Stops tracking `partition` and drops its unapplied records.
    pub fn disown(&mut self, partition: i32) {
        self.batch.retain_partitions(|p| p != partition);
        self.committed.remove(&partition);
        self.next_fetch.remove(&partition);
        self.high_watermarks.remove(&partition);
    }
}

/// One running instance of a consumer group.
pub(super) struct Member<S: Sink> {
    /// The sink, Postgres, settings, metrics, readiness and the shutdown token.
    pub deps: ConsumerDeps<S>,
    /// Drives the Postgres work from the consumer's own thread (`block_on`).
    pub rt: Handle,
    /// Where records that cannot be applied go.
    pub dead_letters: DeadLetters,
    /// What the schema ids of Confluent-framed records mean.
    pub schemas: crate::registry::SchemaResolver,
    ledger: Mutex<Ledger>,
}

impl<S: Sink> Member<S> {
    /// A member with an empty ledger.
    pub fn new(deps: ConsumerDeps<S>, rt: Handle, dead_letters: DeadLetters) -> Member<S> {
        let schemas =
            crate::registry::SchemaResolver::new(deps.kafka.registry.client(), deps.pool.clone());
        Member {
            deps,
            rt,
            dead_letters,
            schemas,
            ledger: Mutex::new(Ledger::default()),
        }
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("consumer ledger lock")
    }

    pub fn topic(&self) -> &str {
        &self.deps.kafka.topic
    }

    pub fn cancelled(&self) -> bool {
        self.deps.shutdown.is_cancelled()
    }

    pub fn limits(&self) -> Limits {
        let s = &self.deps.settings;
        Limits {
            max_records: s.batch_max_records,
            max_bytes: s.batch_max_bytes,
            max_wait: s.batch_max_wait,
        }
    }

    /// Sleeps for `d` unless shutdown begins first. Returns false on shutdown.
    pub fn pause(&self, d: Duration) -> bool {
        let token = self.deps.shutdown.clone();
        self.rt.block_on(async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => true,
                _ = token.cancelled() => false,
            }
        })
    }

    /// Seeks a partition, logging (not failing) when it is no longer ours.
    pub fn seek(&self, consumer: &MemberConsumer<S>, partition: i32, position: Position) {
        if let Err(e) = consumer.seek(
            self.topic(),
            partition,
            position.seek_offset(),
            super::BROKER_TIMEOUT,
        ) {
            tracing::warn!(partition, error = %e, "seek failed");
        }
    }

    /// Sets the lag gauges from the known watermarks and committed positions; returns the total.
    pub fn publish_lag(&self, ledger: &Ledger) -> i64 {
        let now_ms = Utc::now().timestamp_millis();
        let mut total = 0;
        let mut oldest_behind: Option<i64> = None;
        for (p, pos) in &ledger.committed {
            let Some(hi) = ledger.high_watermarks.get(p) else {
                continue;
            };
            let lag = pos.lag_to(*hi);
            self.deps.metrics.set_lag(*p, lag);
            total += lag;
            if lag > 0 {
                let ts = ledger.applied_ts.get(p).copied().unwrap_or(now_ms);
                oldest_behind = Some(oldest_behind.map_or(ts, |o: i64| o.min(ts)));
            }
        }
        let seconds = oldest_behind.map_or(0.0, |ts| ((now_ms - ts).max(0) as f64) / 1000.0);
        self.deps.metrics.lag_seconds.set(seconds);
        total
    }
}
