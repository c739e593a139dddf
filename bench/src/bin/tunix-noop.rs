//! `tunix-noop`: the no-op HTTP service `tunix-bench speed` measures beside ingest-api, as the
//! ceiling of the HTTP stack on this box: the same server code (axum over
//! `tunix_pipeline::http::serve`, the runtime sized by `TOKIO_WORKER_THREADS` like ingest-api's),
//! and no database, broker or middleware.
//!
//! - `POST /api/traces` parses the JSON body and answers 202 with an id, as ingest-api does.
//! - `GET /api/traces/{id}` answers the bytes of `--get-body` (a real answer of ingest-api's, so
//!   the same size on the wire).
//!
//! Run: `target/release/tunix-noop --addr 127.0.0.1:18080 --get-body answer.json`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "No-op HTTP service: the HTTP stack's ceiling for tunix-bench speed")]
struct Cli {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:18080")]
    addr: String,
    /// The body `GET /api/traces/{id}` answers.
    #[arg(long)]
    get_body: PathBuf,
}

async fn accept(body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => (
            StatusCode::ACCEPTED,
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"id":"{}"}}"#, uuid::Uuid::now_v7()),
        ),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "detail": e.to_string() }).to_string(),
        ),
    }
}

async fn answer(State(body): State<Arc<Bytes>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::clone(&body),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let body = Arc::new(Bytes::from(std::fs::read(&cli.get_body)?));
    let app = Router::new()
        .route("/api/traces", post(accept))
        .route("/api/traces/{id}", get(answer))
        .with_state(body);
    let listener = tokio::net::TcpListener::bind(&cli.addr).await?;
    eprintln!("tunix-noop serving on {}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.cancel();
    });
    tunix_pipeline::http::serve(listener, app, shutdown, Duration::from_secs(1)).await;
    Ok(())
}
