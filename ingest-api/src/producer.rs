//! The Kafka producer: append events and wait for the broker's acknowledgement.
//!
//! `acks=all` and the idempotent producer mean an acknowledged event is on every in-sync replica
//! and a librdkafka retry never duplicates it. Callers answer HTTP only after [`EventProducer::append`]
//! returns, so a 2xx always means "durable in the topic".

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use tunix_pipeline::broker_requests::BrokerRequests;
use tunix_pipeline::kafka::{KafkaSettings, TOPIC_MAX_MESSAGE_BYTES};
use tunix_schemas::{Encoder, Framing, Tombstone, TraceEvent, FINGERPRINT_HEADER};

use crate::http::metrics::IngestMetrics;

/// Why events were not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The broker refuses records this large: 413.
    #[error("event of {size} bytes exceeds the broker's message size limit")]
    TooLarge {
        /// Encoded size of the largest event.
        size: usize,
    },
    /// The local queue towards the broker is full: 503.
    #[error("the producer queue is full; the broker is not keeping up")]
    QueueFull,
    /// No acknowledgement in time (broker down or slow): 503.
    #[error("the broker did not acknowledge within {0:?}")]
    Timeout(Duration),
    /// Any other broker-side failure: 503.
    #[error("the broker refused the event: {0}")]
    Broker(String),
}

impl ProduceError {
    /// Label for the produce-error metric.
    pub fn reason(&self) -> &'static str {
        match self {
            ProduceError::TooLarge { .. } => "too_large",
            ProduceError::QueueFull => "queue_full",
            ProduceError::Timeout(_) => "timeout",
            ProduceError::Broker(_) => "broker",
        }
    }

    fn from_kafka(e: &KafkaError, size: usize, timeout: Duration) -> ProduceError {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
                ProduceError::TooLarge { size }
            }
            Some(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull,
            Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
                ProduceError::Timeout(timeout)
            }
            _ => ProduceError::Broker(e.to_string()),
        }
    }
}

/// The producer's librdkafka callbacks: its statistics feed the broker request counter.
pub struct ProducerContext(Arc<BrokerRequests>);

impl ClientContext for ProducerContext {
    fn stats(&self, statistics: Statistics) {
        self.0.observe(&statistics);
    }
}

type Client = FutureProducer<ProducerContext>;

/// Producer settings besides the broker address.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// Upper bound on waiting for an acknowledgement.
    pub timeout: Duration,
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `batch.num.messages`: a batch this full goes at once, without waiting for the linger.
    pub batch_messages: u32,
    /// `compression.type`.
    pub compression: String,
    /// `queue.buffering.max.messages`.
    pub queue_max_messages: u64,
    /// `EVENT_ENCODING`: how values are framed.
    pub framing: Framing,
}

/// Appends events to the topic.
pub struct EventProducer {
    /// The producer and its generation. Replaced after a fatal error (an idempotent producer
    /// that librdkafka cannot recover, e.g. the broker fenced it); after a delivery timeout
    /// librdkafka bumps the producer's epoch itself and the same producer goes on. Requests in
    /// flight keep their clone.
    producer: RwLock<(u64, Client)>,
    /// The topic's partition count from the latest metadata (0 until known). Every event goes
    /// to its partition, computed here (`TraceEvent::partition`), so that scores, keyed
    /// apart from their trace, still land beside it.
    partitions: Arc<AtomicI32>,
    kafka: KafkaSettings,
    settings: ProducerSettings,
    metrics: IngestMetrics,
    /// How values are framed (`EVENT_ENCODING`); Confluent framing starts with the built-in ids
    /// and switches to an external registry's once they are registered (start-up).
    encoder: RwLock<Encoder>,
}

impl EventProducer {
    /// Creates the producer (no network I/O yet).
    pub fn new(
        kafka: &KafkaSettings,
        settings: ProducerSettings,
        metrics: IngestMetrics,
    ) -> Result<EventProducer, KafkaError> {
        Ok(EventProducer {
            producer: RwLock::new((0, create(kafka, &settings, &metrics)?)),
            partitions: Arc::new(AtomicI32::new(0)),
            kafka: kafka.clone(),
            encoder: RwLock::new(match settings.framing {
                Framing::Confluent => Encoder::confluent_builtin(),
                Framing::SingleObject => Encoder::single_object(),
            }),
            settings,
            metrics,
        })
    }

    /// Frames events from now on with `encoder` (the ids of an external registry).
    pub fn set_encoder(&self, encoder: Encoder) {
        *self.encoder.write().expect("encoder lock") = encoder;
    }

    /// The framing in use.
    pub fn encoder(&self) -> Encoder {
        self.encoder.read().expect("encoder lock").clone()
    }

    fn current(&self) -> (u64, Client) {
        self.producer.read().expect("producer lock").clone()
    }

    /// The topic's partition count; fetched (off the async workers) if no probe has reported it
    /// yet.
    async fn partition_count(&self) -> Result<i32, ProduceError> {
        let known = self.partitions.load(Ordering::Relaxed);
        if known > 0 {
            return Ok(known);
        }
        let producer = self.current().1;
        let topic = self.kafka.topic.clone();
        let timeout = self.settings.timeout;
        let slot = self.partitions.clone();
        tokio::task::spawn_blocking(move || {
            let n = topic_partitions(&producer, &topic, timeout)?;
            slot.store(n, Ordering::Relaxed);
            Ok::<i32, String>(n)
        })
        .await
        .map_err(|e| ProduceError::Broker(format!("metadata task failed: {e}")))?
        .map_err(|e| ProduceError::Broker(format!("topic metadata: {e}")))
    }

    /// Appends `events` (each with its key, in its trace's partition) and waits until the broker
    /// acknowledged every one.
    pub async fn append(&self, events: &[TraceEvent]) -> Result<(), ProduceError> {
        self.append_with_tombstones(events, &[], &[]).await
    }

    /// The one append path. Appends `events`, then `tombstones` (null-value records, each in its
    /// trace's partition, so after the events of their keys), then `dead_letter_tombstones` (null values for those keys
    /// on the dead-letter topic), and waits until the broker acknowledged every one.
    pub async fn append_with_tombstones(
        &self,
        events: &[TraceEvent],
        tombstones: &[Tombstone],
        dead_letter_tombstones: &[String],
    ) -> Result<(), ProduceError> {
        let (generation, producer) = self.current();
        let started = Instant::now();
        let partitions = match self.partition_count().await {
            Ok(n) => n,
            Err(e) => {
                self.metrics.produce_error(e.reason());
                return Err(e);
            }
        };
        let mut pending = Vec::with_capacity(events.len());
        let mut largest = 0;
        let mut first_error = None;
        let encoder = self.encoder();
        for event in events {
            let key = event.key();
            let value = encoder.encode(event);
            largest = largest.max(value.len());
            let mut record = FutureRecord::to(&self.kafka.topic)
                .key(&key)
                .payload(&value)
                .partition(event.partition(partitions));
            // External registry ids: the record also names its schema (see FINGERPRINT_HEADER).
            if let Some(fingerprint) = encoder.fingerprint_header(event.kind()) {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: FINGERPRINT_HEADER,
                    value: Some(fingerprint.as_bytes()),
                }));
            }
            match producer.send_result(record) {
                Ok(delivery) => pending.push((delivery, value.len())),
                Err((e, _)) => {
                    first_error = Some(ProduceError::from_kafka(
                        &e,
                        value.len(),
                        self.settings.timeout,
                    ));
                    break;
                }
            }
        }
        let nulls = tombstones
            .iter()
            .map(|t| {
                FutureRecord::<str, [u8]>::to(&self.kafka.topic)
                    .key(t.key.as_str())
                    .partition(t.partition(partitions))
            })
            .chain(
                dead_letter_tombstones
                    .iter()
                    .map(|k| FutureRecord::<str, [u8]>::to(&self.kafka.dlq_topic).key(k.as_str())),
            );
        for record in nulls {
            if first_error.is_some() {
                break;
            }
            match producer.send_result(record) {
                Ok(delivery) => pending.push((delivery, 0)),
                Err((e, _)) => {
                    first_error = Some(ProduceError::from_kafka(&e, 0, self.settings.timeout));
                }
            }
        }
        self.metrics
            .queue_depth
            .set(producer.in_flight_count() as f64);
        // Even after a refusal, wait for what was enqueued: its outcome must be known before we
        // answer (a retry with the same Idempotency-Key then deduplicates it downstream).
        let bound = self.settings.timeout + Duration::from_secs(1);
        let results = tokio::time::timeout(
            bound,
            futures::future::join_all(
                pending
                    .into_iter()
                    .map(|(d, size)| async move { (d.await, size) }),
            ),
        )
        .await;
        self.metrics
            .produce_latency
            .record(started.elapsed().as_secs_f64());
        let results = match results {
            Ok(r) => r,
            Err(_) => return Err(ProduceError::Timeout(self.settings.timeout)),
        };
        for (result, size) in results {
            let err = match result {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => ProduceError::from_kafka(&e, size, self.settings.timeout),
                Err(_canceled) => ProduceError::Broker("producer was shut down".into()),
            };
            // Too large is the client's problem and wins over transient ones.
            if first_error.is_none() || matches!(err, ProduceError::TooLarge { .. }) {
                first_error = Some(err);
            }
        }
        if let Some(err) = first_error {
            self.metrics.produce_error(err.reason());
            if let Some(fatal) = producer.client().fatal_error() {
                self.replace(generation, fatal);
            }
            if let ProduceError::TooLarge { size } = err {
                return Err(ProduceError::TooLarge {
                    size: size.max(largest),
                });
            }
            return Err(err);
        }
        Ok(())
    }

    /// Swaps in a fresh producer, once per failed generation.
    fn replace(&self, failed_generation: u64, (code, reason): (RDKafkaErrorCode, String)) {
        let mut slot = self.producer.write().expect("producer lock");
        if slot.0 != failed_generation {
            return; // another request already replaced it
        }
        match create(&self.kafka, &self.settings, &self.metrics) {
            Ok(fresh) => {
                *slot = (failed_generation + 1, fresh);
                tracing::error!(?code, %reason, "fatal producer error; replaced the producer");
            }
            Err(e) => tracing::error!(error = %e, "cannot create a new producer"),
        }
    }

    /// Messages not yet acknowledged.
    pub fn queue_depth(&self) -> i32 {
        self.current().1.in_flight_count()
    }

    /// Whether the broker answers a metadata request for the topic within `timeout` (and records
    /// its partition count). Blocking.
    pub fn broker_reachable(&self, timeout: Duration) -> Result<(), String> {
        let n = topic_partitions(&self.current().1, &self.kafka.topic, timeout)?;
        self.partitions.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// `(low, high)` watermarks of every partition of `topic`, in partition order. Blocking
    /// (metadata, then one request per partition, each within `timeout`).
    pub fn watermarks(&self, topic: &str, timeout: Duration) -> Result<Vec<(i64, i64)>, String> {
        let client = self.current().1;
        (0..topic_partitions(&client, topic, timeout)?)
            .map(|p| {
                (client.client())
                    .fetch_watermarks(topic, p, Timeout::After(timeout))
                    .map_err(|e| format!("{topic}/{p}: {e}"))
            })
            .collect()
    }

    /// The event topic's name and the dead-letter topic's.
    pub fn topics(&self) -> (&str, &str) {
        (&self.kafka.topic, &self.kafka.dlq_topic)
    }

    /// Waits up to `timeout` for queued events to be delivered (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.current().1.flush(Timeout::After(timeout))
    }
}

/// The partition count of `topic` from broker metadata. Blocking.
fn topic_partitions(producer: &Client, topic: &str, timeout: Duration) -> Result<i32, String> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Timeout::After(timeout))
        .map_err(|e| e.to_string())?;
    match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().len() as i32)
        }
        Some(t) => Err(format!("topic {topic} unavailable: {:?}", t.error())),
        None => Err(format!("topic {topic} unknown")),
    }
}

fn create(
    kafka: &KafkaSettings,
    s: &ProducerSettings,
    metrics: &IngestMetrics,
) -> Result<Client, KafkaError> {
    let timeout_ms = s.timeout.as_millis().max(1000) as u64;
    kafka
        .client_config()
        .set("client.id", "tunix-ingest-api")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", s.linger_ms.to_string())
        .set("batch.num.messages", s.batch_messages.to_string())
        .set("compression.type", &s.compression)
        .set("message.max.bytes", TOPIC_MAX_MESSAGE_BYTES.to_string())
        .set(
            "queue.buffering.max.messages",
            s.queue_max_messages.to_string(),
        )
        .set("queue.buffering.max.kbytes", "65536")
        .set("message.timeout.ms", timeout_ms.to_string())
        .set("request.timeout.ms", (timeout_ms / 2).max(500).to_string())
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.keepalive.enable", "true")
        .set("statistics.interval.ms", "2000")
        .create_with_context(ProducerContext(metrics.broker_requests.clone()))
}

#[cfg(test)]
mod tests {
    //! Error mapping against librdkafka's in-process mock cluster (the only fake allowed: it
    //! injects broker errors that a real broker cannot be asked to produce on demand).
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    fn event() -> TraceEvent {
        let trace = tunix_schemas::Trace::parse_json(
            br#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}]}"#,
        )
        .unwrap();
        TraceEvent::Submitted(tunix_schemas::TraceSubmitted {
            id: uuid::Uuid::now_v7(),
            created_at: chrono::Utc::now(),
            trace,
            idempotency_key: None,
        })
    }

    fn producer(
        cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
        linger_ms: u64,
        queue: u64,
    ) -> EventProducer {
        let kafka = KafkaSettings::new(&cluster.bootstrap_servers(), "traces");
        EventProducer::new(
            &kafka,
            ProducerSettings {
                timeout: Duration::from_secs(2),
                linger_ms,
                batch_messages: 10_000,
                compression: "none".into(),
                queue_max_messages: queue,
                framing: Framing::Confluent,
            },
            crate::http::metrics::IngestMetrics::new(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn acknowledged_appends_succeed() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("traces", 3, 1).unwrap();
        let p = producer(&cluster, 0, 1000);
        p.append(&[event(), event()]).await.unwrap();
    }

    #[tokio::test]
    async fn message_too_large_maps_to_too_large() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("traces", 1, 1).unwrap();
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        );
        let p = producer(&cluster, 0, 1000);
        let err = p.append(&[event()]).await.unwrap_err();
        assert!(matches!(err, ProduceError::TooLarge { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("traces", 1, 1).unwrap();
        // One slot, and a long linger so the first event stays queued.
        let p = producer(&cluster, 1000, 1);
        let err = p.append(&[event(), event()]).await.unwrap_err();
        assert!(matches!(err, ProduceError::QueueFull), "{err:?}");
    }

    #[tokio::test]
    async fn an_unreachable_broker_times_out_within_the_bound() {
        let kafka = KafkaSettings::new("127.0.0.1:1", "traces");
        let p = EventProducer::new(
            &kafka,
            ProducerSettings {
                timeout: Duration::from_secs(1),
                linger_ms: 0,
                batch_messages: 10_000,
                compression: "none".into(),
                queue_max_messages: 10,
                framing: Framing::Confluent,
            },
            crate::http::metrics::IngestMetrics::new(),
        )
        .unwrap();
        let started = Instant::now();
        let err = p.append(&[event()]).await.unwrap_err();
        assert!(
            matches!(err, ProduceError::Timeout(_) | ProduceError::Broker(_)),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "bounded: {:?}",
            started.elapsed()
        );
    }
}
