//! `tunix-writer`: Kafka `traces` topic → Postgres `traces` table. Configuration is read from the
//! environment (see the README's configuration table); SIGTERM/SIGINT drain and exit.

use tunix_pipeline::config::Env;
use tunix_writer::WriterConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = match WriterConfig::from_env(Env::from_process()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("tunix-writer: {e}");
            std::process::exit(2);
        }
    };
    tunix_pipeline::telemetry::init_tracing(cfg.log_format);
    let listener = tokio::net::TcpListener::bind(cfg.ops_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on WRITER_OPS_ADDR={}: {e}", cfg.ops_addr))?;
    let shutdown = tunix_pipeline::shutdown::signal_token();
    tunix_writer::run(cfg, listener, shutdown).await
}
