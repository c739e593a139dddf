//! `tunix-bench consumers`: how fast the writer drains a pre-filled topic into `traces`, next to
//! a raw COPY of the same rows and a bare consumer reading the topic; the projector's throughput
//! on the same topic, and on the same traces with scores interleaved. Both consumers run in this
//! process on a fresh database and fresh topics.
//!
//! Run: `target/release/tunix-bench consumers --events 1000000`

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tunix_pipeline::consumer::ConsumerSettings;
use tunix_pipeline::db::DbSettings;
use tunix_pipeline::kafka::KafkaSettings;
use tunix_pipeline::service::ServiceConfig;
use tunix_schemas::TraceEvent;

use super::produce_raw::{events, produce};
use super::{find_root, producer, StackEnv};

/// `events` with a score after every `every`-th submission (alternately `correct` and `quality`),
/// as an eval harness would interleave them.
fn with_scores(events: Vec<TraceEvent>, every: usize) -> Vec<TraceEvent> {
    let mut out = Vec::with_capacity(events.len() + events.len() / every.max(1));
    for (i, event) in events.into_iter().enumerate() {
        let id = event.id();
        out.push(event);
        if every > 0 && i % every == 0 {
            out.push(TraceEvent::ScoreRecorded(tunix_schemas::ScoreRecorded {
                trace_id: id,
                name: if i % (2 * every) == 0 {
                    "correct"
                } else {
                    "quality"
                }
                .to_owned(),
                value: (i % 7) as f64 / 7.0,
                source: Some("bench".to_owned()),
                comment: None,
                recorded_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
            }));
        }
    }
    out
}

/// Reads every record of the topic with a bare consumer (same fetch settings as the services).
fn raw_consume(topic: &KafkaSettings, n: usize) -> anyhow::Result<f64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = topic
        .client_config()
        .set("group.id", "bench-raw-consumer")
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "8388608")
        .set("fetch.max.bytes", "67108864")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let partitions = topic.partition_count(&topic.topic, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&topic.topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut got = 0;
    while got < n {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("bare consumer stalled at {got}/{n}"),
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn positions_total(pool: &PgPool, target: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM consumer_offsets WHERE target = $1",
    )
    .bind(target)
    .fetch_one(pool)
    .await
    .ok()
    .flatten()
    .unwrap_or(0)
}

async fn wait_drained(pool: &PgPool, target: &str, n: i64) -> Duration {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let done = positions_total(pool, target).await;
        if done >= n {
            return started.elapsed();
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  {target}: {done}/{n} applied ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn consumer_settings(group: &str) -> ConsumerSettings {
    let mut s = ConsumerSettings::with_group(group);
    s.batch_max_records = 5000;
    s.batch_max_bytes = 16 << 20;
    s
}

/// A consumer service the suite runs in this process.
#[derive(Clone, Copy)]
enum Service {
    Writer,
    Projector,
}

/// Runs `service` in this process as group `group` on `topic`, into the database at `url`, until
/// its positions in `pool` sum to `n`; stops it and returns how long that took.
async fn drain(
    service: Service,
    group: &str,
    topic: &KafkaSettings,
    url: &str,
    pool: &PgPool,
    n: i64,
) -> anyhow::Result<Duration> {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // The writer's and the projector's configurations are the same type.
    let cfg = ServiceConfig {
        kafka: topic.clone(),
        db: DbSettings::for_url(url),
        consumer: consumer_settings(group),
        ops_addr: listener.local_addr()?,
        run_migrations: false,
        log_format: tunix_pipeline::telemetry::LogFormat::Text,
    };
    let (task, target) = match service {
        Service::Writer => (
            tokio::spawn(tunix_writer::run(cfg, listener, shutdown.clone())),
            "traces",
        ),
        Service::Projector => (
            tokio::spawn(tunix_projector::run(cfg, listener, shutdown.clone())),
            "trace_list_v1",
        ),
    };
    let time = wait_drained(pool, target, n).await;
    shutdown.cancel();
    task.await??;
    Ok(time)
}

/// Writer drain vs COPY, and projector throughput, on a pre-filled topic.
pub async fn consumers(
    env: &StackEnv,
    n: usize,
    long_every: usize,
    scores_every: usize,
) -> anyhow::Result<()> {
    let root = find_root(&std::env::current_dir()?);
    let (url, pool) = env.fresh_database("tunix_bench").await?;
    let topic = env.fresh_topic("bench").await?;
    eprintln!("generating {n} events...");
    let (events, payload_bytes) = events(&root, n, long_every);
    let scored_events = (scores_every > 0).then(|| with_scores(events.clone(), scores_every));
    eprintln!("pre-filling topic {}...", topic.topic);
    let fill_rate = produce(&producer(&env.brokers)?, &topic.topic, events).await?;
    eprintln!("  pre-filled at {fill_rate:.0} events/s");
    // The same traces with scores interleaved, in a topic of their own.
    let scored = match scored_events {
        Some(events) => {
            let scored_topic = env.fresh_topic("bench_scored").await?;
            let total = events.len();
            eprintln!(
                "pre-filling topic {} ({total} events, scores included)...",
                scored_topic.topic
            );
            produce(&producer(&env.brokers)?, &scored_topic.topic, events).await?;
            Some((scored_topic, total))
        }
        None => None,
    };

    // The broker's delivery ceiling: a bare consumer reading every record, doing nothing else.
    let raw_consume_rate = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || raw_consume(&topic, n)).await??
    };

    // Writer.
    let writer_time = drain(
        Service::Writer,
        "bench-writer",
        &topic,
        &url,
        &pool,
        n as i64,
    )
    .await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM traces")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(rows == n as i64, "writer stored {rows} of {n}");

    // COPY of the same rows into an empty copy of the table: the physical limit.
    let mut conn = pool.acquire().await?;
    sqlx::query("CREATE TABLE traces_copy (LIKE traces INCLUDING ALL)")
        .execute(&mut *conn)
        .await?;
    let mut data = Vec::with_capacity(payload_bytes * 2);
    {
        use futures::TryStreamExt;
        let mut out = conn
            .copy_out_raw("COPY traces (id, created_at, trace_version, payload) TO STDOUT")
            .await?;
        while let Some(chunk) = out.try_next().await? {
            data.extend_from_slice(&chunk);
        }
    }
    let copy_started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY traces_copy (id, created_at, trace_version, payload) FROM STDIN")
        .await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    let copy_time = copy_started.elapsed();
    drop(conn);

    // Projector.
    let projector_time = drain(
        Service::Projector,
        "bench-projector",
        &topic,
        &url,
        &pool,
        n as i64,
    )
    .await?;

    // Projector again, on the topic with scores, into a fresh database.
    let scored_time = match &scored {
        Some((scored_topic, total)) => {
            let (url2, pool2) = env.fresh_database("tunix_bench_scored").await?;
            let t = drain(
                Service::Projector,
                "bench-projector-scored",
                scored_topic,
                &url2,
                &pool2,
                *total as i64,
            )
            .await?;
            pool2.close().await;
            env.drop_database(&url2).await;
            env.delete_topic(scored_topic).await;
            Some((t, *total))
        }
        None => None,
    };

    env.delete_topic(&topic).await;
    let mb = payload_bytes as f64 / 1e6;
    let rate = |t: Duration| n as f64 / t.as_secs_f64();
    println!("events: {n} ({long}), JSON payload {mb:.0} MB, topic pre-filled at {fill_rate:.0} events/s\n",
        long = if long_every > 0 { format!("every {long_every}th a generated 8 KB trace, the rest 0.5 KB dataset traces") } else { "0.5 KB dataset traces".to_owned() });
    println!("| consumer | time s | rows/s | MB/s | vs COPY | vs bare consumer |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| raw COPY into an empty copy of traces | {:.1} | {:.0} | {:.1} | 100% | - |",
        copy_time.as_secs_f64(),
        rate(copy_time),
        mb / copy_time.as_secs_f64()
    );
    println!("| bare Kafka consumer (reads only, the broker's ceiling) | {:.1} | {:.0} | {:.1} | - | 100% |", n as f64 / raw_consume_rate, raw_consume_rate, mb * raw_consume_rate / n as f64);
    println!(
        "| writer (Kafka to traces) | {:.1} | {:.0} | {:.1} | {:.0}% | {:.0}% |",
        writer_time.as_secs_f64(),
        rate(writer_time),
        mb / writer_time.as_secs_f64(),
        rate(writer_time) / rate(copy_time) * 100.0,
        rate(writer_time) / raw_consume_rate * 100.0
    );
    println!(
        "| projector (Kafka to trace_list) | {:.1} | {:.0} | - | - | {:.0}% |",
        projector_time.as_secs_f64(),
        rate(projector_time),
        rate(projector_time) / raw_consume_rate * 100.0
    );
    if let Some((t, total)) = scored_time {
        let events_rate = total as f64 / t.as_secs_f64();
        println!(
            "| projector with scores ({} events: {n} traces + {} scores) | {:.1} | {:.0} events/s ({:.0} traces/s) | - | - | {:.2}x the projector without scores (events/s) |",
            total,
            total - n,
            t.as_secs_f64(),
            events_rate,
            n as f64 / t.as_secs_f64(),
            events_rate / rate(projector_time)
        );
    }
    Ok(())
}
