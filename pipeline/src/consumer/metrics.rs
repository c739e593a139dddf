//! Metrics every consumer exports, under a per-service prefix (`tunix_writer`, `tunix_projector`).
//!
//! | name | type | meaning |
//! | --- | --- | --- |
//! | `<p>_records_consumed_total` | counter | records read from the topic (including poison) |
//! | `<p>_records_applied_total` | counter | records whose effect committed |
//! | `<p>_batches_total` | counter | committed batches |
//! | `<p>_batch_size` | histogram | records per committed batch |
//! | `<p>_batch_latency_seconds` | histogram | apply + commit time of a batch |
//! | `<p>_lag_records{partition}` | gauge | high watermark minus committed position |
//! | `<p>_lag_seconds` | gauge | age of the last applied record while behind, else 0 |
//! | `<p>_dlq_total{reason}` | counter | records sent to the dead-letter topic |
//! | `<p>_postgres_errors_total{kind}` | counter | failed batch attempts (`transient`, `data`, `timeout`) |
//! | `<p>_fenced_total` | counter | batches rolled back because another consumer moved the position |
//! | `<p>_rebalances_total{kind}` | counter | partition assignments and revocations |
//! | `<p>_assigned_partitions` | gauge | partitions currently owned |
//! | `<p>_broker_requests_total{request}` | counter | requests sent to the brokers (`produce`, `fetch`, `other`), from librdkafka's statistics |
//! | `<p>_gaps_total{outcome}` | counter | offset gaps seen: `accepted` (records absent from the log: compaction or retention), `reset` (stored position past the end of the partition; replayed from the beginning) |

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// Handles and names of a consumer's metrics.
pub struct ConsumerMetrics {
    prefix: &'static str,
    /// Records read.
    pub consumed: Counter,
    /// Records applied.
    pub applied: Counter,
    /// Batches committed.
    pub batches: Counter,
    /// Records per batch.
    pub batch_size: Histogram,
    /// Seconds per batch.
    pub batch_latency: Histogram,
    /// Fenced batches.
    pub fenced: Counter,
    /// Partitions owned.
    pub assigned: Gauge,
    /// Seconds behind while lagging.
    pub lag_seconds: Gauge,
    /// Requests the consumer sent to the brokers.
    pub broker_requests: crate::broker_requests::BrokerRequests,
    lag_name: &'static str,
    dlq_name: &'static str,
    pg_errors_name: &'static str,
    rebalances_name: &'static str,
    gaps_name: &'static str,
}

fn leak(s: String) -> &'static str {
    // A handful of names per process, created once at start-up.
    Box::leak(s.into_boxed_str())
}

impl ConsumerMetrics {
    /// Registers the metrics under `prefix` (e.g. `tunix_writer`).
    pub fn new(prefix: &str) -> ConsumerMetrics {
        let name = |suffix: &str| leak(format!("{prefix}_{suffix}"));
        let m = ConsumerMetrics {
            prefix: leak(prefix.to_owned()),
            consumed: counter!(name("records_consumed_total")),
            applied: counter!(name("records_applied_total")),
            batches: counter!(name("batches_total")),
            batch_size: histogram!(name("batch_size")),
            batch_latency: histogram!(name("batch_latency_seconds")),
            fenced: counter!(name("fenced_total")),
            assigned: gauge!(name("assigned_partitions")),
            lag_seconds: gauge!(name("lag_seconds")),
            broker_requests: crate::broker_requests::BrokerRequests::new(name(
                "broker_requests_total",
            )),
            lag_name: name("lag_records"),
            dlq_name: name("dlq_total"),
            pg_errors_name: name("postgres_errors_total"),
            rebalances_name: name("rebalances_total"),
            gaps_name: name("gaps_total"),
        };
        // Export zeros from the start so dashboards and alerts see the series before the first event.
        for reason in [
            "too_short",
            "bad_magic",
            "unknown_schema",
            "avro",
            "trailing_bytes",
            "invalid_trace",
            "empty",
            "postgres_rejected",
        ] {
            counter!(m.dlq_name, "reason" => reason).absolute(0);
        }
        for kind in ["transient", "data", "timeout"] {
            counter!(m.pg_errors_name, "kind" => kind).absolute(0);
        }
        for outcome in ["accepted", "reset"] {
            counter!(m.gaps_name, "outcome" => outcome).absolute(0);
        }
        for kind in ["assign", "revoke"] {
            counter!(m.rebalances_name, "kind" => kind).absolute(0);
        }
        m.lag_seconds.set(0.0);
        m
    }

    /// The prefix, e.g. `tunix_writer`.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// Sets the record lag of one partition.
    pub fn set_lag(&self, partition: i32, lag: i64) {
        gauge!(self.lag_name, "partition" => partition.to_string()).set(lag as f64);
    }

    /// Counts a dead-lettered record.
    pub fn dlq(&self, reason: &'static str) {
        counter!(self.dlq_name, "reason" => reason).increment(1);
    }

    /// Counts a failed batch attempt.
    pub fn postgres_error(&self, kind: &'static str) {
        counter!(self.pg_errors_name, "kind" => kind).increment(1);
    }

    /// Counts an offset gap.
    pub fn gap(&self, outcome: &'static str) {
        counter!(self.gaps_name, "outcome" => outcome).increment(1);
    }

    /// Counts a rebalance event.
    pub fn rebalance(&self, kind: &'static str) {
        counter!(self.rebalances_name, "kind" => kind).increment(1);
    }
}
