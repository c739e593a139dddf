//! `tunix-projector`: maintains the list view from the `traces` topic (default), or rebuilds it
//! from offset 0 (`tunix-projector rebuild`). Configuration comes from the environment (see the
//! README's configuration table); SIGTERM/SIGINT drain and exit.

use clap::{Parser, Subcommand};
use tunix_pipeline::config::load_or_exit;
use tunix_pipeline::service::bind;
use tunix_projector::rebuild::{rebuild, RebuildOptions};
use tunix_projector::{config_from_env, SPEC};

#[derive(Parser)]
#[command(
    version,
    about = "tunix-rt projector: keeps the trace list view current"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the projector service (the default).
    Serve,
    /// Replay the topic from offset 0 into a new version of the list view, then switch reads to it.
    Rebuild {
        /// Keep the previous version's table after the switch.
        #[arg(long)]
        keep_previous: bool,
    },
}

/// mimalloc: per-thread free lists instead of glibc's arenas (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = load_or_exit(SPEC.program, config_from_env);
    tunix_pipeline::telemetry::init_tracing(cfg.log_format);
    let shutdown = tunix_pipeline::shutdown::signal_token();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = bind(cfg.ops_addr, SPEC.ops_addr_var).await?;
            tunix_projector::run(cfg, listener, shutdown).await
        }
        Command::Rebuild { keep_previous } => {
            cfg.kafka.check_access().await?;
            let report = rebuild(&cfg, RebuildOptions { keep_previous }, shutdown, |line| {
                eprintln!("{line}")
            })
            .await?;
            println!(
                "rebuilt trace_list v{} -> v{}: {} events replayed, {} rows, {:.1}s; reads now use v{}",
                report.previous_version,
                report.version,
                report.events,
                report.rows,
                report.elapsed.as_secs_f64(),
                report.version
            );
            Ok(())
        }
    }
}
