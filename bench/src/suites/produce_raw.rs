//! `tunix-bench produce-raw`: the rate of a bare idempotent `acks=all` producer to the stack's
//! broker, the ceiling for ingest (`ingest --compare-raw` and `cost` measure it too). The events
//! are framed and partitioned as ingest-api does.
//!
//! Run: `target/release/tunix-bench produce-raw --events 200000`

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tunix_schemas::{Trace, TraceEvent};

use super::{find_root, producer, submitted, StackEnv};
use crate::gen;

/// The raw rate of an idempotent `acks=all` producer to the stack's broker.
pub async fn produce_raw(env: &StackEnv, n: usize) -> anyhow::Result<f64> {
    let topic = env.fresh_topic("bench_raw").await?;
    let root = std::env::current_dir()?;
    let (events, _) = events(&find_root(&root), n, 0);
    let rate = produce(&producer(&env.brokers)?, &topic.topic, events).await;
    env.delete_topic(&topic).await;
    rate
}

/// Produces encoded events as fast as the broker takes them; returns events/s.
pub(super) async fn produce(
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

/// Dataset traces, with every `long_every`-th a generated 8 KB one. Returns the events and the
/// total JSON payload bytes.
pub(super) fn events(root: &Path, n: usize, long_every: usize) -> (Vec<TraceEvent>, usize) {
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
