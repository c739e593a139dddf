//! Erasure shared by the services: the deletion ledger and the tombstone outbox.
//!
//! **The ledger** (`trace_deletions`): an id recorded there is deleted for good. ingest-api
//! records it before answering a `DELETE`; the writer and the projector record it in the
//! transaction that applies the deletion, and never insert a recorded id again.
//!
//! **The outbox** (`erasure_outbox`): on a compacted topic a key's content disappears only when a
//! tombstone (a null-value record) is its last record. ingest-api appends the tombstone of the
//! trace's own key with the deletion; the keys it cannot know (scores not yet projected, records
//! that raced the deletion) are found by the projector, which queues their tombstones in the same
//! transaction that applies the batch. [`drain_outbox`] appends them afterwards and removes them
//! once the broker acknowledged: a crash in between appends them again, which is harmless.

use std::time::Duration;

use metrics::{counter, gauge};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tunix_schemas::Tombstone;
use uuid::Uuid;

use crate::kafka::KafkaSettings;

/// Tombstones appended by [`drain_outbox`] (`<prefix>_tombstones_appended_total`).
pub const TOMBSTONES_APPENDED: &str = "tombstones_appended_total";
/// Tombstones waiting in the outbox (`<prefix>_erasure_outbox`).
pub const OUTBOX_PENDING: &str = "erasure_outbox";

/// Records `ids` as deleted (the first deletion's time stays).
pub async fn record_deletions(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO trace_deletions (id, deleted_at) SELECT unnest($1::uuid[]), now()
         ON CONFLICT (id) DO NOTHING",
        ids
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Which of `ids` are recorded as deleted.
pub async fn deleted_among(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar!("SELECT id FROM trace_deletions WHERE id = ANY($1)", ids)
        .fetch_all(&mut *conn)
        .await
}

/// Queues `tombstones` for [`drain_outbox`], in the caller's transaction.
pub async fn queue_tombstones(
    conn: &mut PgConnection,
    tombstones: &[Tombstone],
) -> Result<(), sqlx::Error> {
    if tombstones.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = tombstones.iter().map(|t| t.key.as_str()).collect();
    let traces: Vec<Uuid> = tombstones.iter().map(|t| t.trace_id).collect();
    sqlx::query!(
        "INSERT INTO erasure_outbox (key, trace_id)
         SELECT * FROM unnest($1::text[], $2::uuid[]) ON CONFLICT (key) DO NOTHING",
        &keys as &[&str],
        &traces
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends tombstones to the event topic, each in its trace's partition, and waits for the acks.
pub struct TombstoneWriter {
    kafka: KafkaSettings,
    producer: FutureProducer,
    partitions: Option<i32>,
    timeout: Duration,
}

impl TombstoneWriter {
    /// A writer for `kafka`'s topic (acks=all, idempotent).
    pub fn new(kafka: &KafkaSettings) -> Result<TombstoneWriter, rdkafka::error::KafkaError> {
        let timeout = Duration::from_secs(10);
        let producer = kafka
            .client_config()
            .set("client.id", "tunix-erasure")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .create()?;
        Ok(TombstoneWriter {
            kafka: kafka.clone(),
            producer,
            partitions: None,
            timeout,
        })
    }

    /// Appends `tombstones` and waits until every one is acknowledged.
    pub async fn send(&mut self, tombstones: &[Tombstone]) -> Result<(), String> {
        let partitions = match self.partitions {
            Some(n) => n,
            None => {
                let kafka = self.kafka.clone();
                let timeout = self.timeout;
                let n = tokio::task::spawn_blocking(move || {
                    kafka.partition_count(&kafka.topic, timeout)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("topic metadata: {e}"))?;
                self.partitions = Some(n);
                n
            }
        };
        let mut pending = Vec::with_capacity(tombstones.len());
        for t in tombstones {
            let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.kafka.topic)
                .key(t.key.as_str())
                .partition(t.partition(partitions));
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => return Err(format!("enqueue tombstone: {e}")),
            }
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    // The partition count may have changed; fetch it again next time.
                    self.partitions = None;
                    return Err(format!("tombstone not acknowledged: {e}"));
                }
                Err(_) => return Err("producer was shut down".into()),
            }
        }
        self.producer
            .flush(self.timeout)
            .map_err(|e| format!("flush: {e}"))
    }
}

/// Rows drained per round.
const DRAIN_BATCH: i64 = 500;

/// Appends the outbox's tombstones until `shutdown`: polls every `interval`, sends up to
/// [`DRAIN_BATCH`] at a time, deletes them once acknowledged. Metrics are named with
/// `metrics_prefix` ([`TOMBSTONES_APPENDED`], [`OUTBOX_PENDING`]).
pub async fn drain_outbox(
    pool: PgPool,
    kafka: KafkaSettings,
    metrics_prefix: &'static str,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let appended = counter!(format!("{metrics_prefix}_{TOMBSTONES_APPENDED}"));
    let pending_gauge = gauge!(format!("{metrics_prefix}_{OUTBOX_PENDING}"));
    let mut writer: Option<TombstoneWriter> = None;
    let mut backoff = interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = shutdown.cancelled() => return,
        }
        backoff = interval;
        loop {
            let rows = match sqlx::query!(
                "SELECT key, trace_id FROM erasure_outbox ORDER BY queued_at, key LIMIT $1",
                DRAIN_BATCH
            )
            .fetch_all(&pool)
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the erasure outbox; retrying");
                    backoff = Duration::from_secs(5);
                    break;
                }
            };
            if rows.is_empty() {
                pending_gauge.set(0.0);
                // Drained: let the producer go (an idle one's polling thread is not free; see
                // consumer::dead_letter). The next deletion creates another.
                writer = None;
                break;
            }
            // At least this many are pending (exactly, when fewer than a batch).
            pending_gauge.set(rows.len() as f64);
            let tombstones: Vec<Tombstone> = rows
                .into_iter()
                .map(|r| Tombstone {
                    key: r.key,
                    trace_id: r.trace_id,
                })
                .collect();
            let w = match writer.as_mut() {
                Some(w) => w,
                None => match TombstoneWriter::new(&kafka) {
                    Ok(w) => writer.insert(w),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot create the tombstone producer");
                        backoff = Duration::from_secs(5);
                        break;
                    }
                },
            };
            if let Err(e) = w.send(&tombstones).await {
                tracing::warn!(error = %e, pending = tombstones.len(), "cannot append tombstones yet; retrying");
                writer = None;
                backoff = Duration::from_secs(5);
                break;
            }
            let keys: Vec<String> = tombstones.iter().map(|t| t.key.clone()).collect();
            if let Err(e) = sqlx::query!("DELETE FROM erasure_outbox WHERE key = ANY($1)", &keys)
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "tombstones appended but not yet removed from the outbox");
                backoff = Duration::from_secs(5);
                break;
            }
            appended.increment(tombstones.len() as u64);
            tracing::info!(
                count = tombstones.len(),
                "appended tombstones from the erasure outbox"
            );
            if (tombstones.len() as i64) < DRAIN_BATCH {
                pending_gauge.set(0.0);
                break;
            }
        }
    }
}
