//! **Owns: bounded batches and the positions a batch moves to.** Pure: no I/O.
//!
//! Records read but not yet applied collect in a [`Batch`] until one of its limits is reached
//! (records, bytes of record values, or the age of its oldest record). When the batch commits,
//! each of its partitions moves to one past its highest offset ([`Batch::next_positions`]); poison
//! records count, since they are dead-lettered before the commit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::message::{Message, OwnedMessage};

use super::Record;

/// A record that cannot be applied (undecodable, or breaking the trace rules): it goes to the
/// dead-letter topic with the batch.
pub(super) struct Poison {
    /// The original message, kept for the dead letter.
    pub message: OwnedMessage,
    /// A stable label (`bad_magic`, `unknown_schema`, `empty`, ...).
    pub reason: &'static str,
    /// What went wrong, for the dead letter's headers and the log.
    pub error: String,
}

/// When a batch is flushed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Records (poison included).
    pub max_records: usize,
    /// Bytes of record values.
    pub max_bytes: usize,
    /// Age of the oldest record.
    pub max_wait: Duration,
}

/// Records read but not yet applied.
#[derive(Default)]
pub(super) struct Batch {
    /// Decoded records, in partition-offset order per partition.
    pub records: Vec<Record>,
    /// Records for the dead-letter topic.
    pub poison: Vec<Poison>,
    /// (partition, offset) of records with nothing to apply (tombstones of dataset or audit
    /// keys): they only move the position.
    pub skipped: Vec<(i32, i64)>,
    /// Bytes of record values held.
    bytes: usize,
    /// When the oldest record arrived (the linger deadline counts from here).
    first_at: Option<Instant>,
}

impl Batch {
    /// Records held, poison included.
    pub fn len(&self) -> usize {
        self.records.len() + self.poison.len() + self.skipped.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn arrived(&mut self, value_len: usize, now: Instant) {
        self.bytes += value_len;
        self.first_at.get_or_insert(now);
    }

    /// Adds a decoded record that arrived at `now`.
    pub fn push(&mut self, record: Record, now: Instant) {
        self.arrived(record.value_len(), now);
        self.records.push(record);
    }

    /// Adds a poison record that arrived at `now`.
    pub fn push_poison(&mut self, poison: Poison, now: Instant) {
        self.arrived(poison.message.payload().map_or(0, <[u8]>::len), now);
        self.poison.push(poison);
    }

    /// Adds a record with nothing to apply, at (`partition`, `offset`).
    pub fn push_skipped(&mut self, partition: i32, offset: i64, now: Instant) {
        self.arrived(0, now);
        self.skipped.push((partition, offset));
    }

    /// Keeps only the records of partitions for which `keep` holds.
    pub fn retain_partitions(&mut self, keep: impl Fn(i32) -> bool) {
        self.records.retain(|r| keep(r.partition()));
        self.poison.retain(|p| keep(p.message.partition()));
        self.skipped.retain(|(p, _)| keep(*p));
        if self.is_empty() {
            self.first_at = None;
            self.bytes = 0;
        }
    }

    /// Whether the batch should be applied now.
    pub fn is_full(&self, limits: &Limits, now: Instant) -> bool {
        !self.is_empty()
            && (self.len() >= limits.max_records
                || self.bytes >= limits.max_bytes
                || self
                    .first_at
                    .is_some_and(|t| now.duration_since(t) >= limits.max_wait))
    }

    /// How long the next poll may block: until the linger deadline, or `idle` when empty.
    pub fn poll_wait(&self, limits: &Limits, idle: Duration, now: Instant) -> Duration {
        match self.first_at {
            None => idle,
            Some(first) => limits.max_wait.saturating_sub(now.duration_since(first)),
        }
    }

    fn offsets(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.records
            .iter()
            .map(|r| (r.partition(), r.offset()))
            .chain(
                self.poison
                    .iter()
                    .map(|p| (p.message.partition(), p.message.offset())),
            )
            .chain(self.skipped.iter().copied())
    }

    /// The partitions the batch touches, sorted.
    pub fn partitions(&self) -> Vec<i32> {
        let mut ps: Vec<i32> = self.offsets().map(|(p, _)| p).collect();
        ps.sort_unstable();
        ps.dedup();
        ps
    }

    /// The position after this batch, per partition: one past its highest offset.
    pub fn next_positions(&self) -> Vec<(i32, i64)> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for (p, o) in self.offsets() {
            let slot = next.entry(p).or_insert(o + 1);
            *slot = (*slot).max(o + 1);
        }
        next.into_iter().collect()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use tunix_schemas::{TraceDeleted, TraceEvent};

    pub fn message(partition: i32, offset: i64, value: Option<Vec<u8>>) -> OwnedMessage {
        OwnedMessage::new(
            value,
            None,
            "t".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    pub fn record(partition: i32, offset: i64) -> Record {
        Record {
            event: TraceEvent::Deleted(TraceDeleted {
                id: uuid::Uuid::new_v4(),
                deleted_at: chrono::Utc::now(),
                reason: None,
            }),
            message: message(partition, offset, Some(vec![0; 100])),
        }
    }

    fn poison(partition: i32, offset: i64) -> Poison {
        Poison {
            message: message(partition, offset, Some(vec![1; 10])),
            reason: "bad_magic",
            error: "x".into(),
        }
    }

    const LIMITS: Limits = Limits {
        max_records: 3,
        max_bytes: 250,
        max_wait: Duration::from_millis(100),
    };

    #[test]
    fn each_limit_flushes_on_its_own() {
        let t0 = Instant::now();
        let mut b = Batch::default();
        assert!(
            !b.is_full(&LIMITS, t0 + Duration::from_secs(9)),
            "empty never flushes"
        );
        b.push(record(0, 0), t0);
        assert!(!b.is_full(&LIMITS, t0));
        assert!(
            b.is_full(&LIMITS, t0 + Duration::from_millis(100)),
            "linger"
        );
        b.push(record(0, 1), t0);
        assert!(!b.is_full(&LIMITS, t0));
        b.push(record(0, 2), t0);
        assert!(b.is_full(&LIMITS, t0), "records (and bytes: 300 >= 250)");

        let mut by_bytes = Batch::default();
        by_bytes.push(record(0, 0), t0);
        by_bytes.push(record(0, 1), t0);
        assert!(!by_bytes.is_full(&LIMITS, t0), "200 bytes");
        by_bytes.push_poison(poison(1, 0), t0);
        assert!(by_bytes.is_full(&LIMITS, t0), "3 records incl. poison");
    }

    #[test]
    fn poll_wait_counts_down_the_linger() {
        let t0 = Instant::now();
        let idle = Duration::from_millis(500);
        let mut b = Batch::default();
        assert_eq!(b.poll_wait(&LIMITS, idle, t0), idle);
        b.push(record(0, 0), t0);
        assert_eq!(
            b.poll_wait(&LIMITS, idle, t0 + Duration::from_millis(30)),
            Duration::from_millis(70)
        );
        assert_eq!(
            b.poll_wait(&LIMITS, idle, t0 + Duration::from_secs(1)),
            Duration::ZERO
        );
    }

    #[test]
    fn next_positions_are_one_past_the_highest_offset_per_partition() {
        let t0 = Instant::now();
        let mut b = Batch::default();
        b.push(record(2, 40), t0);
        b.push(record(0, 7), t0);
        b.push_poison(poison(0, 9), t0); // dead-lettered records move the position too
        b.push(record(2, 41), t0);
        assert_eq!(b.next_positions(), vec![(0, 10), (2, 42)]);
        assert_eq!(b.partitions(), vec![0, 2]);
        b.retain_partitions(|p| p != 0);
        assert_eq!(b.next_positions(), vec![(2, 42)]);
        b.retain_partitions(|_| false);
        assert!(b.is_empty());
        assert_eq!(
            b.poll_wait(&LIMITS, Duration::from_secs(1), t0),
            Duration::from_secs(1),
            "an emptied batch has no linger deadline"
        );
    }
}
