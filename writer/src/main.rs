//! `tunix-writer`: Kafka `traces` topic → Postgres `traces` table. Configuration is read from the
//! environment (see the README's configuration table); SIGTERM/SIGINT drain and exit.

use tunix_pipeline::config::load_or_exit;
use tunix_pipeline::service::bind;

/// mimalloc: per-thread free lists instead of glibc's arenas (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = load_or_exit(tunix_writer::SPEC.program, tunix_writer::config_from_env);
    tunix_pipeline::telemetry::init_tracing(cfg.log_format);
    let listener = bind(cfg.ops_addr, tunix_writer::SPEC.ops_addr_var).await?;
    let shutdown = tunix_pipeline::shutdown::signal_token();
    tunix_writer::run(cfg, listener, shutdown).await
}
