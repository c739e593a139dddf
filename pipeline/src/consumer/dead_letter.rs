//! **Owns: nothing is dropped silently.** Records that cannot be applied go to the dead-letter
//! topic with their original key, value and headers, plus provenance headers, and the broker's
//! acknowledgement is awaited *before* the batch that skips them commits. A dead-letter topic
//! that cannot be written is an outage (the batch is retried), never a reason to skip.
//!
//! Headers added: `dlq.source.topic`, `dlq.source.partition`, `dlq.source.offset`,
//! `dlq.error.reason` (a stable label), `dlq.error`, `dlq.time` (RFC 3339), `dlq.consumer` (the
//! group). Dead letters are written at least once: a retried batch may write one twice.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::kafka::KafkaSettings;

/// How long one dead letter may wait for the broker's acknowledgement.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The dead-letter producer of one consumer.
pub(super) struct DeadLetters {
    config: ClientConfig,
    /// Created at the first dead letter, not before: an idle rdkafka 0.38 producer is not free
    /// (its polling thread spins through the last millisecond of every 100 ms poll, ~1% of a
    /// core), and most consumers never dead-letter anything.
    producer: OnceLock<FutureProducer>,
    /// Where dead letters go (`KAFKA_DLQ_TOPIC`).
    topic: String,
    /// The topic the records came from.
    source_topic: String,
    /// The consumer group, recorded in `dlq.consumer`.
    group: String,
}

impl DeadLetters {
    /// An idempotent `acks=all` producer for `kafka.dlq_topic`.
    pub fn new(kafka: &KafkaSettings, group: &str) -> Result<DeadLetters, KafkaError> {
        let mut cfg = kafka.client_config();
        cfg.set("acks", "all")
            .set("enable.idempotence", "true")
            .set(
                "message.max.bytes",
                crate::kafka::TOPIC_MAX_MESSAGE_BYTES.to_string(),
            )
            .set("client.id", format!("{group}-dlq"));
        Ok(DeadLetters {
            config: cfg,
            producer: OnceLock::new(),
            topic: kafka.dlq_topic.clone(),
            source_topic: kafka.topic.clone(),
            group: group.to_owned(),
        })
    }

    fn producer(&self) -> Result<&FutureProducer, String> {
        if let Some(p) = self.producer.get() {
            return Ok(p);
        }
        let created: FutureProducer = self
            .config
            .create()
            .map_err(|e| format!("dead-letter producer: {e}"))?;
        Ok(self.producer.get_or_init(|| created))
    }

    /// Sends the original record with provenance headers and waits for the broker's ack.
    pub async fn send(
        &self,
        message: &OwnedMessage,
        reason: &'static str,
        error: &str,
    ) -> Result<(), String> {
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
        for (key, value) in [
            ("dlq.source.topic", self.source_topic.as_str()),
            ("dlq.source.partition", partition.as_str()),
            ("dlq.source.offset", offset.as_str()),
            ("dlq.error.reason", reason),
            ("dlq.error", error),
            ("dlq.time", now.as_str()),
            ("dlq.consumer", self.group.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        match self.producer()?.send(record, SEND_TIMEOUT).await {
            Ok(_) => {
                tracing::warn!(partition = %partition, offset = %offset, reason, error, "record dead-lettered");
                Ok(())
            }
            Err((e, _)) => Err(format!("dead-letter produce: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::Timestamp;

    fn original() -> OwnedMessage {
        let headers = OwnedHeaders::new().insert(Header {
            key: "producer.header",
            value: Some("kept"),
        });
        OwnedMessage::new(
            Some(b"not avro".to_vec()),
            Some(b"key-1".to_vec()),
            "traces".into(),
            Timestamp::NotAvailable,
            3,
            42,
            Some(headers),
        )
    }

    fn settings(bootstrap: &str) -> KafkaSettings {
        let mut kafka = KafkaSettings::new(bootstrap, "traces");
        kafka.dlq_topic = "traces.dlq".into();
        kafka
    }

    #[tokio::test]
    async fn a_dead_letter_keeps_the_original_and_says_where_it_came_from() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("traces.dlq", 1, 1).unwrap();
        let dlq = DeadLetters::new(&settings(&cluster.bootstrap_servers()), "g").unwrap();
        dlq.send(&original(), "bad_magic", "value does not start with C3 01")
            .await
            .unwrap();

        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "check")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("traces.dlq", 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let got = loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => break m.detach(),
                Some(Err(e)) => panic!("{e}"),
                None if std::time::Instant::now() > deadline => {
                    panic!("no dead letter within 20 s")
                }
                None => {}
            }
        };
        assert_eq!(got.payload(), Some(&b"not avro"[..]));
        assert_eq!(got.key(), Some(&b"key-1"[..]));
        let headers: Vec<(String, String)> = got
            .headers()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        for (k, v) in [
            ("producer.header", "kept"),
            ("dlq.source.topic", "traces"),
            ("dlq.source.partition", "3"),
            ("dlq.source.offset", "42"),
            ("dlq.error.reason", "bad_magic"),
            ("dlq.consumer", "g"),
        ] {
            assert!(
                headers.contains(&(k.to_owned(), v.to_owned())),
                "{k}={v} in {headers:?}"
            );
        }
    }

    /// A broker that refuses the write must surface as an error (the batch is retried and the
    /// position does not move), never as a silently skipped record.
    #[tokio::test]
    async fn a_refused_dead_letter_is_an_error_not_a_skip() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("traces.dlq", 1, 1).unwrap();
        // Every produce request fails with a non-retriable error.
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 8],
        );
        let dlq = DeadLetters::new(&settings(&cluster.bootstrap_servers()), "g").unwrap();
        let err = dlq.send(&original(), "avro", "x").await.unwrap_err();
        assert!(err.starts_with("dead-letter produce:"), "{err}");
    }
}
