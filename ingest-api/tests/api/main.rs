//! ingest-api over real HTTP against the real broker and Postgres (started by `infra/test.sh`),
//! one module per concern.

mod auth;
mod batch;
mod bodies;
mod helpers;
mod ingest;
mod openapi;
mod otlp;
mod reads;
mod redaction;
mod schema_registry;
mod scores;
mod seed;
mod shutdown;
mod stats;
mod trust;
