//! `tunix-admin`: one-off operations on a tunix-rt deployment (used by `infra/up.sh`).
//!
//! - `migrate`: apply pending migrations to `DATABASE_URL`;
//! - `create-topics`: create the event and dead-letter topics on `KAFKA_BROKERS`;
//! - `wait`: wait until Postgres and the broker answer;
//! - `positions`: print the stored consumer positions;
//! - `datasets`: create, list, export and delete datasets through ingest-api's HTTP API.

#[path = "admin/datasets.rs"]
mod datasets;

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tunix_pipeline::config::{load_or_exit, Env};
use tunix_pipeline::db::{migrate, DbSettings};
use tunix_pipeline::kafka::KafkaSettings;

#[derive(Parser)]
#[command(
    version,
    about = "tunix-rt administration (configured by the same environment variables as the services)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations.
    Migrate,
    /// Create the event topic and the dead-letter topic if missing.
    CreateTopics,
    /// Wait until Postgres and the broker answer.
    Wait {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Print the stored position of every partition for a target (e.g. `traces`, `trace_list_v1`).
    Positions {
        /// The target table.
        target: String,
    },
    /// Datasets, through ingest-api's HTTP API (`--api`, `--api-key`).
    #[command(subcommand)]
    Datasets(datasets::Datasets),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tunix_pipeline::telemetry::init_tracing(tunix_pipeline::telemetry::LogFormat::Text);
    let cli = Cli::parse();
    if let Command::Datasets(cmd) = cli.command {
        // An HTTP client: no database or broker settings involved.
        if let Err(e) = datasets::run(cmd).await {
            eprintln!("tunix-admin datasets: {e:#}");
            std::process::exit(1);
        }
        return Ok(());
    }
    let (db, kafka) = load_or_exit("tunix-admin", |mut env: Env| {
        let settings = (
            DbSettings::from_env(&mut env),
            KafkaSettings::from_env(&mut env),
        );
        env.finish()?;
        Ok(settings)
    });
    match cli.command {
        Command::Migrate => {
            let pool = db.pool()?;
            migrate(&pool).await?;
            println!("migrations applied to {}", db.redacted_url());
        }
        Command::CreateTopics => {
            kafka.ensure_topics(Duration::from_secs(30)).await?;
            let n = kafka.partition_count(&kafka.topic, Duration::from_secs(10))?;
            println!(
                "topics ready on {}: {} ({n} partitions), {}",
                kafka.brokers, kafka.topic, kafka.dlq_topic
            );
        }
        Command::Wait { timeout } => {
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let pool = db.pool()?;
            loop {
                let pg = sqlx::query!("SELECT 1 AS one").fetch_one(&pool).await;
                let broker = tokio::task::spawn_blocking({
                    let kafka = kafka.clone();
                    move || kafka.partition_count("__tunix_probe", Duration::from_secs(2))
                })
                .await?;
                // An unknown topic still proves the broker answered metadata.
                let broker_ok = !matches!(
                    broker,
                    Err(rdkafka::error::KafkaError::MetadataFetch(
                        rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                            | rdkafka::types::RDKafkaErrorCode::AllBrokersDown
                            | rdkafka::types::RDKafkaErrorCode::OperationTimedOut
                    )) | Err(rdkafka::error::KafkaError::ClientCreation(_))
                );
                if pg.is_ok() && broker_ok {
                    println!("postgres and broker are up");
                    break;
                }
                if Instant::now() > deadline {
                    anyhow::bail!(
                        "gave up after {timeout}s: postgres {}, broker {}",
                        pg.map(|_| "ok".to_owned())
                            .unwrap_or_else(|e| e.to_string()),
                        if broker_ok {
                            "ok".to_owned()
                        } else {
                            format!("{broker:?}")
                        }
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Command::Positions { target } => {
            let pool = db.pool()?;
            let mut positions: Vec<_> =
                tunix_pipeline::consumer::stored_positions(&pool, &target, &kafka.topic)
                    .await?
                    .into_iter()
                    .collect();
            positions.sort_by_key(|(p, _)| *p);
            for (p, pos) in positions {
                println!("{target} {} partition {p}: next offset {pos}", kafka.topic);
            }
        }
        Command::Datasets(_) => unreachable!("handled before the settings are read"),
    }
    Ok(())
}
