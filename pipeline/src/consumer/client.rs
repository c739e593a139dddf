//! **Owns: how a member talks to Kafka** (librdkafka settings and callbacks).
//!
//! Offsets are never auto-stored: Postgres holds the authoritative positions, and the Kafka
//! group's copy is stored only after a batch commits, for lag tooling. Assignment is manual
//! (leases in Postgres), so the group protocol never moves partitions by itself.

use std::sync::Arc;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use tokio::runtime::Handle;

use super::dead_letter::DeadLetters;
use super::member::{Member, MemberConsumer};
use super::{ConsumerDeps, Sink};

/// The rdkafka context: routes statistics (high watermarks for the lag gauges) and librdkafka's
/// log lines into the member.
pub(super) struct MemberContext<S: Sink>(Arc<Member<S>>);

impl<S: Sink> ClientContext for MemberContext<S> {
    fn stats(&self, statistics: Statistics) {
        let member = &self.0;
        member.deps.metrics.broker_requests.observe(&statistics);
        let Some(topic) = statistics.topics.get(member.topic()) else {
            return;
        };
        let mut ledger = member.ledger();
        for (p, part) in &topic.partitions {
            if *p >= 0 && part.hi_offset >= 0 && ledger.committed.contains_key(p) {
                ledger.high_watermarks.insert(*p, part.hi_offset);
            }
        }
        member.publish_lag(&ledger);
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

impl<S: Sink> ConsumerContext for MemberContext<S> {}

/// Creates the member and its Kafka consumer (nothing is assigned yet).
pub(super) fn connect<S: Sink>(
    deps: ConsumerDeps<S>,
    rt: Handle,
) -> Result<(Arc<Member<S>>, MemberConsumer<S>), KafkaError> {
    let dead_letters = DeadLetters::new(&deps.kafka, &deps.settings.group_id)?;
    let mut cfg = deps.kafka.client_config();
    cfg.set("group.id", &deps.settings.group_id)
        .set("client.id", &deps.settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "5000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "2000")
        // The broker holds a fetch until this much is there or the wait is over: fewer, fuller
        // fetches (each costs the broker about as much CPU as a produce request), for reads up
        // to the wait behind at low rates.
        .set(
            "fetch.wait.max.ms",
            deps.kafka.fetch_wait_max_ms.to_string(),
        )
        .set("fetch.min.bytes", deps.kafka.fetch_min_bytes.to_string())
        // Large fetches: a replay or a consumer catching up moves up to 8 MiB per partition and
        // 64 MiB per request, so it needs few round trips (librdkafka's defaults: 1 and 50).
        .set("fetch.message.max.bytes", "8388608")
        .set("fetch.max.bytes", "67108864")
        .set_log_level(RDKafkaLogLevel::Warning);
    let member = Arc::new(Member::new(deps, rt, dead_letters));
    let consumer: MemberConsumer<S> = cfg.create_with_context(MemberContext(member.clone()))?;
    Ok((member, consumer))
}
