//! Private Apache Kafka processes for tests that stop, kill, restart or cluster brokers.
//!
//! Each node is a KRaft broker and controller in one JVM, run from the jars `infra/test.sh`
//! fetched (`TUNIX_KAFKA_LIBS`), with the settings every tunix-rt broker shares
//! (`infra/kafka/broker.properties`) after its own. A [`KafkaCluster`] of three nodes replicates
//! every topic three times with `min.insync.replicas=2`; a [`Broker`] is one node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::{free_port, Service};

/// The folder of Kafka jars (`"$TUNIX_KAFKA_LIBS/*"` is the classpath).
pub fn kafka_libs() -> PathBuf {
    let libs = std::env::var("TUNIX_KAFKA_LIBS").map(PathBuf::from).unwrap_or_else(|_| {
        panic!("TUNIX_KAFKA_LIBS is not set: run the suite with ./infra/test.sh, which fetches Apache Kafka")
    });
    assert!(
        libs.join(".complete").exists(),
        "{} holds no complete Kafka download: run ./infra/test.sh",
        libs.display()
    );
    libs
}

/// `$JAVA_HOME/bin/java`, or `java` from `PATH` (processes started through [`Service`] get a
/// cleared environment, so the path is resolved here).
pub(crate) fn java() -> PathBuf {
    match std::env::var("JAVA_HOME") {
        Ok(home) if !home.is_empty() => Path::new(&home).join("bin/java"),
        _ => PathBuf::from("java"),
    }
}

/// A `java` command running a Kafka class with the jars on the classpath.
fn kafka_java(main_class: &str, heap: &str, log_config: &str) -> (PathBuf, Vec<String>) {
    let classpath = format!("{}/*", kafka_libs().display());
    let log4j = crate::repo_root().join("infra/kafka").join(log_config);
    let mut args: Vec<String> = heap.split_whitespace().map(str::to_owned).collect();
    args.extend([
        format!("-Dlog4j2.configurationFile={}", log4j.display()),
        "-cp".to_owned(),
        classpath,
        main_class.to_owned(),
    ]);
    (java(), args)
}

/// Runs one of Kafka's admin tools (`kafka-tools` and `kafka_2.13` main classes) to completion
/// and returns its standard output; panics with its standard error if it fails.
pub fn kafka_tool(main_class: &str, args: &[&str]) -> String {
    let (java, mut jvm) = kafka_java(
        main_class,
        "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1",
        "tools-log4j2.properties",
    );
    jvm.extend(args.iter().map(|a| (*a).to_owned()));
    let out = Command::new(&java)
        .args(&jvm)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", java.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{main_class} {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Extra settings for a cluster's client listener, e.g. SASL_SSL (see [`ClusterOptions`]).
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Nodes (each a broker and a controller).
    pub nodes: usize,
    /// Replaces the client listener's protocol (`PLAINTEXT` by default), e.g. `SASL_SSL`.
    pub client_protocol: Option<String>,
    /// Extra `server.properties` lines for every node (TLS material, SASL mechanisms, JAAS).
    pub extra_properties: Vec<(String, String)>,
    /// Extra arguments to the storage formatter (e.g. `--add-scram`).
    pub format_args: Vec<String>,
}

/// One node of a [`KafkaCluster`].
pub struct KafkaNode {
    /// Its `node.id`.
    pub id: u32,
    /// The client listener's port on 127.0.0.1.
    pub port: u16,
    /// The broker process.
    pub process: Service,
}

/// Private Apache Kafka nodes on loopback, formatted into one KRaft cluster.
pub struct KafkaCluster {
    /// The nodes, by index (`node.id` = index + 1). Declared first: dropped (killed) before
    /// their folder is removed.
    pub nodes: Vec<KafkaNode>,
    dir: tempfile::TempDir,
}

impl KafkaCluster {
    /// Starts `nodes` nodes (1 or 3 make sense) and waits until every broker is registered.
    pub fn start(nodes: usize) -> KafkaCluster {
        KafkaCluster::start_with(ClusterOptions {
            nodes,
            ..ClusterOptions::default()
        })
    }

    /// Starts a cluster as `options` say and waits until every broker is registered.
    pub fn start_with(options: ClusterOptions) -> KafkaCluster {
        assert!(options.nodes >= 1, "a cluster has at least one node");
        let dir = tempfile::Builder::new()
            .prefix("tunix-kafka-")
            .tempdir()
            .expect("tempdir");
        let ports: Vec<(u16, u16, u16)> = (0..options.nodes)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, _, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let replicas = options.nodes.min(3);
        let min_isr = if replicas >= 3 { 2 } else { 1 };
        let protocol = options.client_protocol.as_deref().unwrap_or("PLAINTEXT");
        let shared =
            std::fs::read_to_string(crate::repo_root().join("infra/kafka/broker.properties"))
                .expect("read infra/kafka/broker.properties");
        let cluster_id = kafka_tool("kafka.tools.StorageTool", &["random-uuid"])
            .trim()
            .to_owned();
        let mut nodes = Vec::new();
        for (i, (port, internal, controller)) in ports.iter().enumerate() {
            let id = i as u32 + 1;
            let node_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let mut config = format!(
                "process.roles=broker,controller\n\
                 node.id={id}\n\
                 controller.quorum.voters={voters}\n\
                 listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}\n\
                 controller.listener.names=CONTROLLER\n\
                 inter.broker.listener.name=INTERNAL\n\
                 listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,CLIENT:{protocol}\n\
                 log.dirs={}\n\
                 default.replication.factor={replicas}\n\
                 offsets.topic.replication.factor={replicas}\n\
                 transaction.state.log.replication.factor={replicas}\n\
                 transaction.state.log.min.isr={min_isr}\n\
                 min.insync.replicas={min_isr}\n",
                node_dir.join("data").display()
            );
            for (k, v) in &options.extra_properties {
                config.push_str(&format!("{k}={v}\n"));
            }
            config.push('\n');
            config.push_str(&shared);
            let config_path = node_dir.join("server.properties");
            std::fs::write(&config_path, config).expect("write server.properties");
            let config_arg = config_path.display().to_string();
            let mut format = vec!["format", "-t", &cluster_id, "-c", &config_arg];
            format.extend(options.format_args.iter().map(String::as_str));
            kafka_tool("kafka.tools.StorageTool", &format);
            let (java, mut args) = kafka_java(
                "kafka.Kafka",
                "-Xms64m -Xmx384m -XX:+UseG1GC -XX:MaxGCPauseMillis=20",
                "log4j2.properties",
            );
            args.push(config_arg);
            nodes.push(KafkaNode {
                id,
                port: *port,
                process: Service::start_with_args(&format!("kafka-{id}"), java, args, Vec::new()),
            });
        }
        let cluster = KafkaCluster { nodes, dir };
        if options.client_protocol.is_none() {
            cluster.wait_ready(Duration::from_secs(90));
        } else {
            // Clients need credentials there; the test waits with its own.
            for node in &cluster.nodes {
                wait_listening(node, Duration::from_secs(90));
            }
        }
        cluster
    }

    /// `KAFKA_BROKERS` for this cluster (every node).
    pub fn brokers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node with `node.id` `id`.
    pub fn node(&mut self, id: u32) -> &mut KafkaNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Waits until the running nodes answer metadata requests and list every running broker.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for node in &self.nodes {
            wait_listening(node, timeout);
        }
        let expected = self.nodes.len();
        loop {
            let seen = broker_count(&self.brokers());
            if seen == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Kafka cluster not ready after {timeout:?}: {seen:?} of {expected} brokers registered (logs: {})",
                self.log_paths()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The node leading `partition` of `topic` (from broker metadata).
    pub fn leader_of(&self, topic: &str, partition: i32) -> u32 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .expect("metadata client");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let t = &metadata.topics()[0];
        let p = t
            .partitions()
            .iter()
            .find(|p| p.id() == partition)
            .expect("partition");
        p.leader() as u32
    }

    /// The node that is the active KRaft controller (the metadata quorum's leader), from
    /// Kafka's own `kafka-metadata-quorum` tool.
    pub fn active_controller(&self) -> u32 {
        let out = kafka_tool(
            "org.apache.kafka.tools.MetadataQuorumCommand",
            &[
                "--bootstrap-server",
                &self.brokers(),
                "describe",
                "--status",
            ],
        );
        out.lines()
            .find_map(|l| l.strip_prefix("LeaderId:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no LeaderId in {out}"))
    }

    fn log_paths(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.process.log.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The cluster's folder (configs and data), e.g. for TLS material a test writes.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl KafkaNode {
    /// SIGKILL: the broker dies without a controlled shutdown.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM: a controlled shutdown (leadership moves first); SIGKILL after 60 s.
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(60));
    }

    /// Starts the stopped node again on the same ports and data, and waits until it listens.
    pub fn start_again(&mut self) {
        self.process.restart();
        wait_listening(self, Duration::from_secs(90));
    }
}

fn wait_listening(node: &KafkaNode, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", node.port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Kafka node {} did not listen on {} within {timeout:?}: {}",
            node.id,
            node.port,
            node.process.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Brokers listed by a metadata request to `brokers`, if one answers.
fn broker_count(brokers: &str) -> Option<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .ok()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(5)).ok()?;
    Some(metadata.brokers().len())
}

/// One private Apache Kafka node, for tests that stop, kill and restart the broker.
pub struct Broker {
    cluster: KafkaCluster,
    /// Its client port on 127.0.0.1.
    pub port: u16,
}

impl Broker {
    /// Formats and starts a one-node broker on free ports; waits until it answers metadata.
    pub fn start() -> Broker {
        let cluster = KafkaCluster::start(1);
        Broker {
            port: cluster.nodes[0].port,
            cluster,
        }
    }

    /// `KAFKA_BROKERS` for this broker.
    pub fn brokers(&self) -> String {
        self.cluster.brokers()
    }

    /// Starts the stopped broker on the same port and data; waits until it answers metadata.
    pub fn start_again(&mut self) {
        self.cluster.nodes[0].start_again();
        self.cluster.wait_ready(Duration::from_secs(90));
    }

    /// SIGTERM (a controlled shutdown), SIGKILL after 60 s.
    pub fn stop(&mut self) {
        self.cluster.nodes[0].stop();
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.cluster.nodes[0].kill();
    }
}
