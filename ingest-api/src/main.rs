//! `tunix-ingest-api`: the public HTTP address of tunix-rt. Configuration comes from the
//! environment (see the README's configuration table); SIGTERM/SIGINT drain and exit.

use tunix_ingest_api::{effective_addr, AppState, IngestConfig};
use tunix_pipeline::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = match IngestConfig::from_env(Env::from_process()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("tunix-ingest-api: {e}");
            std::process::exit(2);
        }
    };
    tunix_pipeline::telemetry::init_tracing(cfg.log_format);
    let addr = effective_addr(&cfg);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on API_ADDR={addr}: {e}"))?;
    let shutdown = tunix_pipeline::shutdown::signal_token();
    let state = AppState::new(cfg)?;
    tunix_ingest_api::run(state, listener, shutdown).await
}
