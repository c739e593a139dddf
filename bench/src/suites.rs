//! The benchmark suites behind the `tunix-bench` subcommands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use tokio_util::sync::CancellationToken;
use tunix_pipeline::consumer::ConsumerSettings;
use tunix_pipeline::db::DbSettings;
use tunix_pipeline::kafka::KafkaSettings;
use tunix_schemas::{Trace, TraceEvent, TraceSubmitted};
use uuid::Uuid;

use crate::gen::{self, Shape};
use crate::load::{self, Ack, LoadSpec, Stop};
use crate::report::{self, ProcessSamples};

/// Where the stack's Postgres and broker are: the environment, else `.stack/env` (written by
/// `infra/up.sh`), else the local-stack defaults.
pub struct StackEnv {
    /// `DATABASE_URL` of the stack (benchmarks create their own databases next to it).
    pub database_url: String,
    /// `KAFKA_BROKERS`.
    pub brokers: String,
}

impl StackEnv {
    /// Resolves the addresses.
    pub fn from_env(root: &Path) -> StackEnv {
        let mut file: HashMap<String, String> = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(root.join(".stack/env")) {
            for line in text.lines() {
                if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                    file.insert(k.to_owned(), v.trim_matches('\'').to_owned());
                }
            }
        }
        let get = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .or_else(|| file.get(k).cloned())
                .unwrap_or_else(|| d.to_owned())
        };
        StackEnv {
            database_url: get("DATABASE_URL", tunix_pipeline::db::DEFAULT_DATABASE_URL),
            brokers: get("KAFKA_BROKERS", tunix_pipeline::kafka::DEFAULT_BROKERS),
        }
    }

    /// Creates and migrates a fresh database next to the stack's; returns its URL and a pool.
    pub async fn fresh_database(&self, prefix: &str) -> anyhow::Result<(String, PgPool)> {
        let name = format!("{prefix}_{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let mut admin = PgConnectOptions::from_str(&self.database_url)?
            .connect()
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = with_database(&self.database_url, &name);
        let pool = bench_pool(&url).await?;
        tunix_pipeline::db::migrate(&pool).await?;
        eprintln!("bench database: {name}");
        Ok((url, pool))
    }

    /// Drops a bench database.
    pub async fn drop_database(&self, url: &str) {
        let Some(name) = url
            .rsplit('/')
            .next()
            .map(|n| n.split('?').next().unwrap_or(n).to_owned())
        else {
            return;
        };
        if let Ok(admin) = PgConnectOptions::from_str(&self.database_url) {
            if let Ok(mut conn) = admin.connect().await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }

    /// Creates a fresh topic with 6 partitions (and its dead-letter topic).
    pub async fn fresh_topic(&self, prefix: &str) -> anyhow::Result<KafkaSettings> {
        let name = format!("{prefix}_{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let settings = KafkaSettings::new(&self.brokers, &name);
        settings.ensure_topics(Duration::from_secs(30)).await?;
        Ok(settings)
    }

    /// Deletes a bench topic and its dead-letter topic, so benchmarks leave the broker as they
    /// found it. A failure is reported, not fatal: the figures are already taken.
    pub async fn delete_topic(&self, topic: &KafkaSettings) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        let deleted = async {
            let admin: AdminClient<rdkafka::client::DefaultClientContext> =
                topic.client_config().create()?;
            admin
                .delete_topics(&[&topic.topic, &topic.dlq_topic], &AdminOptions::new())
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = deleted.await {
            eprintln!("could not delete bench topic {}: {e}", topic.topic);
        }
    }
}

/// A pool on a bench database.
async fn bench_pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?)
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out = format!("{out}?{q}");
    }
    out
}

pub(crate) fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", "17825792")
        .set("queue.buffering.max.messages", "500000")
        .create()?)
}

/// Produces encoded events as fast as the broker takes them; returns events/s.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    events: Vec<TraceEvent>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut inflight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    // Partitions as ingest-api places them: the trace's, for every event of it.
    let partitions = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?
        .topics()
        .first()
        .map_or(1, |t| t.partitions().len().max(1) as i32);
    // Framed as ingest-api frames them by default.
    let encoder = tunix_schemas::Encoder::confluent_builtin();
    for event in &events {
        let key = event.key();
        let value = encoder.encode(event);
        let partition = tunix_schemas::partition_for(&event.id(), partitions);
        loop {
            match producer.send_result(
                FutureRecord::to(topic)
                    .key(&key)
                    .payload(&value)
                    .partition(partition),
            ) {
                Ok(delivery) => {
                    inflight.push(delivery);
                    break;
                }
                Err((e, _))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    // Drain some acknowledgements, then retry.
                    if let Some(r) = inflight.next().await {
                        r?.map_err(|(e, _)| e)?;
                    }
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        if inflight.len() >= 50_000 {
            if let Some(r) = inflight.next().await {
                r?.map_err(|(e, _)| e)?;
            }
        }
    }
    while let Some(r) = inflight.next().await {
        r?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

pub(crate) fn submitted(trace: Trace) -> TraceEvent {
    TraceEvent::Submitted(TraceSubmitted {
        id: tunix_schemas::ids::new_trace_id(),
        created_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
        trace,
        idempotency_key: None,
    })
}

/// Dataset traces, with every `long_every`-th a generated 8 KB one. Returns the events and the
/// total JSON payload bytes.
fn events(root: &Path, n: usize, long_every: usize) -> (Vec<TraceEvent>, usize) {
    let dataset: Vec<Trace> = gen::dataset(root)
        .iter()
        .map(|v| Trace::parse_json(&serde_json::to_vec(v).expect("json")).expect("valid"))
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let long: Vec<Trace> = (0..32)
        .map(|_| {
            Trace::parse_json(
                &serde_json::to_vec(&gen::long_trace(&mut rng, 8 * 1024)).expect("json"),
            )
            .expect("valid")
        })
        .collect();
    let mut bytes = 0;
    let events = (0..n)
        .map(|i| {
            let trace = if long_every > 0 && i % long_every == long_every - 1 {
                long[i % long.len()].clone()
            } else {
                dataset[i % dataset.len()].clone()
            };
            bytes += trace.to_json().len();
            submitted(trace)
        })
        .collect();
    (events, bytes)
}

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

/// The raw rate of an idempotent `acks=all` producer to the stack's broker.
pub async fn produce_raw(env: &StackEnv, n: usize) -> anyhow::Result<f64> {
    let topic = env.fresh_topic("bench_raw").await?;
    let root = std::env::current_dir()?;
    let (events, _) = events(&find_root(&root), n, 0);
    let rate = produce(&producer(&env.brokers)?, &topic.topic, events).await;
    env.delete_topic(&topic).await;
    rate
}

fn find_root(start: &Path) -> PathBuf {
    let mut dir = start.to_path_buf();
    while !dir.join("testdata").exists() && dir.pop() {}
    dir
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
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cfg = tunix_writer::WriterConfig {
        kafka: topic.clone(),
        db: DbSettings::for_url(&url),
        consumer: consumer_settings("bench-writer"),
        ops_addr: listener.local_addr()?,
        run_migrations: false,
        log_format: tunix_pipeline::telemetry::LogFormat::Text,
    };
    let writer = tokio::spawn(tunix_writer::run(cfg, listener, shutdown.clone()));
    let writer_time = wait_drained(&pool, "traces", n as i64).await;
    shutdown.cancel();
    writer.await??;
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
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cfg = tunix_projector::ProjectorConfig {
        kafka: topic.clone(),
        db: DbSettings::for_url(&url),
        consumer: consumer_settings("bench-projector"),
        ops_addr: listener.local_addr()?,
        run_migrations: false,
        log_format: tunix_pipeline::telemetry::LogFormat::Text,
    };
    let projector = tokio::spawn(tunix_projector::run(cfg, listener, shutdown.clone()));
    let projector_time = wait_drained(&pool, "trace_list_v1", n as i64).await;
    shutdown.cancel();
    projector.await??;

    // Projector again, on the topic with scores, into a fresh database.
    let scored_time = match &scored {
        Some((scored_topic, total)) => {
            let (url2, pool2) = env.fresh_database("tunix_bench_scored").await?;
            let shutdown = CancellationToken::new();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let cfg = tunix_projector::ProjectorConfig {
                kafka: scored_topic.clone(),
                db: DbSettings::for_url(&url2),
                consumer: consumer_settings("bench-projector-scored"),
                ops_addr: listener.local_addr()?,
                run_migrations: false,
                log_format: tunix_pipeline::telemetry::LogFormat::Text,
            };
            let projector = tokio::spawn(tunix_projector::run(cfg, listener, shutdown.clone()));
            let t = wait_drained(&pool2, "trace_list_v1", *total as i64).await;
            shutdown.cancel();
            projector.await??;
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

fn quantiles(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.99), *samples.last().unwrap_or(&f64::NAN))
}

/// Builds the request path for sample `i`.
type PathFn = Box<dyn Fn(usize) -> String>;

/// How the synthetic read data is spread, so each filter has a known selectivity.
pub mod spread {
    /// Distinct `meta.run` values (each run holds 1/RUNS of the traces).
    pub const RUNS: i64 = 1_000;
    /// Distinct tags; each trace has two.
    pub const TAGS: i64 = 20;
    /// A word in every other trace.
    pub const COMMON_WORD: &str = "answer";
    /// A word in one trace of RARE_EVERY.
    pub const RARE_WORD: &str = "zebra";
    /// A CJK pair in every other trace.
    pub const COMMON_CJK: &str = "推理";
    /// A CJK pair in one trace of RARE_EVERY.
    pub const RARE_CJK: &str = "数学";
    /// 1 in this many traces has the rare terms.
    pub const RARE_EVERY: i64 = 10_000;
}

/// Fills `traces`, `trace_list_v1` and `trace_scores_v1` with `rows` synthetic rows spread over
/// 30 days. List rows are written in time order, as the projector writes them (traces arrive
/// roughly in `created_at` order), so the time index and the table agree. Every list row gets the facets and search terms the projector would compute for one
/// real trace, plus: `meta.run` (one of [`spread::RUNS`]), two tags, common and rare words and
/// CJK pairs; 80% of traces have a `correct` score (0 or 1), 50% a `quality` score in [0, 1).
pub(crate) async fn load_read_rows(pool: &PgPool, rows: i64) -> anyhow::Result<()> {
    use spread::*;
    let root = find_root(&std::env::current_dir()?);
    let trace_json = serde_json::to_string(&gen::dataset(&root)[0])?;
    let trace = Trace::parse_json(trace_json.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = tunix_projector::view::Summary::of(&trace);
    let runs: Vec<String> = (0..RUNS)
        .map(|r| tunix_schemas::facets::facets(&format!(r#"{{"run": {r}}}"#))[0].clone())
        .collect();
    let tags: Vec<String> = (0..TAGS)
        .map(|t| tunix_schemas::facets::facets(&format!(r#"{{"tags": ["t{t}"]}}"#))[0].clone())
        .collect();
    let started = Instant::now();
    eprintln!("loading {rows} rows into traces, trace_list_v1 and trace_scores_v1...");
    // No secondary indexes while loading: build them afterwards, as a rebuild does.
    for idx in [
        "trace_list_v1_created_idx",
        "trace_list_v1_version_idx",
        "trace_list_v1_facets_idx",
        "trace_list_v1_search_idx",
        "trace_scores_v1_value_idx",
    ] {
        sqlx::query(&format!("DROP INDEX IF EXISTS {idx}"))
            .execute(pool)
            .await?;
    }
    let chunk = 500_000i64;
    let mut done = 0;
    while done < rows {
        let n = chunk.min(rows - done);
        sqlx::query(
            "INSERT INTO traces (id, created_at, trace_version, payload)
             SELECT gen_random_uuid(), now() - (random() * interval '30 days'), 'v' || (g % 5), $2::json
             FROM generate_series($3 + 1, $3 + $1) AS g",
        )
        .bind(n)
        .bind(&trace_json)
        .bind(done)
        .execute(pool)
        .await?;
        done += n;
        eprintln!(
            "  traces {done}/{rows} ({:.0}s)",
            started.elapsed().as_secs_f64()
        );
    }
    // The list rows: the same ordinal g drives run, tags and terms, so selectivities are exact.
    sqlx::query(&format!(
        "INSERT INTO trace_list_v1 (id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
         SELECT id, created_at, trace_version, $1, $2, $3,
                ARRAY[($4::text[])[g % {RUNS} + 1], ($5::text[])[g % {TAGS} + 1], ($5::text[])[(g / 7) % {TAGS} + 1]],
                $6::tsvector
                  || CASE WHEN g % 2 = 0 THEN '{COMMON_WORD} {COMMON_CJK}'::tsvector ELSE ''::tsvector END
                  || CASE WHEN g % {RARE_EVERY} = 17 THEN '{RARE_WORD} {RARE_CJK}'::tsvector ELSE ''::tsvector END
         FROM (SELECT id, created_at, trace_version, row_number() OVER (ORDER BY created_at) AS g FROM traces) t
         ORDER BY created_at"
    ))
    .bind(base.step_count)
    .bind(&base.prompt_preview)
    .bind(base.payload_bytes)
    .bind(&runs)
    .bind(&tags)
    .bind(&base.search)
    .execute(pool)
    .await?;
    eprintln!("  list rows ({:.0}s)", started.elapsed().as_secs_f64());
    sqlx::query(
        "INSERT INTO trace_scores_v1 (trace_id, name, value, source, recorded_at)
         SELECT id, 'correct', (random() < 0.5)::int, 'bench', created_at FROM trace_list_v1 WHERE random() < 0.8
         UNION ALL
         SELECT id, 'quality', random(), 'bench', created_at FROM trace_list_v1 WHERE random() < 0.5",
    )
    .execute(pool)
    .await?;
    eprintln!("  scores ({:.0}s)", started.elapsed().as_secs_f64());
    for ddl in tunix_projector::view::create_indexes(1) {
        sqlx::query(&ddl).execute(pool).await?;
        eprintln!(
            "  {} ({:.0}s)",
            ddl.split(" ON ").next().unwrap_or(&ddl),
            started.elapsed().as_secs_f64()
        );
    }
    for table in ["traces", "trace_list_v1", "trace_scores_v1"] {
        sqlx::query(&format!("VACUUM ANALYZE {table}"))
            .execute(pool)
            .await?;
    }
    eprintln!("  loaded in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Read latency over a view of `rows` rows (loaded now, or reused from an earlier run).
pub async fn read(
    env: &StackEnv,
    rows: i64,
    samples: usize,
    reuse: Option<&str>,
    keep: bool,
) -> anyhow::Result<()> {
    let (url, pool) = match reuse {
        Some(name) => {
            let url = with_database(&env.database_url, name);
            let pool = bench_pool(&url).await?;
            let have: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_list")
                .fetch_one(&pool)
                .await?;
            anyhow::ensure!(have == rows, "{name} lists {have} rows, not --rows {rows}");
            eprintln!("reusing {name}: {have} rows");
            (url, pool)
        }
        None => {
            let (url, pool) = env.fresh_database("tunix_bench_read").await?;
            load_read_rows(&pool, rows).await?;
            (url, pool)
        }
    };

    // ingest-api in this process, reading from the bench database (the broker is not needed).
    let mut cfg = tunix_ingest_api::IngestConfig::for_tests(&env.brokers, "traces", &url);
    cfg.db.pool_size = 4;
    let state = tunix_ingest_api::AppState::new(cfg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(tunix_ingest_api::run(state, listener, shutdown.clone()));

    let depth = rows / 2;
    let (at, id): (chrono::DateTime<chrono::Utc>, Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM trace_list ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
    )
    .bind(depth - 1)
    .fetch_one(&pool)
    .await?;
    // A deep cursor for a filtered query: the position half-way down the whole view, bound to
    // that query's filters (what a client paging through the filtered results would hold).
    let deep = move |filters: &str| -> String {
        let q =
            tunix_ingest_api::traces::filter::ListQuery::parse(Some(filters)).expect("bench filters parse");
        let cursor = q.cursor_after(&at, &id);
        format!("/api/traces?limit=20&{filters}&cursor={cursor}")
    };
    let cursor = tunix_ingest_api::traces::filter::ListQuery::parse(None)?.cursor_after(&at, &id);
    let mid: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT now() - interval '15 days'")
            .fetch_one(&pool)
            .await?;
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM traces TABLESAMPLE SYSTEM (1) LIMIT $1")
            .bind(samples as i64)
            .fetch_all(&pool)
            .await?;
    let client = reqwest_like::Client::new(&base).await?;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    use spread::*;
    let filters: Vec<(String, String)> = vec![
        (
            format!("meta filter (1 in {RUNS})"),
            "meta.run=417".to_owned(),
        ),
        (format!("tag (2 of {TAGS} per trace)"), "tag=t3".to_owned()),
        (
            "text, common word (1 in 2)".into(),
            format!("q={COMMON_WORD}"),
        ),
        (
            format!("text, rare word (1 in {RARE_EVERY})"),
            format!("q={RARE_WORD}"),
        ),
        (
            "text, common CJK pair (1 in 2)".into(),
            format!("q={}", enc(COMMON_CJK)),
        ),
        (
            format!("text, rare CJK pair (1 in {RARE_EVERY})"),
            format!("q={}", enc(RARE_CJK)),
        ),
        (
            "score equals (correct=1, 2 in 5)".into(),
            "score.correct=1".to_owned(),
        ),
        (
            "score range (quality ≥ 0.95, 1 in 40)".into(),
            "score.quality=gte:0.95".to_owned(),
        ),
        (
            "score missing (no quality, 1 in 2)".into(),
            "score.quality=missing".to_owned(),
        ),
        (
            "meta + text (1 in 1000 and 1 in 2)".into(),
            format!("meta.run=417&q={COMMON_WORD}"),
        ),
    ];
    let mut queries: Vec<(String, PathFn)> = vec![
        (
            "page 1 (limit 20)".into(),
            Box::new(|_| "/api/traces?limit=20".to_owned()),
        ),
        (
            format!("offset page at depth {depth}"),
            Box::new(move |_| format!("/api/traces?limit=20&offset={depth}")),
        ),
        (
            format!("cursor page at depth {depth}"),
            Box::new(move |_| format!("/api/traces?limit=20&cursor={cursor}")),
        ),
        (
            "filtered page (trace_version + created_after)".into(),
            Box::new(move |_| {
                format!(
                    "/api/traces?limit=20&trace_version=v3&created_after={}",
                    mid.format("%Y-%m-%dT%H:%M:%SZ")
                )
            }),
        ),
        (
            "GET /api/traces/{id} (with scores)".into(),
            Box::new(move |i| format!("/api/traces/{}", ids[i % ids.len()])),
        ),
    ];
    for (name, f) in filters {
        let page1 = format!("/api/traces?limit=20&{f}");
        queries.push((format!("{name}: page 1"), Box::new(move |_| page1.clone())));
        let deep_path = deep(&f);
        queries.push((
            format!("{name}: cursor at depth {depth}"),
            Box::new(move |_| deep_path.clone()),
        ));
    }
    println!("view: {rows} rows; {samples} samples per query (30 for the deep offset page), measured over loopback HTTP against ingest-api (server time + ~0.1 ms)\n");
    println!("| query | p50 ms | p99 ms | max ms | non-200 answers |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for (name, path) in queries {
        // Warm-up (fewer for the deep offset page, which can take seconds each).
        let warm = if name.starts_with("offset") { 2 } else { 20 };
        for i in 0..warm {
            client.get(&path(i)).await?;
        }
        // Deep offset pages take long by design (the point of keyset paging): fewer samples.
        let n = if name.starts_with("offset") {
            samples.min(30)
        } else {
            samples
        };
        let mut times = Vec::with_capacity(n);
        // A query over the read API's 5 s limit answers 503: counted, and its time still kept.
        let mut errors: std::collections::BTreeMap<u16, usize> = Default::default();
        for i in 0..n {
            let t = Instant::now();
            let status = client.get(&path(i)).await?;
            if status != 200 {
                *errors.entry(status).or_default() += 1;
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99, max) = quantiles(&mut times);
        let errors = if errors.is_empty() {
            "none".to_owned()
        } else {
            errors
                .iter()
                .map(|(s, n)| format!("{n} × {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("| {name} | {p50:.2} | {p99:.2} | {max:.2} | {errors} |");
    }
    shutdown.cancel();
    let _ = server.await;
    pool.close().await;
    if reuse.is_none() && !keep {
        env.drop_database(&url).await;
    } else {
        eprintln!(
            "kept the database: --reuse-database {}",
            url.rsplit('/').next().unwrap_or(&url)
        );
    }
    Ok(())
}

/// A minimal keep-alive HTTP/1.1 GET client (hyper), so latency is not inflated by a heavy client.
mod reqwest_like {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper::client::conn::http1;
    use hyper_util::rt::TokioIo;

    pub struct Client {
        host: String,
        sender: tokio::sync::Mutex<http1::SendRequest<Empty<Bytes>>>,
    }

    impl Client {
        pub async fn new(base: &str) -> anyhow::Result<Client> {
            let host = base.trim_start_matches("http://").to_owned();
            let stream = tokio::net::TcpStream::connect(&host).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Client {
                host,
                sender: tokio::sync::Mutex::new(sender),
            })
        }

        pub async fn get(&self, path: &str) -> anyhow::Result<u16> {
            let req = http::Request::get(path)
                .header("host", &self.host)
                .body(Empty::new())?;
            let mut sender = self.sender.lock().await;
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await?;
            Ok(status)
        }
    }
}

/// Load at `rate` for `duration`, sampling RSS and CPU of every service of the stack.
pub async fn soak(
    root: &Path,
    addr: &str,
    rate: f64,
    duration: Duration,
    pid_dir: &Path,
) -> anyhow::Result<()> {
    let mut procs: Vec<ProcessSamples> =
        ["ingest-api", "writer", "projector", "broker", "postgres"]
            .iter()
            .filter_map(|name| {
                report::read_pid(&pid_dir.join(format!("{name}.pid"))).map(|pid| match *name {
                    "postgres" => ProcessSamples::tree("postgres (all processes, PSS)", pid),
                    _ => ProcessSamples::new(name, pid),
                })
            })
            .collect();
    anyhow::ensure!(
        !procs.is_empty(),
        "no pids in {}: start the stack with ./infra/up.sh",
        pid_dir.display()
    );
    let stop = CancellationToken::new();
    let spec = LoadSpec {
        addr: addr.to_owned(),
        concurrency: 32,
        stop: Stop::Token(stop.clone()),
        rate: Some(rate),
        batch: 0,
        shape: Shape::Dataset,
        api_key: std::env::var("TUNIX_API_KEY").ok(),
        idempotency_keys: false,
        collect_ids: false,
        seed: 1,
        repo_root: root.to_path_buf(),
        ack_tx: None,
    };
    let started = Instant::now();
    let load = tokio::spawn(load::run(spec));
    let interval = (duration / 20).max(Duration::from_secs(1));
    for p in &mut procs {
        p.sample(started);
    }
    while started.elapsed() < duration {
        tokio::time::sleep(interval.min(duration.saturating_sub(started.elapsed()))).await;
        for p in &mut procs {
            p.sample(started);
        }
        eprintln!(
            "  t={:>4.0}s {}",
            started.elapsed().as_secs_f64(),
            procs
                .iter()
                .map(|p| format!(
                    "{} {:.0} MB",
                    p.name,
                    p.samples.last().map_or(f64::NAN, |s| s.1)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    stop.cancel();
    let r = load.await?;
    println!(
        "soak: {:.0} s at a target of {rate:.0} traces/s: {} accepted ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, errors: {}\n",
        r.elapsed.as_secs_f64(),
        r.accepted,
        r.accepted_per_sec(),
        r.latency_ms(0.5),
        r.latency_ms(0.99),
        r.errors()
    );
    println!("| service | RSS MB at start | RSS MB after 10% | RSS MB at end | max RSS MB | mean CPU % of a core |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for p in &procs {
        let rss: Vec<f64> = p.samples.iter().map(|s| s.1).collect();
        let cpu: Vec<f64> = p
            .samples
            .iter()
            .skip(1)
            .map(|s| s.2)
            .filter(|c| c.is_finite())
            .collect();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            p.name,
            rss.first().copied().unwrap_or(f64::NAN),
            rss.get(rss.len() / 10).copied().unwrap_or(f64::NAN),
            rss.last().copied().unwrap_or(f64::NAN),
            rss.iter().copied().fold(f64::NAN, f64::max),
            cpu.iter().sum::<f64>() / cpu.len().max(1) as f64
        );
    }
    println!("\nRSS samples (MB) every {:.0} s:", interval.as_secs_f64());
    for p in &procs {
        let series: Vec<String> = p.samples.iter().map(|s| format!("{:.0}", s.1)).collect();
        println!("- {}: {}", p.name, series.join(" "));
    }
    Ok(())
}

/// How long sampled traces may take to become visible after the load ends.
const FRESHNESS_GRACE: Duration = Duration::from_secs(30);

/// A load's report and the freshness of every 10th acknowledged trace.
pub struct Freshness {
    /// The load's report.
    pub report: load::LoadReport,
    /// Milliseconds from the acknowledgement to visibility in `traces` (GET by id).
    pub get_ms: Vec<f64>,
    /// ... and in the list view.
    pub list_ms: Vec<f64>,
    /// Sampled traces not visible within [`FRESHNESS_GRACE`] after the load.
    pub unseen: usize,
}

/// Runs `spec` (whose `ack_tx` feeds `rx`), tracking every 10th acknowledgement until it is
/// visible in both read models; returns when the load is over and every sampled trace was seen
/// (so the consumers have caught up), or after [`FRESHNESS_GRACE`].
pub async fn load_with_freshness(
    pool: &PgPool,
    spec: LoadSpec,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Ack>,
) -> anyhow::Result<Freshness> {
    let load = tokio::spawn(load::run(spec));
    // Every 10th acknowledgement is tracked until visible in both tables.
    let mut pending: HashMap<Uuid, (Instant, Option<f64>, Option<f64>)> = HashMap::new();
    let mut get_ms = Vec::new();
    let mut list_ms = Vec::new();
    let mut n = 0u64;
    let mut load_done = false;
    let deadline_after_load = FRESHNESS_GRACE;
    let mut load_finished_at: Option<Instant> = None;
    let mut report = None;
    let mut load = Some(load);
    loop {
        while let Ok(ack) = rx.try_recv() {
            n += 1;
            if n.is_multiple_of(10) {
                pending.insert(ack.id, (ack.at, None, None));
            }
        }
        if !pending.is_empty() {
            let ids: Vec<Uuid> = pending.keys().copied().collect();
            let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM traces WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(pool)
                .await?;
            let listed: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM trace_list WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(pool)
                    .await?;
            let now = Instant::now();
            for id in stored {
                if let Some(e) = pending.get_mut(&id) {
                    e.1.get_or_insert(now.duration_since(e.0).as_secs_f64() * 1000.0);
                }
            }
            for id in listed {
                if let Some(e) = pending.get_mut(&id) {
                    e.2.get_or_insert(now.duration_since(e.0).as_secs_f64() * 1000.0);
                }
            }
            pending.retain(|_, e| match (e.1, e.2) {
                (Some(g), Some(l)) => {
                    get_ms.push(g);
                    list_ms.push(l);
                    false
                }
                _ => true,
            });
        }
        if !load_done && load.as_ref().is_some_and(|l| l.is_finished()) {
            load_done = true;
            load_finished_at = Some(Instant::now());
            report = Some(load.take().expect("load").await?);
        }
        if load_done
            && (pending.is_empty()
                || load_finished_at.is_some_and(|t| t.elapsed() > deadline_after_load))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Freshness {
        report: report.expect("load report"),
        get_ms,
        list_ms,
        unseen: pending.len(),
    })
}

/// Time from the POST's answer to visibility in `traces` (GET by id) and `trace_list` (the list).
/// 64 connections, so the client never limits the rate (a POST waits out the producer's linger).
pub async fn freshness(
    env: &StackEnv,
    root: &Path,
    addr: &str,
    rates: &[f64],
    duration: Duration,
) -> anyhow::Result<()> {
    let pool = DbSettings::for_url(&env.database_url).pool()?;
    println!("| rate traces/s | accepted/s | sampled | GET by id p50 ms | p99 ms | max ms | list p50 ms | p99 ms | max ms |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &rate in rates {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Ack>();
        let spec = LoadSpec {
            addr: addr.to_owned(),
            concurrency: 64,
            stop: Stop::After(duration),
            rate: Some(rate),
            batch: 0,
            shape: Shape::Dataset,
            api_key: std::env::var("TUNIX_API_KEY").ok(),
            idempotency_keys: false,
            collect_ids: false,
            seed: 3,
            repo_root: root.to_path_buf(),
            ack_tx: Some(tx),
        };
        let f = load_with_freshness(&pool, spec, rx).await?;
        let (r, mut get_ms, mut list_ms, pending, deadline_after_load) =
            (f.report, f.get_ms, f.list_ms, f.unseen, FRESHNESS_GRACE);
        let (g50, g99, gmax) = quantiles(&mut get_ms);
        let (l50, l99, lmax) = quantiles(&mut list_ms);
        println!(
            "| {rate:.0} | {:.0} | {} | {g50:.0} | {g99:.0} | {gmax:.0} | {l50:.0} | {l99:.0} | {lmax:.0} |",
            r.accepted_per_sec(),
            get_ms.len()
        );
        if pending > 0 {
            println!(
                "({pending} sampled traces not visible within {deadline_after_load:?} after the load)"
            );
        }
    }
    Ok(())
}

/// Runs `spec` (whose `ack_tx` feeds `rx`) and then waits until its last acknowledged trace is
/// visible in both read models (the consumers have drained what it sent), polling every 100 ms
/// by id; returns the report and 1 if that did not happen within [`FRESHNESS_GRACE`].
async fn load_until_drained(
    pool: &PgPool,
    spec: LoadSpec,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Ack>,
) -> anyhow::Result<(load::LoadReport, usize)> {
    let load = tokio::spawn(load::run(spec));
    let mut last = None;
    while !load.is_finished() {
        while let Ok(ack) = rx.try_recv() {
            last = Some(ack.id);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Ok(ack) = rx.try_recv() {
        last = Some(ack.id);
    }
    let report = load.await?;
    let Some(last) = last else {
        return Ok((report, 0));
    };
    let deadline = Instant::now() + FRESHNESS_GRACE;
    while Instant::now() < deadline {
        let (stored, listed): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM traces WHERE id = $1),
                    EXISTS (SELECT 1 FROM trace_list WHERE id = $1)",
        )
        .bind(last)
        .fetch_one(pool)
        .await?;
        if stored && listed {
            return Ok((report, 0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((report, 1))
}

/// One process of the stack whose CPU the cost suite accounts for.
fn stack_processes(pid_dir: &Path) -> Vec<ProcessSamples> {
    ["ingest-api", "broker", "writer", "projector", "postgres"]
        .iter()
        .filter_map(|name| {
            report::read_pid(&pid_dir.join(format!("{name}.pid"))).map(|pid| match *name {
                "postgres" => ProcessSamples::tree("postgres", pid),
                _ => ProcessSamples::new(name, pid),
            })
        })
        .collect()
}

fn cpu_snapshot(procs: &[ProcessSamples]) -> Vec<Duration> {
    procs
        .iter()
        .map(|p| p.cpu_total().unwrap_or_default())
        .collect()
}

/// Requests the stack's clients sent to the broker, summed over ingest-api, writer and
/// projector (their `*_broker_requests_total` counters).
#[derive(Debug, Clone, Copy, Default)]
struct Requests {
    produce: f64,
    fetch: f64,
    other: f64,
}

impl Requests {
    fn minus(self, before: Requests) -> Requests {
        Requests {
            produce: self.produce - before.produce,
            fetch: self.fetch - before.fetch,
            other: self.other - before.other,
        }
    }
}

/// GETs `http://{addr}/metrics` (HTTP/1.0, so the answer ends with the connection).
async fn metrics_text(addr: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

/// Sums every `*_broker_requests_total{request=...}` series the services export.
async fn broker_requests(addrs: &[&str]) -> anyhow::Result<Requests> {
    let mut r = Requests::default();
    for addr in addrs {
        let text = metrics_text(addr).await?;
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if !series.contains("_broker_requests_total{") {
                continue;
            }
            let v: f64 = value.parse().unwrap_or(0.0);
            if series.contains("request=\"produce\"") {
                r.produce += v;
            } else if series.contains("request=\"fetch\"") {
                r.fetch += v;
            } else {
                r.other += v;
            }
        }
    }
    Ok(r)
}

/// librdkafka reports its counters every 2 s: a snapshot waits this long to include the end of
/// a run (the same lag applies to the snapshot before it).
const STATS_LAG: Duration = Duration::from_millis(2500);

/// What one fixed-rate run cost.
struct CostRun {
    label: String,
    accepted: u64,
    rate: f64,
    /// CPU per process over the run and the drain after it.
    cpu: Vec<Duration>,
    /// Requests to the broker over the run and the drain after it.
    requests: Requests,
    get_p99: f64,
    list_p99: f64,
    unseen: usize,
}

/// Where the `cost` suite finds the stack's processes and their metrics.
pub struct StackProcesses<'a> {
    /// ingest-api's address.
    pub addr: &'a str,
    /// Where up.sh keeps the pids.
    pub pid_dir: &'a Path,
    /// The writer's and the projector's ops addresses.
    pub ops_addrs: &'a [String],
}

/// CPU milliseconds per 1,000 traces of each process of the stack at a fixed rate (single POSTs
/// and batches of 100), the idle stack's CPU after them, and the highest single-POST rate as a fraction of a
/// raw producer's in the same run. CPU comes from `/proc` (Postgres: the postmaster and every
/// backend) and covers the load and the consumers' drain after it; freshness is measured in a
/// separate 15 s run at the same rate, whose polling would otherwise count as Postgres's work.
pub async fn cost(
    env: &StackEnv,
    root: &Path,
    stack: StackProcesses<'_>,
    rate: f64,
    duration: Duration,
    idle: Duration,
) -> anyhow::Result<()> {
    let StackProcesses {
        addr,
        pid_dir,
        ops_addrs,
    } = stack;
    let procs = stack_processes(pid_dir);
    let metric_addrs: Vec<&str> = std::iter::once(addr)
        .chain(ops_addrs.iter().map(String::as_str))
        .collect();
    anyhow::ensure!(
        procs.len() == 5,
        "need the pids of ingest-api, broker, writer, projector and postgres in {}: start the stack with ./infra/up.sh",
        pid_dir.display()
    );
    let pool = DbSettings::for_url(&env.database_url).pool()?;

    let memory = |procs: &[ProcessSamples]| -> Vec<f64> {
        procs
            .iter()
            .map(|p| p.memory_mib().unwrap_or(f64::NAN))
            .collect()
    };

    let mut runs = Vec::new();
    for (label, batch, concurrency) in [
        ("single POSTs", 0usize, 64usize),
        ("batches of 100", 100, 4),
    ] {
        eprintln!(
            "{label} at {rate:.0} traces/s for {} s...",
            duration.as_secs()
        );
        // A paced load of `seconds` whose acknowledgements go to the returned receiver.
        let paced = |seconds: Duration, seed: u64| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Ack>();
            let spec = LoadSpec {
                addr: addr.to_owned(),
                concurrency,
                stop: Stop::After(seconds),
                rate: Some(rate),
                batch,
                shape: Shape::Dataset,
                api_key: std::env::var("TUNIX_API_KEY").ok(),
                idempotency_keys: false,
                collect_ids: false,
                seed,
                repo_root: root.to_path_buf(),
                ack_tx: Some(tx),
            };
            (spec, rx)
        };
        let (spec, rx) = paced(duration, 7 + batch as u64);
        let before = cpu_snapshot(&procs);
        let requests_before = broker_requests(&metric_addrs).await?;
        let (report, unseen) = load_until_drained(&pool, spec, rx).await?;
        let cpu = cpu_snapshot(&procs)
            .iter()
            .zip(&before)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        tokio::time::sleep(STATS_LAG).await;
        let requests = broker_requests(&metric_addrs).await?.minus(requests_before);
        // Freshness in a shorter run of its own: its polling would add to Postgres's CPU.
        let (spec, rx) = paced(duration.min(Duration::from_secs(15)), 17 + batch as u64);
        let mut f = load_with_freshness(&pool, spec, rx).await?;
        let (_, get_p99, _) = quantiles(&mut f.get_ms);
        let (_, list_p99, _) = quantiles(&mut f.list_ms);
        runs.push(CostRun {
            label: label.to_owned(),
            accepted: report.accepted,
            rate: report.accepted_per_sec(),
            cpu,
            requests,
            get_p99,
            list_p99,
            unseen: unseen + f.unseen,
        });
    }

    // The idle stack is measured after the fixed-rate runs, in its steady state: right after
    // start-up a JVM broker is still compiling its hot paths.
    eprintln!("idle stack, {} s...", idle.as_secs());
    let before = cpu_snapshot(&procs);
    let requests_before = broker_requests(&metric_addrs).await?;
    tokio::time::sleep(idle).await;
    let idle_requests = broker_requests(&metric_addrs).await?.minus(requests_before);
    let idle_cpu: Vec<f64> = cpu_snapshot(&procs)
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b).as_secs_f64() / idle.as_secs_f64() * 100.0)
        .collect();
    let idle_memory = memory(&procs);

    eprintln!(
        "highest single-POST rate (c=128, {} s)...",
        duration.as_secs().min(20)
    );
    let ingest_before = procs[0].cpu_total().unwrap_or_default();
    let max = load::run(LoadSpec {
        addr: addr.to_owned(),
        concurrency: 128,
        stop: Stop::After(duration.min(Duration::from_secs(20))),
        rate: None,
        batch: 0,
        shape: Shape::Dataset,
        api_key: std::env::var("TUNIX_API_KEY").ok(),
        idempotency_keys: false,
        collect_ids: false,
        seed: 11,
        repo_root: root.to_path_buf(),
        ack_tx: None,
    })
    .await;
    let ingest_at_max = procs[0]
        .cpu_total()
        .unwrap_or_default()
        .saturating_sub(ingest_before);
    eprintln!("raw producer, same broker...");
    let raw = produce_raw(env, 200_000).await?;

    let end_memory = memory(&procs);
    let ours = |cpu: &[Duration]| -> Duration { cpu[0] + cpu[2] + cpu[3] };
    // One cell per run.
    let cells = |cell: &dyn Fn(&CostRun) -> String| -> String {
        runs.iter().map(cell).collect::<Vec<_>>().join(" | ")
    };
    println!(
        "| process | {} | idle, % of a core |",
        cells(&|r| format!("{}: CPU ms per 1,000 traces", r.label))
    );
    println!("| --- |{} ---: |", " ---: |".repeat(runs.len()));
    let per_1000 = |d: Duration, n: u64| d.as_secs_f64() * 1000.0 / n.max(1) as f64 * 1000.0;
    for (i, p) in procs.iter().enumerate() {
        println!(
            "| {} | {} | {:.1} |",
            p.name,
            cells(&|r| format!("{:.0}", per_1000(r.cpu[i], r.accepted))),
            idle_cpu[i]
        );
    }
    println!(
        "| ours (ingest-api + writer + projector) | {} | {:.1} |",
        cells(&|r| format!("{:.0}", per_1000(ours(&r.cpu), r.accepted))),
        idle_cpu[0] + idle_cpu[2] + idle_cpu[3]
    );
    println!(
        "| **total** | {} | {:.1} |",
        cells(&|r| format!(
            "**{:.0}**",
            per_1000(r.cpu.iter().sum::<Duration>(), r.accepted)
        )),
        idle_cpu.iter().sum::<f64>()
    );
    let per_1000_requests = |n: f64, traces: u64| n * 1000.0 / traces.max(1) as f64;
    for kind in ["produce", "fetch", "produce + fetch"] {
        let count = |r: &Requests| match kind {
            "produce" => r.produce,
            "fetch" => r.fetch,
            _ => r.produce + r.fetch,
        };
        println!(
            "| broker requests per 1,000 traces: {kind} | {} | {:.1}/s |",
            cells(&|r| format!("{:.0}", per_1000_requests(count(&r.requests), r.accepted))),
            count(&idle_requests) / idle.as_secs_f64()
        );
    }
    println!();
    println!("| process | RSS MiB, idle after the fixed-rate runs | RSS MiB, at the end |");
    println!("| --- | ---: | ---: |");
    for (i, p) in procs.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} |",
            p.name, idle_memory[i], end_memory[i]
        );
    }
    println!("(Postgres: the summed PSS of the postmaster and its backends.)");
    println!();
    for r in &runs {
        println!(
            "{}: {} accepted at {:.0}/s (target {rate:.0}); freshness p99 {:.0} ms (GET by id), {:.0} ms (list){}",
            r.label,
            r.accepted,
            r.rate,
            r.get_p99,
            r.list_p99,
            if r.unseen > 0 {
                format!("; {} sampled traces not visible in time", r.unseen)
            } else {
                String::new()
            }
        );
    }
    println!(
        "highest single-POST rate with the consumers running: {:.0}/s (p99 {:.1} ms, errors: {}) = {:.0}% of the raw producer's {raw:.0}/s",
        max.accepted_per_sec(),
        max.latency_ms(0.99),
        max.errors(),
        max.accepted_per_sec() / raw * 100.0
    );
    println!(
        "ingest-api CPU per single POST at that rate: {:.0} µs",
        ingest_at_max.as_secs_f64() * 1e6 / max.accepted.max(1) as f64
    );
    // One line for scripts comparing runs (bench/cost-compare.sh).
    let json = serde_json::json!({
        "processes": procs.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "idle_cpu_percent": idle_cpu,
        "idle_memory_mib": idle_memory,
        "end_memory_mib": end_memory,
        "idle_requests_per_sec": {
            "produce": idle_requests.produce / idle.as_secs_f64(),
            "fetch": idle_requests.fetch / idle.as_secs_f64(),
        },
        "runs": runs.iter().map(|r| serde_json::json!({
            "label": r.label,
            "accepted": r.accepted,
            "rate": r.rate,
            "cpu_ms_per_1000": r.cpu.iter().map(|d| per_1000(*d, r.accepted)).collect::<Vec<_>>(),
            "produce_per_1000": per_1000_requests(r.requests.produce, r.accepted),
            "fetch_per_1000": per_1000_requests(r.requests.fetch, r.accepted),
            "get_p99_ms": r.get_p99,
            "list_p99_ms": r.list_p99,
            "unseen": r.unseen,
        })).collect::<Vec<_>>(),
        "max_rate": max.accepted_per_sec(),
        "max_errors": max.errors(),
        "raw_rate": raw,
        "ingest_us_per_post_at_max": ingest_at_max.as_secs_f64() * 1e6 / max.accepted.max(1) as f64,
    });
    println!("COST {json}");
    Ok(())
}
