//! # tunix-testkit
//!
//! Helpers for tests that run against the **real** Postgres and Kafka-protocol broker started by
//! `infra/test.sh` (it exports `TUNIX_TEST_DATABASE_URL` and `TUNIX_TEST_KAFKA_BROKERS`), one
//! concern per module:
//!
//! - `env`: the servers and tools the suite runs with ([`database_url`], [`kafka_brokers`],
//!   [`python`]), the repository's paths and [`unique`] names;
//! - `poll`: [`eventually`], poll-with-deadline instead of sleeps, and the [`CONVERGE`] deadline;
//! - `http`: [`Api`], JSON calls to a service answered as `(status, body)`;
//! - `data`: the real data set ([`dataset`], [`dataset_jsonl`], [`dataset_traces`]) and events
//!   built from it ([`submitted`], [`deleted`]);
//! - `stack`: [`TestDb`], a fresh, migrated database per test, dropped afterwards, and
//!   [`PgCluster`], a private Postgres for tests that stop it;
//! - `kafka`: [`TestTopic`], a fresh topic (and dead-letter topic) per test, and direct
//!   produce/consume;
//! - `process`: [`Service`], a service binary as a child process, to SIGKILL, SIGTERM and restart,
//!   and [`run_ok`] / [`run_to_exit`] for programs run to completion;
//! - `broker`: [`Broker`] and [`KafkaCluster`], private Apache Kafka nodes for tests that stop,
//!   kill or cluster brokers, and [`kafka_tool`] for Kafka's own admin tools;
//! - `registry`: [`ApicurioRegistry`], a real external Schema Registry (Apicurio Registry,
//!   through its Confluent-compatible API) to kill and restart;
//! - [`arb`]: generators of hostile trace bodies for property tests.

pub mod arb;
mod broker;
mod data;
mod env;
mod http;
mod kafka;
mod poll;
mod process;
mod registry;
mod stack;

pub use broker::{kafka_libs, kafka_tool, Broker, ClusterOptions, KafkaCluster, KafkaNode};
pub use data::{dataset, dataset_jsonl, dataset_traces, deleted, submitted};
pub use env::{artifacts_dir, database_url, kafka_brokers, python, repo_root, unique};
pub use http::{status_and_json, Api};
pub use kafka::{consume_all, produce_events, produce_null, produce_raw, TestTopic};
pub use poll::{eventually, CONVERGE};
pub use process::{binary, free_port, run_ok, run_to_exit, Service};
pub use registry::ApicurioRegistry;
pub use stack::{PgCluster, TestDb};
