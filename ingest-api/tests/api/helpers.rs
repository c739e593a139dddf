use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::Message;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tunix_ingest_api::{AppState, IngestConfig};
use tunix_schemas::TraceEvent;
use tunix_testkit::{consume_all, TestDb, TestTopic};

/// ingest-api running in the test process on an ephemeral port.
pub struct TestApi {
    pub base: String,
    pub shutdown: CancellationToken,
    pub join: JoinHandle<anyhow::Result<()>>,
    pub topic: TestTopic,
    /// The read endpoints' database, alive as long as the API.
    pub _db: TestDb,
    pub client: reqwest::Client,
}

impl TestApi {
    pub async fn start() -> TestApi {
        TestApi::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut IngestConfig)) -> TestApi {
        let topic = TestTopic::new(3).await;
        let db = TestDb::new().await;
        TestApi::start_on(topic, db, tweak).await
    }

    pub async fn start_on(
        topic: TestTopic,
        db: TestDb,
        tweak: impl FnOnce(&mut IngestConfig),
    ) -> TestApi {
        let mut cfg = IngestConfig::for_tests(&topic.settings.brokers, topic.name(), &db.url);
        cfg.linger_ms = 1;
        tweak(&mut cfg);
        let state: Arc<AppState> = AppState::new(cfg).expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let join = tokio::spawn(tunix_ingest_api::run(state, listener, shutdown.clone()));
        TestApi {
            base,
            shutdown,
            join,
            topic,
            _db: db,
            client: reqwest::Client::new(),
        }
    }

    /// Cancels and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.join)
            .await
            .expect("stops in time")
            .expect("task")
            .expect("clean exit");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self.client.get(self.url("/metrics")).send().await;
        resp.expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A JSON client of this API: calls answered as `(status, JSON body)`.
    pub fn calls(&self) -> tunix_testkit::Api {
        tunix_testkit::Api::new(self.client.clone(), &self.base)
    }

    /// A GET's status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.calls().get(path).await
    }

    /// A JSON POST's status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.calls().post(path, body).await
    }

    /// The status of a GET.
    pub async fn status(&self, path: &str) -> u16 {
        let resp = self.client.get(self.url(path)).send().await;
        resp.expect("request").status().as_u16()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.expect("request")
    }

    /// Every event on the topic, decoded, waiting for at least `min`. Checks each record's key
    /// and partition: the event's own key, in its trace's partition.
    pub fn events(&self, min: usize) -> Vec<TraceEvent> {
        self.records(min).into_iter().map(|(_, e)| e).collect()
    }

    /// Like [`TestApi::events`], with each record's partition. A tombstone (null value) comes as
    /// the event it stands for (`tunix_schemas::interpret_tombstone`).
    pub fn records(&self, min: usize) -> Vec<(i32, TraceEvent)> {
        consume_all(
            &self.topic.settings.brokers,
            self.topic.name(),
            min,
            Duration::from_secs(20),
        )
        .iter()
        .map(|m| {
            let event = match m.payload() {
                Some(value) => TraceEvent::decode(value).expect("decodes"),
                None => match tunix_schemas::interpret_tombstone(m.key(), chrono::Utc::now()) {
                    tunix_schemas::TombstoneMeaning::Event(e) => e,
                    other => panic!("a tombstone of an unknown key: {other:?}"),
                },
            };
            assert_eq!(m.key(), Some(event.key().as_bytes()), "the event's key");
            assert_eq!(
                m.partition(),
                event.partition(self.topic.settings.partitions),
                "the event's partition"
            );
            (m.partition(), event)
        })
        .collect()
    }
}

/// The status and JSON body of `resp` (`Value::Null` when it is not JSON).
pub async fn json(resp: reqwest::Response) -> (u16, Value) {
    tunix_testkit::status_and_json(resp).await
}

/// The seed's example trace (`testdata/example-27x19.json`).
pub fn example() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(tunix_testkit::repo_root().join("testdata/example-27x19.json"))
            .unwrap(),
    )
    .unwrap()
}
