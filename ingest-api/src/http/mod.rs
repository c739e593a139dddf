//! What every route shares: the error type and its statuses ([`error`]), API keys and scopes
//! ([`auth`]), request bodies ([`body`]), CORS, request metrics, the OpenAPI document, health and
//! readiness, the UI's static files, read-query limits ([`db`]), the connections of the hottest
//! reads ([`read_connections`]) and small shared answers ([`common`]).

pub mod auth;
pub mod body;
pub mod common;
pub mod cors;
pub mod db;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod pipeline_status;
pub mod read_connections;
pub mod ui;
