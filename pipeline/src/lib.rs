//! # tunix-pipeline
//!
//! What every tunix-rt service shares, so that it exists once:
//!
//! - [`config`]: typed configuration from the environment, with every error reported at once;
//! - [`telemetry`]: `tracing` logs and the Prometheus recorder;
//! - [`shutdown`]: one cancellation token for SIGTERM/SIGINT;
//! - [`http`]: serving an axum router with header timeouts and a bounded graceful drain;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`db`]: Postgres pools (seed pool variables, TLS via `DATABASE_URL`) and migrations;
//! - [`kafka`]: broker settings and topic creation;
//! - [`kafka_security`]: TLS and SASL settings, and the start-up check of the login;
//! - [`erasure`]: the deletion ledger and the tombstone outbox;
//! - [`consumer`]: the consumer core the writer and the projector plug their sinks into;
//! - [`service`]: the one runner both consumer services start with.

pub mod broker_requests;
pub mod config;
pub mod consumer;
pub mod db;
pub mod erasure;
pub mod http;
pub mod kafka;
pub mod kafka_security;
pub mod ops;
pub mod registry;
pub mod service;
pub mod shutdown;
pub mod telemetry;
