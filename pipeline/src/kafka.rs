//! Kafka settings shared by every client, and topic administration.
//!
//! The `traces` topic is the system of record: every Postgres table is derived from it and can be
//! rebuilt by replaying it, so it is created with unlimited retention (`retention.ms=-1`) unless
//! told otherwise.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::Env;
use crate::kafka_security::{AccessError, KafkaSecurity};

/// The local stack's broker (see `infra/up.sh`).
pub const DEFAULT_BROKERS: &str = "127.0.0.1:19092";
/// The topic ingest-api appends to.
pub const DEFAULT_TOPIC: &str = "traces";
/// Default `KAFKA_DLQ_RETENTION_MS`: 7 days.
pub const DLQ_RETENTION_MS_DEFAULT: i64 = 7 * 24 * 3600 * 1000;
/// Largest record the topics accept: the largest configurable trace plus Avro and batch overhead.
pub const TOPIC_MAX_MESSAGE_BYTES: usize = tunix_schemas::MAX_TRACE_BYTES_LIMIT + 1024 * 1024;

/// Where the topic lives and how clients reach it.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`: bootstrap servers, comma-separated.
    pub brokers: String,
    /// `KAFKA_TOPIC`: the event topic.
    pub topic: String,
    /// `KAFKA_DLQ_TOPIC`: where undecodable records go (default `<topic>.dlq`).
    pub dlq_topic: String,
    /// `KAFKA_TOPIC_PARTITIONS`: partitions when the topic is created.
    pub partitions: i32,
    /// `KAFKA_REPLICATION_FACTOR`: replicas when the topic is created.
    pub replication: i32,
    /// `KAFKA_TOPIC_RETENTION_MS`: `-1` keeps events forever (the topic is the system of record).
    pub retention_ms: i64,
    /// `KAFKA_TOPIC_CLEANUP_POLICY`: `delete` (keep every record for `retention_ms`) or
    /// `compact` (keep the last record per key: what makes deletions erase content; see
    /// docs/GOVERNANCE.md).
    pub cleanup_policy: String,
    /// `KAFKA_DLQ_RETENTION_MS`: how long dead letters stay (default 7 days). The dead-letter
    /// topic is also compacted, so a deleted trace's dead letters go with its tombstone.
    pub dlq_retention_ms: i64,
    /// `KAFKA_FETCH_WAIT_MAX_MS`: the longest the broker holds a consumer's fetch while fewer
    /// than `fetch_min_bytes` are there (librdkafka's `fetch.wait.max.ms`): what reads may lag
    /// at a low rate, and how often an idle consumer asks.
    pub fetch_wait_max_ms: u64,
    /// `KAFKA_FETCH_MIN_BYTES`: the broker answers a fetch once this much is there (or the wait
    /// is over). Fewer, fuller fetches: at 1,500 traces/s, 1 MiB with a 200 ms wait took the
    /// consumers' fetches from ~115 to ~7 per 1,000 traces and the total CPU per trace to 0.77x,
    /// for freshness p99 ~0.3 s instead of ~0.12 s (docs/BENCHMARKS.md).
    pub fetch_min_bytes: u64,
    /// `KAFKA_TOPIC_CONFIGS`: extra topic-level configs for both topics when they are created,
    /// `k=v` pairs separated by commas (e.g. `min.insync.replicas=2,segment.ms=3600000`). The
    /// configs that have a variable of their own (cleanup policy, retention, message size) are
    /// refused here.
    pub topic_configs: Vec<(String, String)>,
    /// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_CA_LOCATION`: how clients log in
    /// and verify the brokers.
    pub security: KafkaSecurity,
    /// `KAFKA_PROPERTIES`: extra librdkafka properties for every client, `k=v` pairs separated by
    /// commas (e.g. `socket.keepalive.enable=true,client.rack=eu1a`).
    pub properties: Vec<(String, String)>,
    /// `SCHEMA_REGISTRY_*`: the external Schema Registry behind the topic's schema ids, if any.
    pub registry: crate::registry::RegistrySettings,
}

impl KafkaSettings {
    /// Reads the `KAFKA_*` variables.
    pub fn from_env(env: &mut Env) -> KafkaSettings {
        let topic = env.string("KAFKA_TOPIC", DEFAULT_TOPIC);
        let dlq_default = format!("{topic}.dlq");
        let properties = env
            .optional("KAFKA_PROPERTIES")
            .map(|raw| parse_properties("KAFKA_PROPERTIES", &raw, env))
            .unwrap_or_default();
        let topic_configs = env
            .optional("KAFKA_TOPIC_CONFIGS")
            .map(|raw| parse_properties("KAFKA_TOPIC_CONFIGS", &raw, env))
            .unwrap_or_default();
        for (key, _) in &topic_configs {
            if let Some(owner) = owned_topic_config(key) {
                env.error(format!(
                    "KAFKA_TOPIC_CONFIGS: {key} is not set here but by {owner}"
                ));
            }
        }
        KafkaSettings {
            brokers: env.string("KAFKA_BROKERS", DEFAULT_BROKERS),
            dlq_topic: env.string("KAFKA_DLQ_TOPIC", &dlq_default),
            topic,
            partitions: env.bounded("KAFKA_TOPIC_PARTITIONS", 6, 1, 10_000),
            replication: env.bounded("KAFKA_REPLICATION_FACTOR", 1, 1, 16),
            retention_ms: env.parse("KAFKA_TOPIC_RETENTION_MS", -1),
            cleanup_policy: match env.string("KAFKA_TOPIC_CLEANUP_POLICY", "delete").as_str() {
                p @ ("delete" | "compact") => p.to_owned(),
                other => {
                    env.error(format!(
                        "KAFKA_TOPIC_CLEANUP_POLICY={other:?}: expected delete or compact"
                    ));
                    "delete".to_owned()
                }
            },
            dlq_retention_ms: env.bounded(
                "KAFKA_DLQ_RETENTION_MS",
                DLQ_RETENTION_MS_DEFAULT,
                60_000,
                i64::MAX,
            ),
            fetch_wait_max_ms: env.bounded("KAFKA_FETCH_WAIT_MAX_MS", 200, 1, 60_000),
            fetch_min_bytes: env.bounded("KAFKA_FETCH_MIN_BYTES", 1 << 20, 1, 100 << 20),
            topic_configs,
            security: KafkaSecurity::from_env(env),
            properties,
            registry: crate::registry::RegistrySettings::from_env(env),
        }
    }

    /// Settings for tests and tools: given brokers and topic, defaults elsewhere.
    pub fn new(brokers: &str, topic: &str) -> KafkaSettings {
        KafkaSettings {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            dlq_topic: format!("{topic}.dlq"),
            partitions: 6,
            replication: 1,
            retention_ms: -1,
            cleanup_policy: "delete".to_owned(),
            dlq_retention_ms: DLQ_RETENTION_MS_DEFAULT,
            fetch_wait_max_ms: 200,
            fetch_min_bytes: 1 << 20,
            topic_configs: Vec::new(),
            security: KafkaSecurity::default(),
            properties: Vec::new(),
            registry: crate::registry::RegistrySettings::default(),
        }
    }

    /// Whether the event topic is compacted (`KAFKA_TOPIC_CLEANUP_POLICY=compact`).
    pub fn compacted(&self) -> bool {
        self.cleanup_policy == "compact"
    }

    /// A client config with the brokers, the security settings and the extra properties set.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        self.security.apply(&mut cfg);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }

    /// At start-up: stops with the setting to fix when the brokers refuse the login or TLS cannot
    /// verify them ([`crate::kafka_security::check_access`]); an unreachable broker is not an
    /// error here. Instant with `PLAINTEXT`.
    pub async fn check_access(&self) -> Result<(), AccessError> {
        if !self.security.needs_check() {
            return Ok(());
        }
        let (security, cfg) = (self.security.clone(), self.client_config());
        tokio::task::spawn_blocking(move || {
            crate::kafka_security::check_access(&security, &cfg, Duration::from_secs(10))
        })
        .await
        .expect("the access check does not panic")
    }

    /// Creates the event topic and the dead-letter topic if they do not exist.
    pub async fn ensure_topics(&self, timeout: Duration) -> Result<(), KafkaError> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let max_bytes = TOPIC_MAX_MESSAGE_BYTES.to_string();
        let retention = self.retention_ms.to_string();
        let dlq_retention = self.dlq_retention_ms.to_string();
        let mut event_topic = NewTopic::new(
            &self.topic,
            self.partitions,
            TopicReplication::Fixed(self.replication),
        )
        .set("retention.ms", &retention)
        .set("max.message.bytes", &max_bytes);
        // `delete` is every broker's default and is left implicit; `compact` must be asked for.
        if self.compacted() {
            event_topic = event_topic.set("cleanup.policy", "compact");
        }
        let mut dlq_topic = NewTopic::new(
            &self.dlq_topic,
            1,
            TopicReplication::Fixed(self.replication),
        )
        .set("cleanup.policy", "compact,delete")
        .set("retention.ms", &dlq_retention)
        .set("max.message.bytes", &max_bytes);
        for (k, v) in &self.topic_configs {
            event_topic = event_topic.set(k, v);
            dlq_topic = dlq_topic.set(k, v);
        }
        let topics = [event_topic, dlq_topic];
        let options = AdminOptions::new().operation_timeout(Some(timeout));
        let results = admin.create_topics(&topics, &options).await?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                        tracing::error!(topic = %name, error = %code, "topic creation failed");
                    })
                }
            }
        }
        Ok(())
    }

    /// The number of partitions of `topic`, from broker metadata.
    pub fn partition_count(&self, topic: &str, timeout: Duration) -> Result<i32, KafkaError> {
        let consumer: BaseConsumer = self.client_config().create()?;
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let t = metadata.topics().iter().find(|t| t.name() == topic).ok_or(
            KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
        )?;
        if let Some(err) = t.error() {
            return Err(KafkaError::MetadataFetch(err.into()));
        }
        if t.partitions().is_empty() {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        Ok(t.partitions().len() as i32)
    }
}

/// The variable that owns a topic config, if one does.
fn owned_topic_config(key: &str) -> Option<&'static str> {
    match key {
        "cleanup.policy" => Some("KAFKA_TOPIC_CLEANUP_POLICY"),
        "retention.ms" => {
            Some("KAFKA_TOPIC_RETENTION_MS (the dead-letter topic: KAFKA_DLQ_RETENTION_MS)")
        }
        "max.message.bytes" => Some("tunix-rt (the topics take the largest trace it allows)"),
        _ => None,
    }
}

fn parse_properties(var: &str, raw: &str, env: &mut Env) -> Vec<(String, String)> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter_map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Some((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => {
                env.error(format!("{var}: {pair:?} is not key=value"));
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_report_errors() {
        let mut env = Env::from_map([("KAFKA_PROPERTIES", "a=1, b = two ,broken")]);
        let s = KafkaSettings::from_env(&mut env);
        assert_eq!(
            s.properties,
            vec![("a".into(), "1".into()), ("b".into(), "two".into())]
        );
        assert_eq!(s.dlq_topic, "traces.dlq");
        assert!(env.finish().is_err());
    }

    #[test]
    fn topic_configs_parse_and_refuse_what_has_its_own_variable() {
        let mut env = Env::from_map([(
            "KAFKA_TOPIC_CONFIGS",
            "min.insync.replicas=2,segment.ms=100",
        )]);
        let s = KafkaSettings::from_env(&mut env);
        assert_eq!(
            s.topic_configs,
            vec![
                ("min.insync.replicas".into(), "2".into()),
                ("segment.ms".into(), "100".into())
            ]
        );
        assert!(env.finish().is_ok());
        let mut env = Env::from_map([("KAFKA_TOPIC_CONFIGS", "cleanup.policy=delete")]);
        KafkaSettings::from_env(&mut env);
        let err = env.finish().unwrap_err().to_string();
        assert!(err.contains("KAFKA_TOPIC_CLEANUP_POLICY"), "{err}");
    }
}
