//! # tunix-admin
//!
//! Owns the operator's command line for a tunix-rt deployment (`infra/up.sh` and the compose
//! stack run it): one-off operations on Postgres and the broker, configured by the services'
//! own environment variables through `tunix-pipeline`, and a client of ingest-api's HTTP API for
//! datasets and bulk deletes. It holds no pipeline logic of its own.
//!
//! - `migrate`: apply pending migrations to `DATABASE_URL`;
//! - `create-topics`: create the event and dead-letter topics on `KAFKA_BROKERS`;
//! - `wait`: wait until Postgres and the broker answer;
//! - `positions`: print the stored consumer positions;
//! - `datasets`: create, list, export and delete datasets through ingest-api's HTTP API;
//! - `traces delete`: delete every trace matching list filters (dry run, then `--yes`), with
//!   progress, through ingest-api's HTTP API;
//! - `schemas`: list the event schemas and their ids; register them in `SCHEMA_REGISTRY_URL`.

mod datasets;
mod traces;

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
    /// Traces, through ingest-api's HTTP API (`--api`, `--api-key`).
    #[command(subcommand)]
    Traces(traces::Traces),
    /// The event schemas and their Schema Registry ids.
    #[command(subcommand)]
    Schemas(Schemas),
}

#[derive(Subcommand)]
enum Schemas {
    /// Print every shipped schema: subject, version, built-in id, fingerprint; and the external
    /// registry ids remembered in the database (when it answers).
    List,
    /// Register every shipped schema in `SCHEMA_REGISTRY_URL` under its subject (what ingest-api
    /// does at start-up), print the ids, and remember them in the database.
    Register {
        /// Do not write the ids to the database (e.g. before it exists).
        #[arg(long)]
        no_remember: bool,
    },
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
    if let Command::Traces(cmd) = cli.command {
        if let Err(e) = traces::run(cmd).await {
            eprintln!("tunix-admin traces: {e:#}");
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
    if matches!(cli.command, Command::CreateTopics | Command::Wait { .. }) {
        kafka.check_access().await?;
    }
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
        Command::Schemas(cmd) => schemas(cmd, &db, &kafka).await?,
        Command::Datasets(_) | Command::Traces(_) => {
            unreachable!("handled before the settings are read")
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn schemas(cmd: Schemas, db: &DbSettings, kafka: &KafkaSettings) -> anyhow::Result<()> {
    use tunix_pipeline::registry::{all_remembered, register_all};
    use tunix_schemas::ShippedSchema;
    let topic = &kafka.topic;
    match cmd {
        Schemas::List => {
            println!(
                "{:<44} {:>7} {:>11} {:<16} file",
                "subject", "version", "builtin id", "fingerprint"
            );
            for s in ShippedSchema::all() {
                let f = s.file();
                println!(
                    "{:<44} {:>7} {:>11} {:<16} {}",
                    f.kind.subject(topic),
                    f.version,
                    f.builtin_id,
                    hex(&s.fingerprint()),
                    f.file
                );
            }
            let pool = db.pool()?;
            match tokio::time::timeout(Duration::from_secs(5), all_remembered(&pool)).await {
                Ok(Ok(ids)) if ids.is_empty() => {
                    println!(
                        "no external registry ids remembered in {}",
                        db.redacted_url()
                    )
                }
                Ok(Ok(ids)) => {
                    println!("external registry ids remembered in {}:", db.redacted_url());
                    for (id, s) in ids {
                        println!("  {id:>10} {}", s.file().file);
                    }
                }
                Ok(Err(e)) => println!("(remembered ids unavailable: {e})"),
                Err(_) => println!("(remembered ids unavailable: the database did not answer)"),
            }
        }
        Schemas::Register { no_remember } => {
            let client = kafka.registry.client().ok_or_else(|| {
                anyhow::anyhow!("SCHEMA_REGISTRY_URL is not set: nothing to register in")
            })?;
            let pool = if no_remember { None } else { Some(db.pool()?) };
            let registered = register_all(&client, pool.as_ref(), topic).await?;
            println!("{:<44} {:>7} {:>11}  file", "subject", "version", "id");
            for r in &registered {
                println!(
                    "{:<44} {:>7} {:>11}  {}",
                    r.subject,
                    r.schema.file().version,
                    r.id,
                    r.schema.file().file
                );
            }
            println!(
                "{} schemas registered in {}{}",
                registered.len(),
                client.url(),
                if no_remember {
                    String::new()
                } else {
                    format!("; ids remembered in {}", db.redacted_url())
                }
            );
        }
    }
    Ok(())
}
