//! # tunix-ingest-api
//!
//! Owns the public HTTP address of tunix-rt:
//!
//! - the front door for trace producers (`POST /api/traces`, `POST /api/traces/batch`): bodies
//!   are read under a byte cap (also after decompression), validated with `tunix-schemas`, given
//!   ids, appended to Kafka as Avro events, and acknowledged only after the broker's delivery
//!   report (`acks=all`, idempotent producer);
//! - reads and filters over Postgres, scores, frozen datasets and their exports, governance
//!   (erasure, bulk deletes, retention, audit), the built-in Schema Registry API, the web UI and
//!   OpenAPI; health, readiness and Prometheus metrics.
//!
//! Where things live, by feature (the folder follows the route):
//!
//! | module | owns |
//! | --- | --- |
//! | [`traces`] | `/api/traces`: submitting ([`traces::write`]), reading ([`traces::read`]), the list filter and its SQL |
//! | [`scores`] | `/api/traces/{id}/scores`, `/api/scores/batch` |
//! | [`datasets`] | `/api/datasets`: creation, exports, Parquet |
//! | [`governance`] | `DELETE /api/traces/{id}`, `/api/deletions`, `/api/audit`, retention, the erasure runner |
//! | [`registry`] | `/api/registry` (the built-in Schema Registry) and registration with an external one |
//! | [`otlp`] | `/v1/traces`: OpenTelemetry (OTLP/HTTP) GenAI spans become traces |
//! | [`compat`] | the original service's extra routes (baseline score, compare, dataset build and export by key, RediAI health) |
//! | [`http`] | what every route shares: errors, auth, bodies, CORS, metrics, OpenAPI, health, the UI |
//! | [`router`], [`server`], [`state`], [`config`], [`producer`] | routes and scopes, serving and shutdown, shared state, configuration, appending events |
//!
//! [`app`] builds the router from an [`AppState`]; [`run`] serves it with graceful shutdown.

pub mod compat;
pub mod config;
pub mod datasets;
pub mod governance;
pub mod http;
pub mod otlp;
pub mod producer;
pub mod registry;
pub mod router;
pub mod scores;
pub mod server;
pub mod state;
pub mod traces;

pub use config::IngestConfig;
pub use router::{app, openapi_document};
pub use server::{effective_addr, run};
pub use state::AppState;
