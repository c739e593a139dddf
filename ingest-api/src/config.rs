//! ingest-api configuration, from environment variables (see the README's configuration table).

use std::net::SocketAddr;
use std::time::Duration;

use tunix_pipeline::config::{ConfigError, Env};
use tunix_pipeline::db::DbSettings;
use tunix_pipeline::kafka::KafkaSettings;
use tunix_pipeline::telemetry::LogFormat;

use crate::http::auth::ApiKeys;

/// Everything ingest-api reads from the environment.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `API_ADDR`: the public address (API, UI, metrics).
    pub api_addr: SocketAddr,
    /// `ALLOW_UNAUTHENTICATED_PUBLIC`: listen on a non-loopback address without API keys.
    pub allow_unauthenticated_public: bool,
    /// `TRACE_MAX_BYTES`: largest single-trace body, after decompression.
    pub trace_max_bytes: usize,
    /// `BATCH_MAX_BYTES`: largest batch body, after decompression.
    pub batch_max_bytes: usize,
    /// `BODY_READ_TIMEOUT_MS`: a body not fully received by then gets 408.
    pub body_read_timeout: Duration,
    /// `PRODUCE_TIMEOUT_MS`: longest wait for the broker's acknowledgement before 503.
    pub produce_timeout: Duration,
    /// `RETRY_AFTER_SECONDS`: the `Retry-After` value on 503 answers.
    pub retry_after_secs: u64,
    /// `KAFKA_LINGER_MS`: producer batching delay.
    pub linger_ms: u64,
    /// `KAFKA_BATCH_MESSAGES`: a batch of this many events is sent at once, before the linger:
    /// the linger only holds back requests while fewer are waiting (docs/BENCHMARKS.md, "Speed").
    pub batch_messages: u32,
    /// `KAFKA_COMPRESSION`: producer compression codec (`none`, `gzip`, `lz4`, `zstd`, `snappy`).
    pub compression: String,
    /// `PRODUCER_QUEUE_MAX_MESSAGES`: events buffered towards the broker before new requests get 503.
    pub producer_queue_max_messages: u64,
    /// `EVENT_ENCODING`: `confluent` (Schema Registry wire format, the default) or
    /// `single-object` (Avro single-object encoding, as before 2026-12).
    pub event_encoding: tunix_schemas::Framing,
    /// `WAIT_MAX_MS`: upper bound of the `wait_ms` read-your-writes parameter.
    pub wait_max: Duration,
    /// `SHUTDOWN_DELAY_MS`: after SIGTERM, keep accepting (with readiness 503) this long, so load
    /// balancers notice before connections are refused.
    pub shutdown_delay: Duration,
    /// `SHUTDOWN_DRAIN_TIMEOUT_MS`: longest wait for in-flight requests on shutdown.
    pub drain_timeout: Duration,
    /// API keys and their scopes (`API_KEYS`, `API_KEYS_FILE`); empty means auth is off.
    pub api_keys: ApiKeys,
    /// Kafka settings.
    pub kafka: KafkaSettings,
    /// Postgres settings (read endpoints only; ingestion never touches Postgres).
    pub db: DbSettings,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// The upstream health check of `GET /api/redi/health`.
    pub redi: crate::compat::redi::RediSettings,
    /// `REDACTION_RULES`: the rules file's rules, applied to every trace before validation.
    pub redaction: Option<std::sync::Arc<tunix_schemas::redact::RedactionRules>>,
    /// `CORS_ORIGINS`: origins allowed to call the API from a browser (a UI served elsewhere);
    /// empty means none (same origin only).
    pub cors_origins: Vec<String>,
    /// `RETENTION_DAYS`: traces older than this are erased by periodic sweeps; `None` (the
    /// default) keeps them until deleted.
    pub retention_days: Option<u32>,
    /// `RETENTION_SWEEP_INTERVAL_SECONDS`: time between the start of retention sweeps.
    pub retention_sweep_interval: Duration,
    /// `ERASURE_RATE_PER_SECOND`: most traces per second a bulk delete or retention sweep erases
    /// (per ingest-api instance), so that erasure never starves ingest.
    pub erasure_rate: u32,
}

impl IngestConfig {
    /// Reads every variable, reporting all problems at once.
    pub fn from_env(mut env: Env) -> Result<IngestConfig, ConfigError> {
        let cfg = IngestConfig::read(&mut env);
        env.finish()?;
        Ok(cfg)
    }

    /// Every environment variable ingest-api reads (documentation tests check the README).
    pub fn variables() -> Vec<&'static str> {
        let mut env = Env::from_map(Vec::<(String, String)>::new());
        IngestConfig::read(&mut env);
        env.names_read()
    }

    fn read(env: &mut Env) -> IngestConfig {
        let trace_max_bytes = env.bounded(
            "TRACE_MAX_BYTES",
            tunix_schemas::DEFAULT_TRACE_MAX_BYTES,
            1024,
            tunix_schemas::MAX_TRACE_BYTES_LIMIT,
        );
        let api_keys = ApiKeys::from_env(env);
        IngestConfig {
            api_addr: env.parse("API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080))),
            allow_unauthenticated_public: env.flag("ALLOW_UNAUTHENTICATED_PUBLIC", false),
            trace_max_bytes,
            batch_max_bytes: env.bounded("BATCH_MAX_BYTES", 32 << 20, 1024, 1 << 30),
            body_read_timeout: env.millis("BODY_READ_TIMEOUT_MS", 10_000),
            produce_timeout: env.millis("PRODUCE_TIMEOUT_MS", 5_000),
            retry_after_secs: env.bounded("RETRY_AFTER_SECONDS", 2, 1, 3600),
            linger_ms: env.bounded("KAFKA_LINGER_MS", 10, 0, 10_000),
            batch_messages: env.bounded("KAFKA_BATCH_MESSAGES", 64, 1, 1_000_000),
            compression: env.string("KAFKA_COMPRESSION", "none"),
            producer_queue_max_messages: env.bounded(
                "PRODUCER_QUEUE_MAX_MESSAGES",
                200_000,
                1,
                10_000_000,
            ),
            event_encoding: env.parse("EVENT_ENCODING", tunix_schemas::Framing::Confluent),
            wait_max: env.millis("WAIT_MAX_MS", 10_000),
            shutdown_delay: env.millis("SHUTDOWN_DELAY_MS", 0),
            drain_timeout: env.millis("SHUTDOWN_DRAIN_TIMEOUT_MS", 30_000),
            api_keys,
            kafka: KafkaSettings::from_env(env),
            db: DbSettings::from_env(env),
            log_format: env.parse("LOG_FORMAT", LogFormat::Text),
            redi: crate::compat::redi::RediSettings::from_env(env),
            redaction: redaction_rules(env),
            cors_origins: env
                .optional("CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            retention_days: env
                .optional("RETENTION_DAYS")
                .map(|_| env.bounded("RETENTION_DAYS", 0u32, 1, 100_000)),
            retention_sweep_interval: env.seconds("RETENTION_SWEEP_INTERVAL_SECONDS", 3600.0),
            erasure_rate: env.bounded("ERASURE_RATE_PER_SECOND", 1000, 1, 1_000_000),
        }
    }

    /// Defaults for the given broker, topic and database (tests).
    pub fn for_tests(brokers: &str, topic: &str, database_url: &str) -> IngestConfig {
        let mut env = Env::from_map([
            ("KAFKA_BROKERS", brokers),
            ("KAFKA_TOPIC", topic),
            ("DATABASE_URL", database_url),
        ]);
        let cfg = IngestConfig::read(&mut env);
        env.finish().expect("test configuration is valid");
        cfg
    }
}

/// Reads the rules file named by `REDACTION_RULES`; every problem in it is a configuration error.
fn redaction_rules(env: &mut Env) -> Option<std::sync::Arc<tunix_schemas::redact::RedactionRules>> {
    let path = env.optional("REDACTION_RULES")?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            env.error(format!("REDACTION_RULES={path}: {e}"));
            return None;
        }
    };
    match tunix_schemas::redact::RedactionRules::parse(&text) {
        Ok(rules) => Some(std::sync::Arc::new(rules)),
        Err(errors) => {
            for e in errors {
                env.error(format!("REDACTION_RULES={path}: {e}"));
            }
            None
        }
    }
}
