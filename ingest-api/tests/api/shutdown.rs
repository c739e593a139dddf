//! Graceful shutdown: in-flight requests are answered and their events are on the topic.

use std::time::Duration;

use serde_json::Value;
use tunix_schemas::TraceEvent;
use tunix_testkit::{eventually, TestDb, TestTopic};

use crate::helpers::*;

/// A request whose body is half sent: the sender of the rest, and the request's answer.
type HalfSent = (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
);

/// SIGTERM while requests are in flight: each of them still gets its answer, every 2xx is on the
/// topic, and new connections are refused afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests() {
    let topic = TestTopic::new(3).await;
    let db = TestDb::new().await;
    let port = tunix_testkit::free_port();
    let mut service = tunix_testkit::Service::start(
        "ingest-api",
        env!("CARGO_BIN_EXE_tunix-ingest-api").into(),
        vec![
            ("API_ADDR".into(), format!("127.0.0.1:{port}")),
            ("KAFKA_BROKERS".into(), topic.settings.brokers.clone()),
            ("KAFKA_TOPIC".into(), topic.name().into()),
            ("DATABASE_URL".into(), db.url.clone()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(30), "ingest-api ready", || async {
        (client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .ok()?
            .status()
            == 200)
            .then_some(())
    })
    .await;

    let body = serde_json::to_vec(&example()).unwrap();
    let half_sent =
        twenty_requests_are_in_flight_with_half_their_bodies(&client, &base, &body).await;
    let pid = service.pid().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    // Draining: new connections are refused while the 20 are still being served.
    eventually(
        Duration::from_secs(30),
        "new connections refused",
        || async {
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let ids = the_rest_of_each_body_still_gets_a_202(half_sent, &body).await;
    let status = service
        .terminate(Duration::from_secs(30))
        .expect("exits after draining");
    assert!(status.success(), "clean exit: {}", service.log_tail(20));
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer accepting"
    );
    every_acknowledged_trace_is_on_the_topic(&topic, &ids);
}

/// 20 requests whose bodies are half sent (SIGTERM will arrive now), each inside the server: its
/// handler waits for the rest of the body.
async fn twenty_requests_are_in_flight_with_half_their_bodies(
    client: &reqwest::Client,
    base: &str,
    body: &[u8],
) -> Vec<HalfSent> {
    let mut half_sent = Vec::new();
    for _ in 0..20 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        tx.send(Ok(body[..body.len() / 2].to_vec())).await.unwrap();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let req = client
            .post(format!("{base}/api/traces"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send();
        half_sent.push((tx, tokio::spawn(req)));
    }
    // Every request is inside the server (its handler waits for the rest of the body).
    eventually(Duration::from_secs(30), "20 requests in flight", || async {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let n: f64 = text
            .lines()
            .find(|l| l.starts_with("tunix_ingest_in_flight_requests "))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()?;
        // The scrape itself is a request in flight too.
        (n >= 21.0).then_some(())
    })
    .await;
    half_sent
}

/// The rest of each body, sent while the server drains: every request gets its 202. Returns the
/// acknowledged ids.
async fn the_rest_of_each_body_still_gets_a_202(
    half_sent: Vec<HalfSent>,
    body: &[u8],
) -> Vec<String> {
    let (senders, inflight): (Vec<_>, Vec<_>) = half_sent.into_iter().unzip();
    for tx in senders {
        tx.send(Ok(body[body.len() / 2..].to_vec())).await.unwrap();
    }
    let mut ids = Vec::new();
    for req in inflight {
        let resp = req
            .await
            .unwrap()
            .expect("in-flight requests get an answer");
        assert_eq!(resp.status(), 202);
        ids.push(
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

fn every_acknowledged_trace_is_on_the_topic(topic: &TestTopic, ids: &[String]) {
    let on_topic: Vec<String> = tunix_testkit::consume_all(
        &topic.settings.brokers,
        topic.name(),
        ids.len(),
        Duration::from_secs(20),
    )
    .iter()
    .map(|m| {
        TraceEvent::decode(rdkafka::message::Message::payload(m).unwrap())
            .unwrap()
            .id()
            .to_string()
    })
    .collect();
    for id in ids {
        assert!(on_topic.contains(id), "acknowledged {id} is on the topic");
    }
}
