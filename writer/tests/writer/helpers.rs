use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tunix_pipeline::consumer::ConsumerSettings;
use tunix_pipeline::db::DbSettings;
use tunix_pipeline::kafka::KafkaSettings;
use tunix_pipeline::telemetry::LogFormat;
use tunix_schemas::TraceEvent;
use tunix_testkit::{eventually, Service, TestTopic};
use tunix_writer::WriterConfig;

/// A writer running inside the test process.
pub struct InProcess {
    pub shutdown: CancellationToken,
    pub join: JoinHandle<anyhow::Result<()>>,
    pub ops: SocketAddr,
}

impl InProcess {
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.join)
            .await
            .expect("writer stops within 30s")
            .expect("writer task")
            .expect("writer exits cleanly");
    }
}

pub fn config(db_url: &str, kafka: &KafkaSettings, group: &str) -> WriterConfig {
    let mut consumer = ConsumerSettings::with_group(group);
    consumer.batch_max_wait = Duration::from_millis(20);
    consumer.backoff_max = Duration::from_millis(500);
    WriterConfig {
        kafka: kafka.clone(),
        db: DbSettings::for_url(db_url),
        consumer,
        ops_addr: "127.0.0.1:0".parse().unwrap(),
        run_migrations: true,
        log_format: LogFormat::Text,
    }
}

pub async fn start_in_process(cfg: WriterConfig) -> InProcess {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let join = tokio::spawn(tunix_writer::run(cfg, listener, shutdown.clone()));
    InProcess {
        shutdown,
        join,
        ops,
    }
}

/// Submitted events, each with a fresh id, for the seed traces in `range`.
pub fn submissions(range: std::ops::Range<usize>) -> Vec<TraceEvent> {
    tunix_testkit::dataset_traces()[range]
        .iter()
        .cloned()
        .map(tunix_testkit::submitted)
        .collect()
}

/// A writer in the test process on `kafka`'s topic, in a consumer group of its own.
pub async fn start_writer(db_url: &str, kafka: &KafkaSettings) -> InProcess {
    start_in_process(config(db_url, kafka, &tunix_testkit::unique("w"))).await
}

/// The writer binary as a separate process (for SIGKILL tests).
pub fn start_process(db_url: &str, topic: &TestTopic, group: &str, instance: &str) -> Service {
    Service::start(
        "writer",
        env!("CARGO_BIN_EXE_tunix-writer").into(),
        vec![
            ("DATABASE_URL".into(), db_url.into()),
            ("KAFKA_BROKERS".into(), topic.settings.brokers.clone()),
            ("KAFKA_TOPIC".into(), topic.name().into()),
            ("WRITER_GROUP_ID".into(), group.into()),
            ("WRITER_INSTANCE_ID".into(), instance.into()),
            (
                "WRITER_OPS_ADDR".into(),
                format!("127.0.0.1:{}", tunix_testkit::free_port()),
            ),
            ("WRITER_BATCH_MAX_WAIT_MS".into(), "20".into()),
            ("WRITER_BATCH_MAX_RECORDS".into(), "500".into()),
        ],
    )
}

pub async fn row_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM traces")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until `traces` holds exactly `n` rows.
pub async fn wait_for_rows(pool: &PgPool, n: i64, timeout: Duration) {
    eventually(timeout, &format!("{n} rows in traces"), || {
        let pool = pool.clone();
        async move { (row_count(&pool).await == n).then_some(()) }
    })
    .await;
}

/// Sum over partitions of the writer's stored positions.
pub async fn stored_total(pool: &PgPool, topic: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM consumer_offsets WHERE target = 'traces' AND topic = $1",
    )
    .bind(topic)
    .fetch_one(pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

/// Waits until the writer's positions on `topic` add up to `n` (it read that many records).
pub async fn wait_for_positions(pool: &PgPool, topic: &str, n: i64, timeout: Duration, what: &str) {
    eventually(timeout, what, || async {
        (stored_total(pool, topic).await == n).then_some(())
    })
    .await;
}

/// Asserts that every submitted event is stored with a payload equal (as JSON) to what was produced.
pub async fn assert_payloads(pool: &PgPool, events: &[TraceEvent]) {
    let rows: Vec<(uuid::Uuid, String, chrono::DateTime<chrono::Utc>, Value)> =
        sqlx::query_as("SELECT id, trace_version, created_at, payload FROM traces")
            .fetch_all(pool)
            .await
            .unwrap();
    let stored: std::collections::HashMap<
        uuid::Uuid,
        (String, chrono::DateTime<chrono::Utc>, Value),
    > = rows
        .into_iter()
        .map(|(id, v, c, p)| (id, (v, c, p)))
        .collect();
    for event in events {
        let TraceEvent::Submitted(s) = event else {
            continue;
        };
        let (version, created, payload) = stored
            .get(&s.id)
            .unwrap_or_else(|| panic!("trace {} is stored", s.id));
        let expected: Value = serde_json::from_str(&s.trace.to_json()).unwrap();
        assert_eq!(payload, &expected, "payload of {}", s.id);
        assert_eq!(version, s.trace.trace_version());
        assert_eq!(created, &s.created_at);
    }
}
