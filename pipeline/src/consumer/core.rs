//! The consume–apply–advance loop and its rebalance handling (see the module docs in `mod.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio::runtime::Handle;
use tunix_schemas::{DecodeError, TraceEvent};

use super::offsets::{load_positions, lock_positions, reset_position, save_positions, Position};
use super::{Applied, ConsumerDeps, Record, Sink};
use crate::db::{is_data_error, is_transient};

/// A record that could not be decoded into an event.
struct Poison {
    message: OwnedMessage,
    reason: &'static str,
    error: String,
}

/// Records read but not yet applied.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    poison: Vec<Poison>,
    bytes: usize,
    first_at: Option<Instant>,
}

impl Pending {
    fn len(&self) -> usize {
        self.records.len() + self.poison.len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn retain_partitions(&mut self, keep: impl Fn(i32) -> bool) {
        self.records.retain(|r| keep(r.partition()));
        self.poison.retain(|p| keep(p.message.partition()));
        if self.is_empty() {
            self.first_at = None;
            self.bytes = 0;
        }
    }
}

/// Mutable state shared by the poll loop and the rebalance callback (which runs inside `poll` on
/// the same thread, so the lock is never contended; it exists to satisfy `Sync`).
#[derive(Default)]
struct State {
    /// Assigned partitions and the next offset each expects to apply (committed in Postgres).
    positions: HashMap<i32, Position>,
    /// Next offset each partition should deliver: one past the last record read (pending or
    /// committed). Used to drop stale deliveries and to detect gaps.
    next_fetch: HashMap<i32, Position>,
    /// Partitions being re-fetched after a gap, with the current rewind distance.
    rewinds: HashMap<i32, i64>,
    pending: Pending,
    /// Kafka timestamp (ms) of the newest applied record per partition, for `lag_seconds`.
    applied_ts: HashMap<i32, i64>,
    /// Latest high watermark per partition, from statistics or watermark queries.
    high_watermarks: HashMap<i32, i64>,
}

/// Everything the loop and the callbacks share.
struct Core<S: Sink> {
    deps: ConsumerDeps<S>,
    rt: Handle,
    dlq: FutureProducer,
    state: Mutex<State>,
}

/// The rdkafka context: routes rebalance and statistics callbacks into the core.
struct CoreContext<S: Sink>(Arc<Core<S>>);

type CoreConsumer<S> = BaseConsumer<CoreContext<S>>;

/// Why a batch did not commit.
enum ApplyError {
    /// Another consumer moved these partitions' positions; re-seek to them.
    Fenced(HashMap<i32, Position>),
    /// Postgres (or the dead-letter producer) is unavailable; retry later.
    Transient(String),
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        ApplyError::Transient(e.to_string())
    }
}

/// Progress of a replay, reported about once a second.
#[derive(Debug, Clone, Copy)]
pub struct ReplayProgress {
    /// Records applied so far.
    pub applied_records: u64,
    /// Records between the current positions and the high watermarks.
    pub lag_records: i64,
    /// Records per second over the whole replay.
    pub rate: f64,
    /// Seconds since the replay began.
    pub elapsed: Duration,
}

impl<S: Sink> ClientContext for CoreContext<S> {
    fn stats(&self, statistics: Statistics) {
        self.0.on_stats(&statistics);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            _ => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }
}

impl<S: Sink> ConsumerContext for CoreContext<S> {}

impl<S: Sink> Core<S> {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("consumer state lock")
    }

    fn topic(&self) -> &str {
        &self.deps.kafka.topic
    }

    fn cancelled(&self) -> bool {
        self.deps.shutdown.is_cancelled()
    }

    /// Sleeps for `d` unless shutdown begins first. Returns false on shutdown.
    fn pause(&self, d: Duration) -> bool {
        let token = self.deps.shutdown.clone();
        self.rt.block_on(async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => true,
                _ = token.cancelled() => false,
            }
        })
    }

    /// Loads stored positions for `partitions`, retrying while Postgres is down.
    fn load(&self, partitions: &[i32]) -> Option<HashMap<i32, Position>> {
        let mut backoff = self.deps.settings.backoff_initial;
        loop {
            let result = self.rt.block_on(async {
                let mut conn = self.deps.pool.acquire().await?;
                let target = self.deps.sink.target(&mut conn).await?;
                load_positions(&mut conn, &target, self.topic(), partitions).await
            });
            match result {
                Ok(positions) => {
                    self.deps.readiness.set("postgres", true, "ok");
                    return Some(positions);
                }
                Err(e) => {
                    self.deps.readiness.set("postgres", false, e.to_string());
                    self.deps.metrics.postgres_error("transient");
                    tracing::warn!(error = %e, ?backoff, "cannot load consumer positions; retrying");
                    if !self.pause(backoff) {
                        return None;
                    }
                    backoff = (backoff * 2).min(self.deps.settings.backoff_max);
                }
            }
        }
    }

    /// A stored position beyond the end of its partition means the topic was recreated or
    /// truncated (e.g. the broker lost its data): the next records would get offsets below the
    /// position and be skipped as already applied. Replaying the partition from the beginning is
    /// always safe (effects are idempotent per trace id), so the position is reset.
    fn reset_positions_past_the_end(
        &self,
        consumer: &CoreConsumer<S>,
        positions: &mut HashMap<i32, Position>,
    ) {
        for (p, pos) in positions.iter_mut() {
            let Some(next) = *pos else { continue };
            let Ok((_, high)) = consumer.fetch_watermarks(self.topic(), *p, Duration::from_secs(5))
            else {
                continue; // broker unreachable: nothing to compare with now
            };
            if next <= high {
                continue;
            }
            let reset = self.rt.block_on(async {
                let mut conn = self.deps.pool.acquire().await?;
                let target = self.deps.sink.target(&mut conn).await?;
                reset_position(&mut conn, &target, self.topic(), *p, next).await
            });
            if matches!(reset, Ok(true)) {
                tracing::error!(
                    partition = p,
                    stored = next,
                    end = high,
                    "stored position is past the end of the partition (topic recreated or truncated?); replaying it from the beginning"
                );
                self.deps.metrics.gap("reset");
                *pos = None;
            }
        }
    }

    /// Starts consuming `partitions` from their stored positions.
    fn take_partitions(&self, consumer: &CoreConsumer<S>, partitions: &[i32]) -> bool {
        let Some(mut positions) = self.load(partitions) else {
            return false; // shutting down
        };
        self.reset_positions_past_the_end(consumer, &mut positions);
        let topic = self.topic().to_owned();
        let mut tpl = TopicPartitionList::new();
        {
            let mut state = self.state();
            for p in partitions {
                let pos = positions.get(p).copied().flatten();
                let offset = pos.map_or(Offset::Beginning, Offset::Offset);
                if let Err(e) = tpl.add_partition_offset(&topic, *p, offset) {
                    tracing::error!(partition = p, error = %e, "cannot build the assignment");
                }
                state.positions.insert(*p, pos);
                state.next_fetch.insert(*p, pos);
                state.rewinds.remove(p);
            }
            self.deps.metrics.assigned.set(state.positions.len() as f64);
        }
        if let Err(e) = consumer.incremental_assign(&tpl) {
            tracing::error!(error = %e, "assign failed");
            return false;
        }
        self.deps.metrics.rebalance("assign");
        tracing::info!(
            ?partitions,
            ?positions,
            "partitions assigned; consuming from stored positions"
        );
        true
    }

    /// Stops consuming `partitions`. Callers flush the pending batch first when they can.
    fn drop_partitions(&self, consumer: &CoreConsumer<S>, partitions: &[i32]) {
        let mut tpl = TopicPartitionList::new();
        {
            let mut state = self.state();
            state
                .pending
                .retain_partitions(|p| !partitions.contains(&p));
            for p in partitions {
                state.positions.remove(p);
                state.next_fetch.remove(p);
                state.rewinds.remove(p);
                state.high_watermarks.remove(p);
                self.deps.metrics.set_lag(*p, 0);
                tpl.add_partition(self.topic(), *p);
            }
            self.deps.metrics.assigned.set(state.positions.len() as f64);
        }
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
        if let Err(e) = consumer.incremental_unassign(&tpl) {
            tracing::warn!(error = %e, "unassign failed");
        }
        self.deps.metrics.rebalance("revoke");
        tracing::info!(?partitions, "partitions revoked");
    }

    /// Renews this instance's leases and adjusts the assignment to what it owns.
    fn lease_step(&self, consumer: &CoreConsumer<S>, partitions: i32) {
        let s = &self.deps.settings;
        let owned = self.rt.block_on(super::leases::step(
            &self.deps.pool,
            &s.group_id,
            self.topic(),
            &s.instance_id,
            partitions,
            s.lease_ttl,
        ));
        let owned = match owned {
            Ok(owned) => owned,
            Err(e) => {
                self.deps.readiness.set("postgres", false, e.to_string());
                self.deps.metrics.postgres_error("transient");
                tracing::warn!(error = %e, "cannot renew partition leases");
                return;
            }
        };
        let current: std::collections::BTreeSet<i32> =
            self.state().positions.keys().copied().collect();
        let lost: Vec<i32> = current.difference(&owned).copied().collect();
        let gained: Vec<i32> = owned.difference(&current).copied().collect();
        if !lost.is_empty() {
            self.drop_partitions(consumer, &lost);
        }
        if !gained.is_empty() {
            self.take_partitions(consumer, &gained);
        }
        self.deps
            .readiness
            .set("kafka", true, format!("{} partitions owned", owned.len()));
    }

    fn on_stats(&self, stats: &Statistics) {
        let Some(topic) = stats.topics.get(self.topic()) else {
            return;
        };
        let mut state = self.state();
        for (p, part) in &topic.partitions {
            if *p >= 0 && part.hi_offset >= 0 && state.positions.contains_key(p) {
                state.high_watermarks.insert(*p, part.hi_offset);
            }
        }
        self.publish_lag(&state);
    }

    /// Sets the lag gauges from the known watermarks and positions; returns the total lag.
    fn publish_lag(&self, state: &State) -> i64 {
        let now_ms = Utc::now().timestamp_millis();
        let mut total = 0;
        let mut oldest_behind: Option<i64> = None;
        for (p, pos) in &state.positions {
            let Some(hi) = state.high_watermarks.get(p) else {
                continue;
            };
            let lag = (hi - pos.unwrap_or(0)).max(0);
            self.deps.metrics.set_lag(*p, lag);
            total += lag;
            if lag > 0 {
                let ts = state.applied_ts.get(p).copied().unwrap_or(now_ms);
                oldest_behind = Some(oldest_behind.map_or(ts, |o: i64| o.min(ts)));
            }
        }
        let seconds = oldest_behind.map_or(0.0, |ts| ((now_ms - ts).max(0) as f64) / 1000.0);
        self.deps.metrics.lag_seconds.set(seconds);
        total
    }

    /// Decodes a polled message into the pending batch, unless it precedes our position (a stale
    /// fetch after a seek) or belongs to a partition we no longer own.
    fn push(&self, message: OwnedMessage) -> Pushed {
        let mut state = self.state();
        let (p, offset) = (message.partition(), message.offset());
        match state.next_fetch.get(&p) {
            None => return Pushed::Dropped,
            Some(Some(next)) if offset < *next => return Pushed::Dropped,
            Some(Some(next)) if offset > *next => {
                // Our topic has contiguous offsets (no compaction, no transaction markers), so a
                // jump means the broker skipped records: Tansu 0.6's memory engine answers a
                // fetch inside a record batch with the *next* batch. Re-fetch from further back
                // until the expected offset shows up; only a gap that persists from offset 0 is
                // real (records removed from the log) and is accepted.
                let expected = *next;
                let previous = state.rewinds.get(&p).copied();
                if previous.is_some_and(|k| k >= expected) {
                    state.rewinds.remove(&p);
                    self.deps.metrics.gap("accepted");
                    tracing::warn!(
                        partition = p,
                        expected,
                        got = offset,
                        "records absent from the log; accepting the gap"
                    );
                } else {
                    let k = previous.map_or(64, |k| k * 4);
                    state.rewinds.insert(p, k);
                    self.deps.metrics.gap("refetched");
                    tracing::warn!(
                        partition = p,
                        expected,
                        got = offset,
                        rewind = k,
                        "broker skipped records; re-fetching"
                    );
                    return Pushed::Gap {
                        partition: p,
                        from: (expected - k).max(0),
                    };
                }
            }
            _ => {}
        }
        state.rewinds.remove(&p);
        state.next_fetch.insert(p, Some(offset + 1));
        self.deps.metrics.consumed.increment(1);
        let len = message.payload().map_or(0, <[u8]>::len);
        let pending = &mut state.pending;
        pending.bytes += len;
        pending.first_at.get_or_insert_with(Instant::now);
        match message.payload() {
            None => pending.poison.push(Poison {
                message,
                reason: "empty",
                error: "record has no value".to_owned(),
            }),
            Some(bytes) => match TraceEvent::decode(bytes) {
                Ok(event) => pending.records.push(Record { event, message }),
                Err(e) => {
                    let reason = DecodeError::reason(&e);
                    pending.poison.push(Poison {
                        message,
                        reason,
                        error: e.to_string(),
                    });
                }
            },
        }
        Pushed::Accepted
    }

    /// Seeks a partition, logging (not failing) when it is no longer ours.
    fn seek(&self, consumer: &CoreConsumer<S>, partition: i32, position: Position) {
        let offset = position.map_or(Offset::Beginning, Offset::Offset);
        if let Err(e) = consumer.seek(self.topic(), partition, offset, Duration::from_secs(5)) {
            tracing::warn!(partition, error = %e, "seek failed");
        }
    }

    /// How long the next poll may block: until the batch deadline, or a short idle tick.
    fn poll_wait(&self) -> Duration {
        let state = self.state();
        match state.pending.first_at {
            None => Duration::from_millis(100),
            Some(first) => self
                .deps
                .settings
                .batch_max_wait
                .saturating_sub(first.elapsed()),
        }
    }

    fn batch_full(&self) -> bool {
        let state = self.state();
        let s = &self.deps.settings;
        let p = &state.pending;
        !p.is_empty()
            && (p.len() >= s.batch_max_records
                || p.bytes >= s.batch_max_bytes
                || p.first_at.is_some_and(|t| t.elapsed() >= s.batch_max_wait))
    }

    /// Applies the pending batch, retrying transient failures until it commits, shutdown begins,
    /// or `deadline` passes. Returns the number of records committed.
    fn flush(&self, consumer: &CoreConsumer<S>, deadline: Option<Instant>) -> u64 {
        let mut batch = std::mem::take(&mut self.state().pending);
        let mut backoff = self.deps.settings.backoff_initial;
        let mut attempt = 0u32;
        while !batch.is_empty() {
            attempt += 1;
            let expected: HashMap<i32, Position> = {
                let state = self.state();
                partitions_of(&batch)
                    .into_iter()
                    .filter_map(|p| state.positions.get(&p).map(|pos| (p, *pos)))
                    .collect()
            };
            // Partitions we no longer own are not ours to apply.
            batch.retain_partitions(|p| expected.contains_key(&p));
            if batch.is_empty() {
                break;
            }
            let started = Instant::now();
            let result = self.rt.block_on(async {
                match tokio::time::timeout(
                    self.deps.settings.batch_timeout,
                    self.apply(&batch, &expected),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => {
                        self.deps.metrics.postgres_error("timeout");
                        Err(ApplyError::Transient("batch timed out".to_owned()))
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
                Err(ApplyError::Fenced(stored)) => {
                    self.deps.metrics.fenced.increment(1);
                    tracing::warn!(?stored, ?expected, "positions moved under us; re-seeking");
                    let mut state = self.state();
                    let mut reseek = Vec::new();
                    for (p, pos) in &stored {
                        if let Some(slot) = state.positions.get_mut(p) {
                            *slot = *pos;
                            state.next_fetch.insert(*p, *pos);
                            state.pending.retain_partitions(|q| q != *p);
                            reseek.push((*p, *pos));
                        }
                    }
                    drop(state);
                    for (p, pos) in reseek {
                        self.seek(consumer, p, pos);
                    }
                    batch.retain_partitions(|p| !stored.contains_key(&p));
                }
                Err(ApplyError::Transient(e)) => {
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

    /// Bookkeeping after a batch committed in Postgres.
    fn committed(
        &self,
        consumer: &CoreConsumer<S>,
        batch: &Pending,
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
        let mut state = self.state();
        for (p, n) in next {
            if let Some(slot) = state.positions.get_mut(p) {
                *slot = Some(*n);
                let _ = tpl.add_partition_offset(self.topic(), *p, Offset::Offset(*n));
            }
        }
        for r in &batch.records {
            if let Some(ts) = r.message.timestamp().to_millis() {
                let slot = state.applied_ts.entry(r.partition()).or_insert(ts);
                *slot = (*slot).max(ts);
            }
        }
        self.publish_lag(&state);
        drop(state);
        // Kafka's copy of the position is informational (lag tools); Postgres is authoritative.
        if tpl.count() > 0 {
            if let Err(e) = consumer.store_offsets(&tpl) {
                tracing::debug!(error = %e, "store_offsets failed (partition revoked?)");
            }
        }
        tracing::debug!(records = batch.len(), ?applied, ?took, "batch committed");
    }

    /// One attempt at a batch: dead letters first, then one transaction with the fence, the
    /// sink's effect and the new positions.
    async fn apply(
        &self,
        batch: &Pending,
        expected: &HashMap<i32, Position>,
    ) -> Result<(Vec<(i32, i64)>, Applied), ApplyError> {
        for poison in &batch.poison {
            self.dead_letter(&poison.message, poison.reason, &poison.error)
                .await?;
        }
        let partitions: Vec<i32> = expected.keys().copied().collect();
        let next = next_positions(batch);

        let mut tx = self.deps.pool.begin().await?;
        let target = self.deps.sink.target(&mut tx).await?;
        fence(&mut tx, &target, self.topic(), &partitions, expected).await?;
        let applied = match self.deps.sink.apply(&mut tx, &target, &batch.records).await {
            Ok(applied) => applied,
            Err(e) if is_data_error(&e) && !is_transient(&e) => {
                self.deps.metrics.postgres_error("data");
                tracing::warn!(error = %e, "Postgres refused a row; isolating it");
                drop(tx);
                return self.apply_isolating(batch, expected, &next).await;
            }
            Err(e) => return Err(e.into()),
        };
        save_positions(&mut tx, &target, self.topic(), &next).await?;
        tx.commit().await?;
        Ok((next, applied))
    }

    /// Slow path after a data error: apply records one by one under savepoints, dead-letter the
    /// ones Postgres refuses, commit the rest.
    async fn apply_isolating(
        &self,
        batch: &Pending,
        expected: &HashMap<i32, Position>,
        next: &[(i32, i64)],
    ) -> Result<(Vec<(i32, i64)>, Applied), ApplyError> {
        let partitions: Vec<i32> = expected.keys().copied().collect();
        let mut tx = self.deps.pool.begin().await?;
        let target = self.deps.sink.target(&mut tx).await?;
        fence(&mut tx, &target, self.topic(), &partitions, expected).await?;
        let mut applied = Applied::default();
        for record in &batch.records {
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
        save_positions(&mut tx, &target, self.topic(), next).await?;
        tx.commit().await?;
        Ok((next.to_vec(), applied))
    }

    /// Sends the original record to the dead-letter topic and waits for the broker's ack.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &'static str,
        error: &str,
    ) -> Result<(), ApplyError> {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let now = Utc::now().to_rfc3339();
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let group = self.deps.settings.group_id.as_str();
        for (key, value) in [
            ("dlq.source.topic", self.topic()),
            ("dlq.source.partition", partition.as_str()),
            ("dlq.source.offset", offset.as_str()),
            ("dlq.error.reason", reason),
            ("dlq.error", error),
            ("dlq.time", now.as_str()),
            ("dlq.consumer", group),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.deps.kafka.dlq_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        match self.dlq.send(record, Duration::from_secs(30)).await {
            Ok(_) => {
                self.deps.metrics.dlq(reason);
                tracing::warn!(partition = %partition, offset = %offset, reason, error, "record dead-lettered");
                Ok(())
            }
            Err((e, _)) => Err(ApplyError::Transient(format!("dead-letter produce: {e}"))),
        }
    }
}

/// Checks, under row locks, that every partition still holds the position this consumer expects.
async fn fence(
    conn: &mut sqlx::PgConnection,
    target: &str,
    topic: &str,
    partitions: &[i32],
    expected: &HashMap<i32, Position>,
) -> Result<(), ApplyError> {
    let stored = lock_positions(conn, target, topic, partitions).await?;
    let moved: HashMap<i32, Position> = partitions
        .iter()
        .filter_map(|p| {
            let s = stored.get(p).copied().flatten();
            (Some(&s) != expected.get(p)).then_some((*p, s))
        })
        .collect();
    if moved.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Fenced(moved))
    }
}

fn partitions_of(batch: &Pending) -> Vec<i32> {
    let mut ps: Vec<i32> = batch
        .records
        .iter()
        .map(Record::partition)
        .chain(batch.poison.iter().map(|p| p.message.partition()))
        .collect();
    ps.sort_unstable();
    ps.dedup();
    ps
}

/// The position after this batch, per partition: one past its highest offset.
fn next_positions(batch: &Pending) -> Vec<(i32, i64)> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let offsets = batch
        .records
        .iter()
        .map(|r| (r.partition(), r.offset()))
        .chain(
            batch
                .poison
                .iter()
                .map(|p| (p.message.partition(), p.message.offset())),
        );
    for (p, o) in offsets {
        let slot = next.entry(p).or_insert(o + 1);
        *slot = (*slot).max(o + 1);
    }
    next.into_iter().collect()
}

fn build<S: Sink>(
    deps: ConsumerDeps<S>,
    rt: Handle,
) -> Result<(Arc<Core<S>>, CoreConsumer<S>), KafkaError> {
    let mut dlq_cfg = deps.kafka.client_config();
    dlq_cfg
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.max.bytes",
            crate::kafka::TOPIC_MAX_MESSAGE_BYTES.to_string(),
        )
        .set("client.id", format!("{}-dlq", deps.settings.group_id));
    let dlq: FutureProducer = dlq_cfg.create()?;

    let mut cfg = deps.kafka.client_config();
    cfg.set("group.id", &deps.settings.group_id)
        .set("client.id", &deps.settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "5000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "2000")
        // Freshness: when caught up, a fetch waits at most this long for new records (Tansu
        // holds a fetch for the full wait even when records arrive earlier).
        .set("fetch.wait.max.ms", "100")
        // Large fetches: Tansu's sqlite engine scans from the fetch offset to the high
        // watermark on every fetch, so fewer, bigger fetches cost it far less CPU.
        .set("fetch.message.max.bytes", "8388608")
        .set("fetch.max.bytes", "67108864")
        .set_log_level(RDKafkaLogLevel::Warning);
    let core = Arc::new(Core {
        deps,
        rt,
        dlq,
        state: Mutex::new(State::default()),
    });
    let consumer: CoreConsumer<S> = cfg.create_with_context(CoreContext(core.clone()))?;
    Ok((core, consumer))
}

/// What became of a polled message.
enum Pushed {
    /// Added to the pending batch.
    Accepted,
    /// Stale (before our position) or for a partition we no longer own.
    Dropped,
    /// Records are missing before it: re-fetch the partition from `from`.
    Gap { partition: i32, from: i64 },
}

/// Polls once and flushes when the batch is full. Returns the records committed.
fn poll_once<S: Sink>(core: &Core<S>, consumer: &CoreConsumer<S>) -> u64 {
    match consumer.poll(core.poll_wait()) {
        Some(Ok(msg)) => {
            if let Pushed::Gap { partition, from } = core.push(msg.detach()) {
                core.seek(consumer, partition, Some(from));
            }
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "kafka poll error");
            if matches!(
                e,
                KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
            ) {
                core.deps.readiness.set("kafka", false, e.to_string());
            }
        }
        None => {}
    }
    if core.batch_full() {
        core.flush(consumer, None)
    } else {
        0
    }
}

/// Runs one instance of a consumer group until shutdown: leases partitions, consumes them, and
/// hands them back on exit. Blocks the calling thread, which must not be a Tokio worker (use
/// `spawn_blocking` or a plain thread); `rt` drives the Postgres work.
pub fn run_group<S: Sink>(deps: ConsumerDeps<S>, rt: Handle) -> Result<(), KafkaError> {
    let topic = deps.kafka.topic.clone();
    let (core, consumer) = build(deps, rt)?;
    let settings = core.deps.settings.clone();
    tracing::info!(%topic, group = %settings.group_id, instance = %settings.instance_id, "consumer started");
    let renew_every = settings.lease_ttl / 3;
    let mut partitions: Option<(i32, Instant)> = None;
    let mut next_step = Instant::now();
    while !core.cancelled() {
        if Instant::now() >= next_step {
            next_step = Instant::now() + renew_every;
            // Partition count from metadata, refreshed now and then to notice added partitions.
            if partitions.is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(30)) {
                match core
                    .deps
                    .kafka
                    .partition_count(&topic, Duration::from_secs(5))
                {
                    Ok(n) => partitions = Some((n, Instant::now())),
                    Err(e) => {
                        core.deps.readiness.set("kafka", false, e.to_string());
                        tracing::warn!(error = %e, %topic, "cannot read the topic's partitions");
                    }
                }
            }
            if let Some((n, _)) = partitions {
                // Nothing in flight while ownership changes.
                core.flush(&consumer, Some(Instant::now() + settings.drain_timeout));
                core.lease_step(&consumer, n);
            }
        }
        poll_once(&core, &consumer);
    }
    // Shutdown: finish the in-flight batch (bounded), then hand the partitions over.
    core.flush(&consumer, Some(Instant::now() + settings.drain_timeout));
    let owned: Vec<i32> = core.state().positions.keys().copied().collect();
    core.drop_partitions(&consumer, &owned);
    let left = core.rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            super::leases::leave(
                &core.deps.pool,
                &settings.group_id,
                &topic,
                &settings.instance_id,
            ),
        )
        .await
    });
    if !matches!(left, Ok(Ok(()))) {
        tracing::warn!("could not release partition leases; they expire after the lease TTL");
    }
    tracing::info!("consumer stopped");
    Ok(())
}

/// Replays the topic into the sink's target from its stored positions (from the beginning for a
/// new target) until caught up with the high watermarks, reporting progress. Uses manual
/// assignment of every partition; the consumer group is only used for Kafka-side commits.
pub fn replay_until_caught_up<S: Sink>(
    deps: ConsumerDeps<S>,
    rt: Handle,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<ReplayProgress, anyhow::Error> {
    let topic = deps.kafka.topic.clone();
    let partitions = deps
        .kafka
        .partition_count(&topic, Duration::from_secs(10))?;
    let (core, consumer) = build(deps, rt)?;
    let all: Vec<i32> = (0..partitions).collect();
    let positions = core
        .load(&all)
        .ok_or_else(|| anyhow::anyhow!("cancelled"))?;
    let mut tpl = TopicPartitionList::new();
    {
        let mut state = core.state();
        for p in &all {
            let pos = positions.get(p).copied().flatten();
            tpl.add_partition_offset(&topic, *p, pos.map_or(Offset::Beginning, Offset::Offset))?;
            state.positions.insert(*p, pos);
            state.next_fetch.insert(*p, pos);
        }
    }
    consumer.assign(&tpl)?;

    let started = Instant::now();
    let mut applied: u64 = 0;
    let mut last_report = Instant::now() - Duration::from_secs(10);
    loop {
        if core.cancelled() {
            anyhow::bail!("replay cancelled");
        }
        applied += poll_once(&core, &consumer);
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            // Watermarks come from the broker directly: statistics lag a few seconds behind.
            let mut lag = 0;
            {
                let positions: Vec<(i32, Position)> = core
                    .state()
                    .positions
                    .iter()
                    .map(|(p, pos)| (*p, *pos))
                    .collect();
                for (p, pos) in positions {
                    let (_, hi) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
                    core.state().high_watermarks.insert(p, hi);
                    lag += (hi - pos.unwrap_or(0)).max(0);
                }
            }
            // Positions move only on commit, so buffered records still count as lag.
            let elapsed = started.elapsed();
            let report = ReplayProgress {
                applied_records: applied,
                lag_records: lag,
                rate: applied as f64 / elapsed.as_secs_f64().max(1e-9),
                elapsed,
            };
            progress(&report);
            if lag == 0 {
                return Ok(report);
            }
        }
    }
}
