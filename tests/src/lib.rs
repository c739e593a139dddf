//! # tunix-e2e
//!
//! Owns the cross-service tests. [`Stack`] starts the **real** stack as separate OS processes
//! (ingest-api, writer and projector binaries; Postgres and the broker either the suite's shared
//! servers or private ones that a test may stop), each on free ports with its own database and
//! topic. Tests drive it with the bench load generator, kill or restart any process, and finish
//! with [`Stack::reconcile`]: acknowledged ⊆ stored, stored has no duplicates, view = stored.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tunix_testkit::{
    binary, eventually, free_port, Api, Broker, PgCluster, Service, TestDb, TestTopic,
};
use uuid::Uuid;

/// How to build a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Run Postgres privately (so the test may stop it).
    pub private_postgres: bool,
    /// Run a private one-node Kafka (so the test may stop, kill and restart it).
    pub private_broker: bool,
    /// Use these brokers (e.g. a [`tunix_testkit::KafkaCluster`] the test runs) instead of the
    /// suite's broker.
    pub brokers: Option<String>,
    /// Replicas of the topics (`KAFKA_REPLICATION_FACTOR`).
    pub replication: i32,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Extra environment for ingest-api.
    pub api_env: Vec<(String, String)>,
    /// Extra environment for all three services.
    pub service_env: Vec<(String, String)>,
    /// Create the topic with `cleanup.policy=compact` (and tell the services so).
    pub compacted: bool,
    /// Extra topic-level configs for the topics (`KAFKA_TOPIC_CONFIGS`), e.g. a short
    /// `segment.ms` so that Kafka's log cleaner compacts within a test.
    pub topic_configs: Vec<(String, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            private_postgres: false,
            private_broker: false,
            brokers: None,
            replication: 1,
            partitions: 4,
            api_env: Vec::new(),
            service_env: Vec::new(),
            compacted: false,
            topic_configs: Vec::new(),
        }
    }
}

/// The running stack.
pub struct Stack {
    /// ingest-api.
    pub api: Service,
    /// The writer.
    pub writer: Service,
    /// The projector.
    pub projector: Service,
    /// `host:port` of ingest-api.
    pub api_addr: String,
    /// `host:port` of the writer's ops endpoints.
    pub writer_ops: String,
    /// `host:port` of the projector's ops endpoints.
    pub projector_ops: String,
    /// The topic.
    pub topic: TestTopic,
    /// The database (on the shared server or on [`Stack::postgres`]).
    pub db: TestDb,
    /// The private Postgres, when asked for.
    pub postgres: Option<PgCluster>,
    /// The private broker, when asked for.
    pub broker: Option<Broker>,
    /// An HTTP client.
    pub http: reqwest::Client,
}

/// One environment variable for a service: `(name, value)`.
pub fn kv(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

impl Stack {
    /// Starts everything and waits until the three services are ready.
    pub async fn start(options: StackOptions) -> Stack {
        let postgres = options.private_postgres.then(PgCluster::start);
        let broker = options.private_broker.then(Broker::start);
        let db = match &postgres {
            Some(pg) => TestDb::on(&pg.admin_url()).await,
            None => TestDb::new().await,
        };
        let brokers = match (&broker, &options.brokers) {
            (Some(b), _) => b.brokers(),
            (None, Some(given)) => given.clone(),
            (None, None) => tunix_testkit::kafka_brokers(),
        };
        let topic = TestTopic::create(&brokers, options.partitions, |s| {
            // The test's own clients log in as the services do (KAFKA_SECURITY_PROTOCOL, ...).
            let mut env = tunix_pipeline::config::Env::from_map(options.service_env.clone());
            s.security = tunix_pipeline::kafka_security::KafkaSecurity::from_env(&mut env);
            s.replication = options.replication;
            if options.compacted {
                s.cleanup_policy = "compact".to_owned();
            }
            s.topic_configs = options.topic_configs.clone();
        })
        .await;
        let mut common = vec![
            kv("KAFKA_BROKERS", brokers.clone()),
            kv("KAFKA_TOPIC", topic.name()),
            kv("DATABASE_URL", db.url.clone()),
            kv("DB_POOL_TIMEOUT", "2"),
            kv("KAFKA_REPLICATION_FACTOR", options.replication.to_string()),
        ];
        if options.compacted {
            common.push(kv("KAFKA_TOPIC_CLEANUP_POLICY", "compact"));
        }
        if !options.topic_configs.is_empty() {
            let configs: Vec<String> = options
                .topic_configs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            common.push(kv("KAFKA_TOPIC_CONFIGS", configs.join(",")));
        }
        common.extend(options.service_env.clone());
        let api_addr = format!("127.0.0.1:{}", free_port());
        let writer_ops = format!("127.0.0.1:{}", free_port());
        let projector_ops = format!("127.0.0.1:{}", free_port());
        let mut api_env = common.clone();
        api_env.extend([
            kv("API_ADDR", api_addr.clone()),
            kv("PRODUCE_TIMEOUT_MS", "3000"),
        ]);
        api_env.extend(options.api_env.clone());
        let mut writer_env = common.clone();
        writer_env.extend([
            kv("WRITER_OPS_ADDR", writer_ops.clone()),
            kv("WRITER_INSTANCE_ID", "writer-0"),
            kv("WRITER_BATCH_MAX_WAIT_MS", "20"),
        ]);
        let mut projector_env = common;
        projector_env.extend([
            kv("PROJECTOR_OPS_ADDR", projector_ops.clone()),
            kv("PROJECTOR_INSTANCE_ID", "projector-0"),
            kv("PROJECTOR_BATCH_MAX_WAIT_MS", "20"),
        ]);
        let stack = Stack {
            writer: Service::start("writer", binary("tunix-writer"), writer_env),
            projector: Service::start("projector", binary("tunix-projector"), projector_env),
            api: Service::start("ingest-api", binary("tunix-ingest-api"), api_env),
            api_addr,
            writer_ops,
            projector_ops,
            topic,
            db,
            postgres,
            broker,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        for addr in [&stack.api_addr, &stack.writer_ops, &stack.projector_ops] {
            stack.wait_ready(addr).await;
        }
        stack
    }

    /// Waits until `http://addr/readyz` answers 200.
    pub async fn wait_ready(&self, addr: &str) {
        let url = format!("http://{addr}/readyz");
        eventually(Duration::from_secs(60), &format!("{url} ready"), || async {
            (self.http.get(&url).send().await.ok()?.status() == 200).then_some(())
        })
        .await;
    }

    /// Runs `tunix-projector rebuild` against this stack's topic, into the database at
    /// `database_url` (this stack's, or an empty one to replay into); panics with its stderr on
    /// failure, else returns it (the progress output).
    pub async fn rebuild_into(&self, database_url: &str) -> String {
        let out = tokio::process::Command::new(binary("tunix-projector"))
            .arg("rebuild")
            .env("KAFKA_BROKERS", &self.topic.settings.brokers)
            .env("KAFKA_TOPIC", self.topic.name())
            .env(
                "KAFKA_TOPIC_CLEANUP_POLICY",
                &self.topic.settings.cleanup_policy,
            )
            .env("DATABASE_URL", database_url)
            .output()
            .await
            .expect("run tunix-projector rebuild");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "rebuild failed: {stderr}");
        stderr
    }

    /// `http://<api>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api_addr)
    }

    /// A JSON client of this stack's ingest-api, without an API key ([`Api::with_key`] adds one).
    pub fn client(&self) -> Api {
        Api::new(self.http.clone(), format!("http://{}", self.api_addr))
    }

    /// Posts one trace; returns the status and the JSON body.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        self.client().post("/api/traces", body).await
    }

    /// GET returning status and JSON.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.client().get(path).await
    }

    /// The Prometheus text a service exposes at `http://{addr}/metrics` (`None` while it does
    /// not answer).
    pub async fn scrape(&self, addr: &str) -> Option<String> {
        let resp = self.http.get(format!("http://{addr}/metrics")).send().await;
        resp.ok()?.text().await.ok()
    }

    /// Ids in the writer's table.
    pub async fn stored(&self) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT id FROM traces")
            .fetch_all(&self.db.pool)
            .await
            .expect("read traces")
    }

    /// Ids in the list view.
    pub async fn listed(&self) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT id FROM trace_list")
            .fetch_all(&self.db.pool)
            .await
            .expect("read trace_list")
    }

    /// Waits until both read models hold exactly `n` traces: the list view (projector) and the
    /// `traces` table behind `GET /api/traces/{id}` (writer). They consume independently, so
    /// waiting for one alone races the other.
    pub async fn wait_converged(&self, n: usize, timeout: Duration) {
        eventually(
            timeout,
            &format!("{n} traces stored and listed"),
            || async {
                let (stored, listed): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM trace_list)",
                )
                .fetch_one(&self.db.pool)
                .await
                .ok()?;
                (stored as usize == n && listed as usize == n).then_some(())
            },
        )
        .await;
    }

    /// Waits for both read models to contain every acknowledged id and agree with each other,
    /// then checks the three sets and prints their sizes.
    pub async fn reconcile(&self, acked: &[Uuid], timeout: Duration) -> Reconciliation {
        let acked_set: HashSet<Uuid> = acked.iter().copied().collect();
        eventually(timeout, "acknowledged traces stored and listed", || async {
            let stored: HashSet<Uuid> = self.stored().await.into_iter().collect();
            let listed: HashSet<Uuid> = self.listed().await.into_iter().collect();
            (acked_set.is_subset(&stored) && stored == listed).then_some(())
        })
        .await;
        let stored = self.stored().await;
        let listed = self.listed().await;
        let r = Reconciliation {
            acknowledged: acked_set.len(),
            stored: stored.len(),
            stored_distinct: stored.iter().collect::<HashSet<_>>().len(),
            listed: listed.len(),
            listed_distinct: listed.iter().collect::<HashSet<_>>().len(),
        };
        eprintln!(
            "reconciliation: acknowledged={} stored={} (distinct {}) listed={} (distinct {})",
            r.acknowledged, r.stored, r.stored_distinct, r.listed, r.listed_distinct
        );
        let stored_set: HashSet<Uuid> = stored.into_iter().collect();
        let listed_set: HashSet<Uuid> = listed.into_iter().collect();
        assert_eq!(r.stored, r.stored_distinct, "stored has no duplicates");
        assert_eq!(r.listed, r.listed_distinct, "listed has no duplicates");
        assert!(
            acked_set.is_subset(&stored_set),
            "every acknowledged trace is stored"
        );
        assert_eq!(
            listed_set, stored_set,
            "the list view equals the stored traces"
        );
        r
    }

    /// A load spec against this stack's API.
    pub fn load(
        &self,
        concurrency: usize,
        stop: tunix_bench::load::Stop,
    ) -> tunix_bench::load::LoadSpec {
        tunix_bench::load::LoadSpec {
            addr: self.api_addr.clone(),
            concurrency,
            stop,
            rate: None,
            batch: 0,
            shape: tunix_bench::gen::Shape::Dataset,
            api_key: None,
            idempotency_keys: false,
            collect_ids: true,
            seed: 42,
            repo_root: tunix_testkit::repo_root(),
            ack_tx: None,
        }
    }
}

/// The three sets' sizes at the end of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Reconciliation {
    /// Ids that got a 2xx.
    pub acknowledged: usize,
    /// Rows in `traces`.
    pub stored: usize,
    /// Distinct ids in `traces`.
    pub stored_distinct: usize,
    /// Rows in the list view.
    pub listed: usize,
    /// Distinct ids in the list view.
    pub listed_distinct: usize,
}

/// The sum of every sample of metric `name` (all label sets) in Prometheus text `text`; `None`
/// when the metric is absent.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
