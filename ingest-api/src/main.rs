//! `tunix-ingest-api`: the public HTTP address of tunix-rt. Configuration comes from the
//! environment (see the README's configuration table); SIGTERM/SIGINT drain and exit.

use tunix_ingest_api::{effective_addr, AppState, IngestConfig};
use tunix_pipeline::config::load_or_exit;
use tunix_pipeline::service::bind;

/// mimalloc: per-thread free lists instead of glibc's arenas (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = load_or_exit("tunix-ingest-api", IngestConfig::from_env);
    tunix_pipeline::telemetry::init_tracing(cfg.log_format);
    let addr = effective_addr(&cfg);
    let listener = bind(addr, "API_ADDR").await?;
    let shutdown = tunix_pipeline::shutdown::signal_token();
    let state = AppState::new(cfg)?;
    tunix_ingest_api::run(state, listener, shutdown).await
}
