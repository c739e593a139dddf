//! **Owns: the loop.** Poll, batch, apply when full; every lease step (`lease_ttl / 3`, at most a
//! second apart), flush and reconcile ownership; on shutdown, finish the in-flight batch
//! (bounded) and hand the partitions over.
//! Replays (rebuilds) run the same loop over every partition until caught up.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::TopicPartitionList;
use tokio::runtime::Handle;

use super::client::connect;
use super::member::{Member, MemberConsumer};
use super::position::Position;
use super::{ConsumerDeps, Sink};

/// How long a poll waits when no batch is lingering.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Longest time between two lease steps. Renewing every `lease_ttl / 3` is enough to keep
/// leases alive, but a partition released by a member that shut down waits for the others'
/// next step: at most this long, not up to a third of the TTL (measured: `tunix-bench failover`).
const LEASE_STEP_MAX: Duration = Duration::from_secs(1);
/// How often the topic's partition count is re-read (to notice added partitions).
const METADATA_REFRESH: Duration = Duration::from_secs(30);

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

/// Polls once and applies the batch when it is full. Returns the records committed.
fn poll_once<S: Sink>(member: &Member<S>, consumer: &MemberConsumer<S>) -> u64 {
    let wait = member
        .ledger()
        .batch
        .poll_wait(&member.limits(), IDLE_POLL, Instant::now());
    match consumer.poll(wait) {
        Some(Ok(msg)) => {
            let msg = msg.detach();
            member.resolve_schema(&msg);
            member.intake(msg);
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "kafka poll error");
            if matches!(
                e,
                KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
            ) {
                member.deps.readiness.set("kafka", false, e.to_string());
            }
        }
        None => {}
    }
    let full = member
        .ledger()
        .batch
        .is_full(&member.limits(), Instant::now());
    if full {
        member.flush(consumer, None)
    } else {
        0
    }
}

/// Runs one instance of a consumer group until shutdown: leases partitions, consumes them, and
/// hands them back on exit. Blocks the calling thread, which must not be a Tokio worker (use
/// `spawn_blocking` or a plain thread); `rt` drives the Postgres work.
pub fn run_group<S: Sink>(deps: ConsumerDeps<S>, rt: Handle) -> Result<(), KafkaError> {
    let (member, consumer) = connect(deps, rt)?;
    let settings = member.deps.settings.clone();
    let topic = member.topic().to_owned();
    tracing::info!(%topic, group = %settings.group_id, instance = %settings.instance_id, "consumer started");
    let mut partitions: Option<(i32, Instant)> = None;
    let mut next_step = Instant::now();
    while !member.cancelled() {
        if Instant::now() >= next_step {
            next_step = Instant::now() + (settings.lease_ttl / 3).min(LEASE_STEP_MAX);
            if partitions.is_none_or(|(_, at)| at.elapsed() > METADATA_REFRESH) {
                match member
                    .deps
                    .kafka
                    .partition_count(&topic, super::BROKER_TIMEOUT)
                {
                    Ok(n) => partitions = Some((n, Instant::now())),
                    Err(e) => {
                        member.deps.readiness.set("kafka", false, e.to_string());
                        tracing::warn!(error = %e, %topic, "cannot read the topic's partitions");
                    }
                }
            }
            if let Some((n, _)) = partitions {
                // Nothing in flight while ownership changes.
                member.flush(&consumer, Some(Instant::now() + settings.drain_timeout));
                member.lease_step(&consumer, n);
            }
        }
        poll_once(&member, &consumer);
    }
    // Shutdown: finish the in-flight batch (bounded), then hand the partitions over.
    member.flush(&consumer, Some(Instant::now() + settings.drain_timeout));
    let owned: Vec<i32> = member.ledger().committed.keys().copied().collect();
    member.drop_partitions(&consumer, &owned);
    let left = member.rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            super::leases::leave(
                &member.deps.pool,
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
    let (member, consumer) = connect(deps, rt)?;
    let all: Vec<i32> = (0..partitions).collect();
    let positions = member
        .load(&all)
        .ok_or_else(|| anyhow::anyhow!("cancelled"))?;
    let mut tpl = TopicPartitionList::new();
    {
        let mut ledger = member.ledger();
        for p in &all {
            let pos = positions.get(p).copied().unwrap_or(Position::Beginning);
            tpl.add_partition_offset(&topic, *p, pos.seek_offset())?;
            ledger.own(*p, pos);
        }
    }
    consumer.assign(&tpl)?;

    let started = Instant::now();
    let mut applied: u64 = 0;
    let mut last_report = Instant::now() - Duration::from_secs(10);
    loop {
        if member.cancelled() {
            anyhow::bail!("replay cancelled");
        }
        applied += poll_once(&member, &consumer);
        if last_report.elapsed() < Duration::from_secs(1) {
            continue;
        }
        // Watermarks come from the broker directly: statistics lag a few seconds behind. Each
        // query can wait behind a fetch in flight on the same connection, so the next check
        // comes a second after this one *ends*: polling always gets most of the time.
        // Positions move only on commit, so batched records still count as lag.
        let committed: Vec<(i32, Position)> = member
            .ledger()
            .committed
            .iter()
            .map(|(p, pos)| (*p, *pos))
            .collect();
        let mut lag = 0;
        for (p, pos) in committed {
            let (_, hi) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            member.ledger().high_watermarks.insert(p, hi);
            lag += pos.lag_to(hi);
        }
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
        last_report = Instant::now();
    }
}
