//! Writer tests against the real broker and the real Postgres (started by `infra/test.sh`).

mod groups;
mod helpers;

use std::time::Duration;

use rand::Rng;
use rdkafka::message::{Headers, Message};
use tunix_testkit::{
    consume_all, dataset_traces, deleted, eventually, produce_events, produce_raw, submitted,
    PgCluster, TestDb, TestTopic,
};

use helpers::*;

const DRAIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_and_redeliveries_store_each_trace_once() {
    let db = TestDb::new().await;
    let topic = TestTopic::new(4).await;
    let originals: Vec<_> = submissions(0..550);
    // The same events again (a producer retry after a lost ack), and 50 ids re-sent with a
    // different body (an Idempotency-Key retry with an edited trace): the last one wins, as
    // compaction of the topic would keep it.
    let mut events = originals.clone();
    events.extend(originals[..100].iter().cloned());
    let mut expected = originals.clone();
    for (i, e) in originals[100..150].iter().enumerate() {
        let tunix_schemas::TraceEvent::Submitted(s) = e else {
            unreachable!()
        };
        let mut changed = s.clone();
        changed.trace = dataset_traces()[(i + 300) % 550].clone();
        events.push(tunix_schemas::TraceEvent::Submitted(changed.clone()));
        expected[100 + i] = tunix_schemas::TraceEvent::Submitted(changed);
    }
    produce_events(&topic, &events).await;

    let writer = start_writer(&db.url, &topic.settings).await;
    wait_for_rows(&db.pool, 550, DRAIN).await;
    wait_for_positions(
        &db.pool,
        topic.name(),
        events.len() as i64,
        DRAIN,
        "positions at the end of the topic",
    )
    .await;
    writer.stop().await;
    assert_eq!(row_count(&db.pool).await, 550);
    assert_payloads(&db.pool, &expected).await;

    // Redelivery of the whole topic (positions reset, as after restoring an old backup).
    sqlx::query("UPDATE consumer_offsets SET next_offset = NULL WHERE target = 'traces'")
        .execute(&db.pool)
        .await
        .unwrap();
    let writer = start_writer(&db.url, &topic.settings).await;
    wait_for_positions(
        &db.pool,
        topic.name(),
        events.len() as i64,
        DRAIN,
        "replayed to the end",
    )
    .await;
    writer.stop().await;
    assert_eq!(row_count(&db.pool).await, 550, "a replay adds no rows");
    assert_payloads(&db.pool, &expected).await;
}

async fn kill_mid_stream_and_check(topic: TestTopic) {
    let db = TestDb::new().await;
    let traces = dataset_traces();
    let total = 20_000usize;
    let events: Vec<_> = (0..total)
        .map(|i| submitted(traces[i % traces.len()].clone()))
        .collect();

    let group = tunix_testkit::unique("w");
    let mut writer = start_process(&db.url, &topic, &group, "writer-0");
    let producer = {
        let topic_settings = topic.settings.clone();
        let events = events.clone();
        tokio::spawn(async move {
            let topic = TestTopic {
                settings: topic_settings,
            };
            for chunk in events.chunks(1000) {
                produce_events(&topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    for round in 0..4 {
        // Kill mid-stream: only once this incarnation has committed something, then at a random
        // point of its next batches.
        let base = row_count(&db.pool).await;
        eventually(DRAIN, "progress before the kill", || async {
            (row_count(&db.pool).await > base).then_some(())
        })
        .await;
        let wait = rand::rng().random_range(0..400);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        writer.kill();
        let at = row_count(&db.pool).await;
        eprintln!("round {round}: SIGKILL {wait} ms after progress, {at} rows stored");
        writer.restart();
    }
    producer.await.unwrap();
    wait_for_rows(&db.pool, total as i64, Duration::from_secs(120)).await;
    wait_for_positions(
        &db.pool,
        topic.name(),
        total as i64,
        DRAIN,
        "positions at the end of the topic",
    )
    .await;
    assert!(
        writer.is_running(),
        "writer survived: {}",
        writer.log_tail(20)
    );
    assert_eq!(writer.starts, 5);
    assert_payloads(&db.pool, &events).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_loses_and_doubles_nothing() {
    kill_mid_stream_and_check(TestTopic::new(6).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outage_pauses_then_catches_up() {
    let cluster = PgCluster::start();
    let db = TestDb::on(&cluster.admin_url()).await;
    let topic = TestTopic::new(3).await;
    let traces = dataset_traces();
    let events: Vec<_> = (0..3000)
        .map(|i| submitted(traces[i % traces.len()].clone()))
        .collect();
    let mut cfg = config(&db.url, &topic.settings, &tunix_testkit::unique("w"));
    cfg.db.pool_timeout = Duration::from_secs(1);
    let writer = start_in_process(cfg).await;
    let ready_url = format!("http://{}/readyz", writer.ops);

    produce_events(&topic, &events[..1000]).await;
    wait_for_rows(&db.pool, 1000, DRAIN).await;
    db.pool.close().await;

    cluster.stop();
    produce_events(&topic, &events[1000..]).await;
    eventually(
        Duration::from_secs(30),
        "readiness 503 while Postgres is down",
        || {
            let url = ready_url.clone();
            async move {
                let status = reqwest::get(&url).await.ok()?.status();
                (status == 503).then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // an outage, not a blip
    cluster.start_again();

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    wait_for_rows(&pool, 3000, DRAIN).await;
    eventually(Duration::from_secs(30), "readiness back to 200", || {
        let url = ready_url.clone();
        async move { (reqwest::get(&url).await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    writer.stop().await;
    assert_payloads(&pool, &events).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_record_goes_to_the_dead_letter_topic_and_the_partition_moves_on() {
    let db = TestDb::new().await;
    let topic = TestTopic::new(1).await;
    let before: Vec<_> = submissions(0..10);
    let after: Vec<_> = submissions(10..20);
    produce_events(&topic, &before).await;
    let garbage = b"{\"not\": \"avro\"}".to_vec();
    produce_raw(&topic, 0, "poison-key", &garbage).await;
    produce_events(&topic, &after).await;

    let writer = start_writer(&db.url, &topic.settings).await;
    wait_for_rows(&db.pool, 20, DRAIN).await;
    wait_for_positions(
        &db.pool,
        topic.name(),
        21,
        DRAIN,
        "position past the poison record",
    )
    .await;
    let metrics = reqwest::get(format!("http://{}/metrics", writer.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    writer.stop().await;
    assert_payloads(&db.pool, &before).await;
    assert_payloads(&db.pool, &after).await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("tunix_writer_dlq_total{reason=\"bad_magic\"}") && !l.ends_with(" 0")
        ),
        "DLQ count is exported:\n{metrics}"
    );

    let dead = consume_all(
        &topic.settings.brokers,
        &topic.settings.dlq_topic,
        1,
        Duration::from_secs(20),
    );
    assert_eq!(dead.len(), 1);
    let record = &dead[0];
    assert_eq!(
        record.payload(),
        Some(&garbage[..]),
        "original bytes are kept"
    );
    assert_eq!(record.key(), Some(&b"poison-key"[..]));
    let headers = record.headers().expect("dead letters carry headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| panic!("header {name}"))
    };
    assert_eq!(header("dlq.source.topic"), topic.name());
    assert_eq!(header("dlq.source.partition"), "0");
    assert_eq!(header("dlq.source.offset"), "10");
    assert_eq!(header("dlq.error.reason"), "bad_magic");
    assert!(header("dlq.error").contains("single-object"));
    assert!(chrono::DateTime::parse_from_rfc3339(&header("dlq.time")).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_writers_in_one_group_share_the_partitions() {
    let db = TestDb::new().await;
    let topic = TestTopic::new(6).await;
    let group = tunix_testkit::unique("w");
    let mut a = start_process(&db.url, &topic, &group, "writer-a");
    let mut b = start_process(&db.url, &topic, &group, "writer-b");
    let traces = dataset_traces();
    let events: Vec<_> = (0..6000)
        .map(|i| submitted(traces[i % traces.len()].clone()))
        .collect();
    for chunk in events.chunks(500) {
        produce_events(&topic, chunk).await;
    }
    wait_for_rows(&db.pool, 6000, DRAIN).await;
    wait_for_positions(&db.pool, topic.name(), 6000, DRAIN, "positions at the end").await;
    assert_payloads(&db.pool, &events).await;
    for w in [&mut a, &mut b] {
        let log = std::fs::read_to_string(&w.log).unwrap();
        assert!(
            log.contains("partitions assigned"),
            "each writer got partitions:\n{}",
            w.log_tail(30)
        );
        assert!(
            w.terminate(Duration::from_secs(30))
                .is_some_and(|s| s.success()),
            "clean exit on SIGTERM"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_traces_stay_deleted_after_a_replay_from_offset_zero() {
    let db = TestDb::new().await;
    let topic = TestTopic::new(3).await;
    let subs: Vec<_> = submissions(0..10);
    let gone: Vec<uuid::Uuid> = subs[..3].iter().map(|e| e.id()).collect();
    produce_events(&topic, &subs).await;
    let dels: Vec<_> = gone.iter().map(|id| deleted(*id)).collect();
    produce_events(&topic, &dels).await;

    for round in 0..2 {
        let writer = start_writer(&db.url, &topic.settings).await;
        wait_for_positions(&db.pool, topic.name(), 13, DRAIN, "positions at the end").await;
        writer.stop().await;
        assert_eq!(row_count(&db.pool).await, 7, "round {round}");
        let present: i64 = sqlx::query_scalar("SELECT count(*) FROM traces WHERE id = ANY($1)")
            .bind(&gone)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(present, 0, "round {round}: deleted traces are absent");
        sqlx::query("UPDATE consumer_offsets SET next_offset = NULL WHERE target = 'traces'")
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sslmode_require_connects_over_tls() {
    let cluster = PgCluster::start_with_tls();
    let db = TestDb::on(&cluster.admin_url()).await;
    let url = format!("{}?sslmode=require", db.url);
    let pool = tunix_pipeline::db::DbSettings::for_url(&url)
        .pool()
        .unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ssl, "the connection is encrypted");

    let topic = TestTopic::new(1).await;
    let events: Vec<_> = submissions(0..5);
    produce_events(&topic, &events).await;
    let writer = start_writer(&url, &topic.settings).await;
    wait_for_rows(&pool, 5, DRAIN).await;
    writer.stop().await;
}

/// The broker lost the topic (recreated empty) while the database kept the positions: the new
/// records get offsets below the stored positions. A restarted writer notices the positions are
/// past the end and replays from the beginning instead of skipping them.
#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_topic_is_replayed_not_skipped() {
    let db = TestDb::new().await;
    let topic = TestTopic::new(2).await;
    let first: Vec<_> = submissions(0..30);
    produce_events(&topic, &first).await;
    let writer = start_writer(&db.url, &topic.settings).await;
    wait_for_rows(&db.pool, 30, DRAIN).await;
    wait_for_positions(&db.pool, topic.name(), 30, DRAIN, "positions at the end").await;
    writer.stop().await;

    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        topic.settings.client_config().create().unwrap();
    admin
        .delete_topics(&[topic.name()], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "topic recreated", || async {
        topic
            .settings
            .ensure_topics(Duration::from_secs(10))
            .await
            .ok()?;
        topic
            .settings
            .partition_count(topic.name(), Duration::from_secs(5))
            .ok()
            .filter(|n| *n == 2)
    })
    .await;
    let second: Vec<_> = submissions(30..40);
    produce_events(&topic, &second).await;

    let writer = start_writer(&db.url, &topic.settings).await;
    wait_for_rows(&db.pool, 40, DRAIN).await;
    writer.stop().await;
    assert_payloads(&db.pool, &second).await;
}
