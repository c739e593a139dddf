//! Per-test topics and direct produce/consume against the real broker.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tunix_pipeline::kafka::KafkaSettings;
use tunix_schemas::TraceEvent;

/// A topic (plus `<name>.dlq`) created for one test.
pub struct TestTopic {
    /// Settings pointing at the test broker and this topic.
    pub settings: KafkaSettings,
}

impl TestTopic {
    /// Creates a uniquely named topic with `partitions` partitions on the suite's broker.
    pub async fn new(partitions: i32) -> TestTopic {
        TestTopic::on(&crate::kafka_brokers(), partitions).await
    }

    /// Creates a uniquely named topic on the broker at `brokers`.
    pub async fn on(brokers: &str, partitions: i32) -> TestTopic {
        let name = crate::unique("traces");
        let mut settings = KafkaSettings::new(brokers, &name);
        settings.partitions = partitions;
        settings
            .ensure_topics(Duration::from_secs(30))
            .await
            .expect("create test topics");
        TestTopic { settings }
    }

    /// Creates a uniquely named topic with `cleanup.policy=compact` on the broker at `brokers`.
    pub async fn compacted_on(brokers: &str, partitions: i32) -> TestTopic {
        TestTopic::create(brokers, partitions, |s| {
            s.cleanup_policy = "compact".to_owned()
        })
        .await
    }

    /// Creates a uniquely named topic on the broker at `brokers`, with the product's own topic
    /// creation (`KafkaSettings::ensure_topics`) after `configure` adjusted the settings (cleanup
    /// policy, `topic_configs`, replication).
    pub async fn create(
        brokers: &str,
        partitions: i32,
        configure: impl FnOnce(&mut KafkaSettings),
    ) -> TestTopic {
        let name = crate::unique("traces");
        let mut settings = KafkaSettings::new(brokers, &name);
        settings.partitions = partitions;
        configure(&mut settings);
        settings
            .ensure_topics(Duration::from_secs(30))
            .await
            .expect("create test topics");
        TestTopic { settings }
    }

    /// The topic name.
    pub fn name(&self) -> &str {
        &self.settings.topic
    }
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", "17825792")
        .create()
        .expect("test producer")
}

/// Produces events with their keys, in their trace's partition, as ingest-api does, and waits
/// for every ack. Events are enqueued one after another, so events of one partition land in the
/// order given (the idempotent producer keeps it through retries); tests that send a trace twice
/// rely on that.
pub async fn produce_events(topic: &TestTopic, events: &[TraceEvent]) {
    let producer = producer(&topic.settings.brokers);
    let mut pending = Vec::with_capacity(events.len());
    for event in events {
        let key = event.key();
        let value = event.encode();
        let partition = tunix_schemas::partition_for(&event.id(), topic.settings.partitions);
        let mut record = FutureRecord::to(topic.name())
            .key(&key)
            .payload(&value)
            .partition(partition);
        let delivery = loop {
            match producer.send_result(record) {
                Ok(delivery) => break delivery,
                // The local queue is full: let librdkafka drain it, then enqueue again.
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => panic!("produce test event: {e}"),
            }
        };
        pending.push(delivery);
    }
    for delivery in pending {
        delivery
            .await
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("produce test event");
    }
}

/// Produces raw bytes (poison records) to a given partition.
pub async fn produce_raw(topic: &TestTopic, partition: i32, key: &str, value: &[u8]) {
    producer(&topic.settings.brokers)
        .send(
            FutureRecord::to(topic.name())
                .partition(partition)
                .key(key)
                .payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce raw record");
}

/// Produces a null value (a Kafka tombstone) under `key` to `partition` of `topic` (any topic,
/// e.g. the dead-letter topic).
pub async fn produce_null(brokers: &str, topic: &str, partition: i32, key: &str) {
    producer(brokers)
        .send(
            FutureRecord::<str, [u8]>::to(topic)
                .partition(partition)
                .key(key),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce a null record");
}

/// Reads every record currently in `topic` (all partitions, from the beginning, up to each
/// partition's high watermark), waiting up to `timeout` for at least `min` records to exist.
pub fn consume_all(brokers: &str, topic: &str, min: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", crate::unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + timeout;
    let high_watermarks = |c: &BaseConsumer| -> Vec<i64> {
        (0..partitions)
            .map(|p| {
                c.fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .collect()
    };
    let mut targets = high_watermarks(&consumer);
    // Next offset to read per partition: compaction leaves gaps, but never removes the last
    // record, so a partition is read once a record at or past `target - 1` arrived.
    let mut next = vec![0_i64; partitions as usize];
    let mut out = Vec::new();
    loop {
        let done = next.iter().zip(&targets).all(|(n, t)| n >= t);
        if done && out.len() >= min {
            break;
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        if done {
            // Fewer records than asked for: wait for more to arrive.
            std::thread::sleep(Duration::from_millis(100));
            targets = high_watermarks(&consumer);
            continue;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                next[m.partition() as usize] = m.offset() + 1;
                out.push(m.detach());
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}
