//! The Kafka producer: append events and wait for the broker's acknowledgement.
//!
//! `acks=all` and the idempotent producer mean an acknowledged event is on every in-sync replica
//! and a librdkafka retry never duplicates it. Callers answer HTTP only after [`EventProducer::append`]
//! returns, so a 2xx always means "durable in the topic".

use std::sync::RwLock;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tunix_pipeline::kafka::{KafkaSettings, TOPIC_MAX_MESSAGE_BYTES};
use tunix_schemas::TraceEvent;

use crate::metrics::IngestMetrics;

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

/// Producer settings besides the broker address.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// Upper bound on waiting for an acknowledgement.
    pub timeout: Duration,
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `compression.type`.
    pub compression: String,
    /// `queue.buffering.max.messages`.
    pub queue_max_messages: u64,
}

/// Appends events to the topic.
pub struct EventProducer {
    /// Replaced when librdkafka reports a fatal error (the idempotent producer can then no longer
    /// be used); requests in flight keep their clone.
    producer: RwLock<FutureProducer>,
    kafka: KafkaSettings,
    settings: ProducerSettings,
    metrics: IngestMetrics,
}

impl EventProducer {
    /// Creates the producer (no network I/O yet).
    pub fn new(
        kafka: &KafkaSettings,
        settings: ProducerSettings,
        metrics: IngestMetrics,
    ) -> Result<EventProducer, KafkaError> {
        Ok(EventProducer {
            producer: RwLock::new(create(kafka, &settings)?),
            kafka: kafka.clone(),
            settings,
            metrics,
        })
    }

    fn current(&self) -> FutureProducer {
        self.producer.read().expect("producer lock").clone()
    }

    /// Appends `events` (keyed by trace id) and waits until the broker acknowledged every one.
    pub async fn append(&self, events: &[TraceEvent]) -> Result<(), ProduceError> {
        let producer = self.current();
        let started = Instant::now();
        let mut pending = Vec::with_capacity(events.len());
        let mut largest = 0;
        let mut first_error = None;
        for event in events {
            let mut id_buf = uuid::Uuid::encode_buffer();
            let key = event.id().hyphenated().encode_lower(&mut id_buf);
            let value = event.encode();
            largest = largest.max(value.len());
            let record = FutureRecord::to(&self.kafka.topic)
                .key(&*key)
                .payload(&value);
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
            self.recover_if_fatal(&producer);
            if let ProduceError::TooLarge { size } = err {
                return Err(ProduceError::TooLarge {
                    size: size.max(largest),
                });
            }
            return Err(err);
        }
        Ok(())
    }

    /// Replaces the producer after a fatal librdkafka error.
    fn recover_if_fatal(&self, failed: &FutureProducer) {
        if let Some((code, reason)) = failed.client().fatal_error() {
            tracing::error!(?code, %reason, "fatal producer error; creating a new producer");
            match create(&self.kafka, &self.settings) {
                Ok(fresh) => *self.producer.write().expect("producer lock") = fresh,
                Err(e) => tracing::error!(error = %e, "cannot create a new producer"),
            }
        }
    }

    /// Messages not yet acknowledged.
    pub fn queue_depth(&self) -> i32 {
        self.current().in_flight_count()
    }

    /// Whether the broker answers a metadata request for the topic within `timeout`. Blocking.
    pub fn broker_reachable(&self, timeout: Duration) -> Result<(), String> {
        let metadata = self
            .current()
            .client()
            .fetch_metadata(Some(&self.kafka.topic), Timeout::After(timeout))
            .map_err(|e| e.to_string())?;
        match metadata.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            Some(t) => Err(format!(
                "topic {} unavailable: {:?}",
                self.kafka.topic,
                t.error()
            )),
            None => Err(format!("topic {} unknown", self.kafka.topic)),
        }
    }

    /// Waits up to `timeout` for queued events to be delivered (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.current().flush(Timeout::After(timeout))
    }
}

fn create(kafka: &KafkaSettings, s: &ProducerSettings) -> Result<FutureProducer, KafkaError> {
    let timeout_ms = s.timeout.as_millis().max(1000) as u64;
    kafka
        .client_config()
        .set("client.id", "tunix-ingest-api")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", s.linger_ms.to_string())
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
        .create()
}
