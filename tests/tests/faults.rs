//! Fault scenarios under load. Each ends with the reconciliation of the three sets:
//! acknowledged ⊆ stored, stored has no duplicates, list view = stored.
//!
//! Load rate and duration are moderate so the suite fits CI on two cores; `FAULT_LOAD_SECONDS`
//! and `FAULT_LOAD_RATE` make a longer, harder run (see docs/RELIABILITY.md).

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tunix_bench::load::{self, LoadReport, Stop};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{consume_all, eventually};
use uuid::Uuid;

const RECONCILE: Duration = Duration::from_secs(180);

fn load_seconds() -> u64 {
    std::env::var("FAULT_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

fn load_rate() -> f64 {
    std::env::var("FAULT_LOAD_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300.0)
}

/// Starts load in the background; returns the stop token and the task.
fn start_load(stack: &Stack) -> (CancellationToken, tokio::task::JoinHandle<LoadReport>) {
    let stop = CancellationToken::new();
    // About 100 traces/s per connection keeps latency low enough to hold the target rate.
    let connections = ((load_rate() / 100.0).ceil() as usize).clamp(4, 64);
    let mut spec = stack.load(connections, Stop::Token(stop.clone()));
    spec.rate = Some(load_rate());
    (stop, tokio::spawn(load::run(spec)))
}

fn acked(report: &LoadReport) -> Vec<Uuid> {
    report.acked.iter().map(|a| a.id).collect()
}

fn summary(name: &str, report: &LoadReport) {
    eprintln!(
        "{name}: {} requests, {} acknowledged ({:.0}/s), errors: {}",
        report.requests,
        report.accepted,
        report.accepted_per_sec(),
        report.errors()
    );
}

async fn random_pause(max_ms: u64) {
    let ms = rand::rng().random_range(200..max_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Kills `which` three times at random moments during load, restarting it each time.
async fn kill_three_times(which: &str) {
    let mut stack = Stack::start(StackOptions::default()).await;
    let (stop, load) = start_load(&stack);
    let window = load_seconds() * 1000 / 4;
    for round in 0..3 {
        random_pause(window).await;
        let service = match which {
            "writer" => &mut stack.writer,
            "projector" => &mut stack.projector,
            _ => unreachable!(),
        };
        service.kill();
        eprintln!("round {round}: SIGKILL {which}");
        random_pause(800).await;
        service.restart();
    }
    random_pause(window).await;
    stop.cancel();
    let report = load.await.unwrap();
    summary(which, &report);
    assert_eq!(report.errors(), "none", "the API was not affected");
    let r = stack.reconcile(&acked(&report), RECONCILE).await;
    assert!(r.acknowledged > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_sigkill_three_times_under_load() {
    kill_three_times("writer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn projector_sigkill_three_times_under_load() {
    kill_three_times("projector").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_api_sigkill_under_load_keeps_every_acknowledged_trace() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let (stop, load) = start_load(&stack);
    random_pause(load_seconds() * 1000 / 3).await;
    stack.api.kill();
    eprintln!("SIGKILL ingest-api");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.api.restart();
    stack.wait_ready(&stack.api_addr.clone()).await;
    random_pause(load_seconds() * 1000 / 3).await;
    stop.cancel();
    let report = load.await.unwrap();
    summary("ingest-api", &report);
    assert!(report.connection_errors > 0, "clients noticed the outage");
    stack.reconcile(&acked(&report), RECONCILE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_under_load_answers_503_then_recovers() {
    let mut stack = Stack::start(StackOptions {
        private_broker: true,
        ..StackOptions::default()
    })
    .await;
    let (stop, load) = start_load(&stack);
    random_pause(load_seconds() * 1000 / 3).await;
    stack.broker.as_mut().unwrap().stop();
    eprintln!("broker stopped");
    let resp = eventually(
        Duration::from_secs(30),
        "a 503 while the broker is down",
        || async {
            let resp = stack
                .http
                .post(stack.url("/api/traces"))
                .json(&tunix_testkit::dataset()[0])
                .send()
                .await
                .ok()?;
            (resp.status() == 503).then_some(resp)
        },
    )
    .await;
    assert!(
        resp.headers().get("retry-after").is_some(),
        "503 carries Retry-After"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.broker.as_mut().unwrap().start_again();
    eprintln!("broker restarted");
    // Load goes on until the API accepts again, then a little longer.
    eventually(
        Duration::from_secs(90),
        "the API accepting again",
        || async { (stack.post(&tunix_testkit::dataset()[1]).await.0 == 202).then_some(()) },
    )
    .await;
    random_pause(3000).await;
    stop.cancel();
    let report = load.await.unwrap();
    summary("broker restart", &report);
    assert!(
        report.by_status.get(&503).copied().unwrap_or(0) > 0,
        "load saw 503s during the outage"
    );
    stack.reconcile(&acked(&report), RECONCILE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_under_load_pauses_consumers_then_catches_up() {
    let stack = Stack::start(StackOptions {
        private_postgres: true,
        ..StackOptions::default()
    })
    .await;
    let (stop, load) = start_load(&stack);
    random_pause(load_seconds() * 1000 / 3).await;
    let pg = stack.postgres.as_ref().unwrap();
    pg.stop();
    eprintln!("postgres stopped");
    let ready = format!("http://{}/readyz", stack.writer_ops);
    eventually(
        Duration::from_secs(30),
        "writer not ready while Postgres is down",
        || async { (stack.http.get(&ready).send().await.ok()?.status() == 503).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again();
    eprintln!("postgres restarted");
    random_pause(load_seconds() * 1000 / 3).await;
    stop.cancel();
    let report = load.await.unwrap();
    summary("postgres restart", &report);
    assert_eq!(report.errors(), "none", "ingestion never needed Postgres");
    let r = stack.reconcile(&acked(&report), RECONCILE).await;
    assert!(r.acknowledged > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_record_in_the_topic_lands_in_the_dlq_and_everything_else_arrives() {
    let stack = Stack::start(StackOptions::default()).await;
    let (stop, load) = start_load(&stack);
    random_pause(load_seconds() * 1000 / 2).await;
    let poison = b"\xC3\x01not-really-avro".to_vec();
    for partition in 0..stack.topic.settings.partitions {
        tunix_testkit::produce_raw(&stack.topic, partition, "poison", &poison).await;
    }
    random_pause(load_seconds() * 1000 / 2).await;
    stop.cancel();
    let report = load.await.unwrap();
    summary("poison", &report);
    stack.reconcile(&acked(&report), RECONCILE).await;
    // Writer and projector each dead-letter every poison record once.
    let dead = consume_all(
        &stack.topic.settings.brokers,
        &stack.topic.settings.dlq_topic,
        2 * stack.topic.settings.partitions as usize,
        Duration::from_secs(30),
    );
    assert_eq!(dead.len(), 2 * stack.topic.settings.partitions as usize);
    for m in &dead {
        assert_eq!(rdkafka::message::Message::payload(m), Some(&poison[..]));
    }
}
