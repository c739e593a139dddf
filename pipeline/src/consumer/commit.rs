//! **Owns: exactly-once effect.** A batch's effect and its new positions commit in one Postgres
//! transaction, or not at all.
//!
//! One attempt ([`Member::attempt`]): dead letters first (acknowledged by the broker), then one
//! transaction that takes the fence, lets the sink apply the records and saves the positions.
//! What can go wrong, and what happens:
//!
//! - **Postgres unavailable** (or the dead-letter topic): the batch is retried with capped
//!   exponential backoff; positions do not move; readiness reports `postgres` failing.
//! - **A row Postgres refuses** (a data error): the records are applied again one by one under
//!   savepoints; the refused ones are dead-lettered as `postgres_rejected`, the rest commit.
//! - **Fenced** (another member moved a position): the batch's records of those partitions are
//!   dropped and the partitions re-seek to the stored positions; the rest is retried.
//! - **Out of time** (shutdown, or a hand-over's drain deadline): the batch is abandoned; its
//!   positions never moved, so the next owner re-reads it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::batch::Batch;
use super::member::{Member, MemberConsumer};
use super::position::{fence, save_positions, Position};
use super::{Applied, Record, Sink};
use crate::db::{is_data_error, is_transient};

/// Why an attempt did not commit.
enum AttemptError {
    /// Another member moved these partitions' positions; re-seek to them.
    Fenced(HashMap<i32, Position>),
    /// Postgres (or the dead-letter producer) is unavailable; retry later.
    Transient(String),
}

impl From<sqlx::Error> for AttemptError {
    fn from(e: sqlx::Error) -> Self {
        AttemptError::Transient(e.to_string())
    }
}

/// A committed attempt: the new positions and what the sink did.
type Committed = (Vec<(i32, i64)>, Applied);

impl<S: Sink> Member<S> {
    /// Applies the pending batch, retrying transient failures until it commits, shutdown begins,
    /// or `deadline` passes. Returns the number of records committed.
    pub(super) fn flush(&self, consumer: &MemberConsumer<S>, deadline: Option<Instant>) -> u64 {
        let mut batch = std::mem::take(&mut self.ledger().batch);
        let mut backoff = self.deps.settings.backoff_initial;
        let mut attempt = 0u32;
        while !batch.is_empty() {
            attempt += 1;
            let expected: HashMap<i32, Position> = {
                let ledger = self.ledger();
                batch
                    .partitions()
                    .into_iter()
                    .filter_map(|p| ledger.committed.get(&p).map(|pos| (p, *pos)))
                    .collect()
            };
            // Partitions we no longer own are not ours to apply.
            batch.retain_partitions(|p| expected.contains_key(&p));
            if batch.is_empty() {
                break;
            }
            let started = Instant::now();
            let result = self.rt.block_on(async {
                let limit = self.deps.settings.batch_timeout;
                match tokio::time::timeout(limit, self.attempt(&batch, &expected)).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.deps.metrics.postgres_error("timeout");
                        Err(AttemptError::Transient("batch timed out".to_owned()))
                    }
                }
            });
            match result {
                Ok((next, applied)) => {
                    let n = batch.len() as u64;
                    self.committed(consumer, &batch, &next, started.elapsed(), applied);
                    if attempt > 1 {
                        tracing::info!(attempt, "batch committed after retries");
                    }
                    return n;
                }
                Err(AttemptError::Fenced(stored)) => {
                    self.deps.metrics.fenced.increment(1);
                    tracing::warn!(?stored, ?expected, "positions moved under us; re-seeking");
                    let mut reseek = Vec::new();
                    {
                        let mut ledger = self.ledger();
                        for (p, pos) in &stored {
                            if ledger.committed.contains_key(p) {
                                ledger.own(*p, *pos);
                                ledger.batch.retain_partitions(|q| q != *p);
                                reseek.push((*p, *pos));
                            }
                        }
                    }
                    for (p, pos) in reseek {
                        self.seek(consumer, p, pos);
                    }
                    batch.retain_partitions(|p| !stored.contains_key(&p));
                }
                Err(AttemptError::Transient(e)) => {
                    self.deps.readiness.set("postgres", false, e.clone());
                    self.deps.metrics.postgres_error("transient");
                    if attempt == 1 || attempt.is_power_of_two() {
                        tracing::warn!(error = %e, attempt, ?backoff, records = batch.len(), "batch failed; retrying without advancing");
                    }
                    let out_of_time = deadline.is_some_and(|d| Instant::now() + backoff > d);
                    if out_of_time || !self.pause(backoff) {
                        tracing::warn!(
                            records = batch.len(),
                            "abandoning the in-flight batch; its records will be re-read"
                        );
                        return 0;
                    }
                    backoff = (backoff * 2).min(self.deps.settings.backoff_max);
                }
            }
        }
        0
    }

    /// Bookkeeping after a batch committed in Postgres: metrics, ledger, Kafka's copy of the
    /// positions (informational, for lag tools; Postgres is authoritative).
    fn committed(
        &self,
        consumer: &MemberConsumer<S>,
        batch: &Batch,
        next: &[(i32, i64)],
        took: Duration,
        applied: Applied,
    ) {
        let m = &self.deps.metrics;
        m.batches.increment(1);
        m.applied.increment(batch.len() as u64);
        m.batch_size.record(batch.len() as f64);
        m.batch_latency.record(took.as_secs_f64());
        self.deps.readiness.set("postgres", true, "ok");

        let mut tpl = TopicPartitionList::new();
        {
            let mut ledger = self.ledger();
            for (p, n) in next {
                if let Some(slot) = ledger.committed.get_mut(p) {
                    *slot = Position::Next(*n);
                    let _ = tpl.add_partition_offset(self.topic(), *p, Offset::Offset(*n));
                }
            }
            for r in &batch.records {
                if let Some(ts) = r.message.timestamp().to_millis() {
                    let slot = ledger.applied_ts.entry(r.partition()).or_insert(ts);
                    *slot = (*slot).max(ts);
                }
            }
            self.publish_lag(&ledger);
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.store_offsets(&tpl) {
                tracing::debug!(error = %e, "store_offsets failed (partition revoked?)");
            }
        }
        tracing::debug!(records = batch.len(), ?applied, ?took, "batch committed");
    }

    /// One attempt: dead letters first, then one transaction with the fence, the sink's effect
    /// and the new positions.
    async fn attempt(
        &self,
        batch: &Batch,
        expected: &HashMap<i32, Position>,
    ) -> Result<Committed, AttemptError> {
        for poison in &batch.poison {
            self.dead_letter(&poison.message, poison.reason, &poison.error)
                .await?;
        }
        let next = batch.next_positions();
        let (mut tx, target) = self.begin_fenced(expected).await?;
        let applied = match self.deps.sink.apply(&mut tx, &target, &batch.records).await {
            Ok(applied) => applied,
            Err(e) if is_data_error(&e) && !is_transient(&e) => {
                self.deps.metrics.postgres_error("data");
                tracing::warn!(error = %e, "Postgres refused a row; isolating it");
                drop(tx);
                return self.attempt_isolating(&batch.records, expected, next).await;
            }
            Err(e) => return Err(e.into()),
        };
        save_positions(&mut tx, &target, self.topic(), &next).await?;
        tx.commit().await?;
        Ok((next, applied))
    }

    /// Slow path after a data error: apply records one by one under savepoints, dead-letter the
    /// ones Postgres refuses, commit the rest.
    async fn attempt_isolating(
        &self,
        records: &[Record],
        expected: &HashMap<i32, Position>,
        next: Vec<(i32, i64)>,
    ) -> Result<Committed, AttemptError> {
        let (mut tx, target) = self.begin_fenced(expected).await?;
        let mut applied = Applied::default();
        for record in records {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            match self
                .deps
                .sink
                .apply(&mut savepoint, &target, std::slice::from_ref(record))
                .await
            {
                Ok(a) => {
                    savepoint.commit().await?;
                    applied += a;
                }
                Err(e) if is_data_error(&e) && !is_transient(&e) => {
                    savepoint.rollback().await?;
                    tracing::error!(partition = record.partition(), offset = record.offset(), error = %e, "dead-lettering a record Postgres refuses");
                    self.dead_letter(&record.message, "postgres_rejected", &e.to_string())
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        save_positions(&mut tx, &target, self.topic(), &next).await?;
        tx.commit().await?;
        Ok((next, applied))
    }

    /// Opens the batch transaction, reads the sink's target in it, and takes the fence.
    async fn begin_fenced(
        &self,
        expected: &HashMap<i32, Position>,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, String), AttemptError> {
        let mut tx = self.deps.pool.begin().await?;
        let target = self.deps.sink.target(&mut tx).await?;
        fence(&mut tx, &target, self.topic(), expected)
            .await?
            .map_err(AttemptError::Fenced)?;
        Ok((tx, target))
    }

    async fn dead_letter(
        &self,
        message: &rdkafka::message::OwnedMessage,
        reason: &'static str,
        error: &str,
    ) -> Result<(), AttemptError> {
        self.dead_letters
            .send(message, reason, error)
            .await
            .map_err(AttemptError::Transient)?;
        self.deps.metrics.dlq(reason);
        Ok(())
    }
}
