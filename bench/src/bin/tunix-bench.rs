//! `tunix-bench`: benchmarks for tunix-rt. Each subcommand prints a table; `docs/BENCHMARKS.md`
//! has the commands and the latest results.
//!
//! Run against the local stack (`./infra/up.sh`): the database and broker default to its
//! addresses, and the subcommands that need their own data create a fresh database and topic.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tunix_bench::gen::Shape;
use tunix_bench::load::{self, LoadSpec, Stop};
use tunix_bench::{report, suites};

#[derive(Parser)]
#[command(version, about = "tunix-rt benchmarks (see docs/BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP load against ingest-api: accepted/s, latency percentiles, errors by status.
    Ingest {
        /// ingest-api address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Concurrent connections, comma-separated for several runs.
        #[arg(long, default_value = "64")]
        concurrency: String,
        /// Seconds per run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Trace shapes, comma-separated: dataset, 8k, 100k.
        #[arg(long, default_value = "dataset")]
        shape: String,
        /// Traces per request (0: single POSTs to /api/traces).
        #[arg(long, default_value_t = 0)]
        batch: usize,
        /// Also measure the raw producer rate to the same broker, for comparison.
        #[arg(long)]
        compare_raw: bool,
        /// Pid file of ingest-api, to report its RSS and CPU time per accepted trace.
        #[arg(long, default_value = ".stack/pids/ingest-api.pid")]
        pid_file: PathBuf,
        /// Bearer key, when the API requires one.
        #[arg(long, env = "TUNIX_API_KEY")]
        api_key: Option<String>,
        /// A unique Idempotency-Key on every request (keyed POSTs are checked against deleted ids).
        #[arg(long)]
        keyed: bool,
    },
    /// The raw rate of an idempotent acks=all producer to the broker (the ceiling for ingest).
    ProduceRaw {
        /// Events to produce.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
    },
    /// Encode and decode cost per event in each framing (single-object, Confluent with built-in
    /// or external ids), in-process: no stack needed.
    Codec {
        /// Events per round.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Rounds per framing (the median is printed).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Writer drain of a pre-filled topic vs a raw COPY of the same rows; projector throughput.
    Consumers {
        /// Events in the topic (a mix of 0.5 KB dataset traces and generated long ones).
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Every Nth event is a generated 8 KB trace (0: none).
        #[arg(long, default_value_t = 100)]
        long_every: usize,
        /// Also run the projector on the same traces with a score after every Nth (0: skip).
        #[arg(long, default_value_t = 1)]
        scores_every: usize,
    },
    /// Read latency at depth: page 1, offset and cursor pages deep in the view, filters, by id.
    Read {
        /// Rows in the view (and in traces).
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
        /// Samples per query.
        #[arg(long, default_value_t = 300)]
        samples: usize,
        /// Measure a database an earlier (interrupted) run loaded, instead of loading a new
        /// one; it is kept afterwards. `--rows` must match what it holds.
        #[arg(long)]
        reuse_database: Option<String>,
        /// Keep the loaded database afterwards (to measure it again with --reuse-database).
        #[arg(long)]
        keep_database: bool,
        /// Only the queries whose name starts with this (e.g. `stats`, `page 1`).
        #[arg(long)]
        only: Option<String>,
    },
    /// Dataset creation and JSONL/Parquet export rates and ingest-api's RSS, next to a COPY of
    /// the same rows (needs `cargo build --release --bins`).
    Export {
        /// Traces in the store (all of them go into the dataset).
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
    },
    /// Load at a fixed rate for a long time, sampling RSS and CPU of every service.
    Soak {
        /// ingest-api address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Traces per second.
        #[arg(long)]
        rate: f64,
        /// Duration in seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Where up.sh keeps the pids.
        #[arg(long, default_value = ".stack/pids")]
        pid_dir: PathBuf,
    },
    /// CPU per 1,000 traces of every process of the stack at a fixed rate (single POSTs and
    /// batches of 100), the idle stack's CPU, and the highest single-POST rate vs a raw producer.
    Cost {
        /// ingest-api address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Traces per second (a rate the stack sustains with headroom).
        #[arg(long, default_value_t = 1500.0)]
        rate: f64,
        /// Seconds per fixed-rate run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seconds of the idle measurement.
        #[arg(long, default_value_t = 20)]
        idle_seconds: u64,
        /// Where up.sh keeps the pids.
        #[arg(long, default_value = ".stack/pids")]
        pid_dir: PathBuf,
        /// The writer's and the projector's ops addresses (their `/metrics` count the requests
        /// they send to the broker).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "127.0.0.1:9101,127.0.0.1:9102"
        )]
        ops_addrs: Vec<String>,
    },
    /// Failover between two instances of the writer and of the projector on a 6-partition
    /// topic under load: time from SIGKILL (or SIGTERM) of one until the survivor consumes its
    /// partitions again (needs the release `tunix-writer` and `tunix-projector` binaries).
    Failover {
        /// Rounds per consumer and stop mode (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// `WRITER_LEASE_TTL_MS` / `PROJECTOR_LEASE_TTL_MS` of the instances.
        #[arg(long, default_value_t = 10_000)]
        lease_ttl_ms: u64,
        /// Submitted traces per second, spread over all partitions, during the whole run.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Consumers, comma-separated: writer, projector.
        #[arg(long, value_delimiter = ',', default_value = "writer,projector")]
        consumers: Vec<String>,
        /// Stop modes, comma-separated: kill (SIGKILL), term (SIGTERM).
        #[arg(long, value_delimiter = ',', default_value = "kill,term")]
        stops: Vec<String>,
    },
    /// Every hot request next to its anchor (no-op service, pgbench, raw producer, the original
    /// service), as same-run ratios: the table of docs/BENCHMARKS.md "Speed".
    Speed {
        /// ingest-api address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// The original service's address (`bench/original/serve.sh`), to compare with it.
        #[arg(long)]
        original_addr: Option<String>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// OTLP protobuf batches of 100 spans (`POST /v1/traces`) next to JSON batches of the same
    /// traces (`POST /api/traces/batch`): CPU per 1,000 traces at a fixed rate, the highest rate
    /// and the rate into the full pipeline, as same-run ratios.
    Otlp {
        /// ingest-api address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Traces per second of the fixed-rate runs.
        #[arg(long, default_value_t = 1500.0)]
        rate: f64,
        /// Seconds per fixed-rate run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Seconds per run as fast as answered.
        #[arg(long, default_value_t = 15)]
        max_seconds: u64,
        /// Connections of the runs as fast as answered.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Rounds, alternating which wire goes first (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Where up.sh keeps the pids.
        #[arg(long, default_value = ".stack/pids")]
        pid_dir: PathBuf,
    },
    /// Time from the POST's answer to visibility in GET by id and in the list view.
    Freshness {
        /// ingest-api address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Traces per second, comma-separated for several runs.
        #[arg(long, default_value = "1000")]
        rates: String,
        /// Seconds per run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

fn repo_root() -> PathBuf {
    let mut dir = std::env::current_dir().expect("cwd");
    loop {
        if dir.join("testdata/dev-reasoning-v2.jsonl").exists() {
            return dir;
        }
        if !dir.pop() {
            panic!("run tunix-bench from inside the repository");
        }
    }
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    s.split(',')
        .map(|p| p.trim().parse().expect("list item"))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = repo_root();
    let env = suites::StackEnv::from_env(&root);
    match cli.command {
        Command::Ingest {
            addr,
            concurrency,
            seconds,
            shape,
            batch,
            compare_raw,
            pid_file,
            api_key,
            keyed,
        } => {
            let raw = if compare_raw {
                Some(suites::produce_raw(&env, 200_000).await?)
            } else {
                None
            };
            let mut rows = Vec::new();
            for shape in list::<Shape>(&shape) {
                for c in list::<usize>(&concurrency) {
                    let spec = LoadSpec {
                        addr: addr.clone(),
                        concurrency: c,
                        stop: Stop::After(Duration::from_secs(seconds)),
                        rate: None,
                        batch,
                        shape,
                        api_key: api_key.clone(),
                        idempotency_keys: keyed,
                        collect_ids: false,
                        seed: 42,
                        repo_root: root.clone(),
                        ack_tx: None,
                    };
                    let sampler = report::RssSampler::start(&pid_file);
                    let pid = report::read_pid(&pid_file);
                    let cpu_before = pid.and_then(report::cpu_time);
                    let r = load::run(spec).await;
                    let cpu = match (cpu_before, pid.and_then(report::cpu_time)) {
                        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                        _ => None,
                    };
                    let rss = sampler.stop().await;
                    rows.push(report::ingest_row(&shape, c, batch, &r, rss, raw, cpu));
                }
            }
            report::print_ingest(&rows, raw);
        }
        Command::Codec { events, rounds } => suites::codec(&root, events, rounds),
        Command::ProduceRaw { events } => {
            let rate = suites::produce_raw(&env, events).await?;
            println!("raw producer (idempotent, acks=all, linger 5 ms): {rate:.0} events/s over {events} events");
        }
        Command::Consumers {
            events,
            long_every,
            scores_every,
        } => {
            suites::consumers(&env, events, long_every, scores_every).await?;
        }
        Command::Export { rows } => suites::export(&env, rows).await?,
        Command::Read {
            rows,
            samples,
            reuse_database,
            keep_database,
            only,
        } => {
            suites::read(
                &env,
                rows,
                samples,
                reuse_database.as_deref(),
                keep_database,
                only.as_deref(),
            )
            .await?;
        }
        Command::Cost {
            addr,
            rate,
            seconds,
            idle_seconds,
            pid_dir,
            ops_addrs,
        } => {
            suites::cost(
                &env,
                &root,
                suites::StackProcesses {
                    addr: &addr,
                    pid_dir: &pid_dir,
                    ops_addrs: &ops_addrs,
                },
                rate,
                Duration::from_secs(seconds),
                Duration::from_secs(idle_seconds),
            )
            .await?;
        }
        Command::Soak {
            addr,
            rate,
            seconds,
            pid_dir,
        } => {
            suites::soak(&root, &addr, rate, Duration::from_secs(seconds), &pid_dir).await?;
        }
        Command::Failover {
            rounds,
            lease_ttl_ms,
            rate,
            consumers,
            stops,
        } => {
            suites::failover(
                &env,
                &root,
                suites::FailoverSpec {
                    rounds,
                    lease_ttl: Duration::from_millis(lease_ttl_ms),
                    rate,
                    consumers,
                    stops,
                },
            )
            .await?;
        }
        Command::Speed {
            addr,
            original_addr,
            seconds,
            rounds,
        } => {
            suites::speed(
                &env,
                suites::SpeedSpec {
                    addr,
                    original_addr,
                    seconds,
                    rounds,
                },
            )
            .await?;
        }
        Command::Otlp {
            addr,
            rate,
            seconds,
            max_seconds,
            connections,
            rounds,
            pid_dir,
        } => {
            suites::otlp(
                &env,
                &root,
                suites::OtlpSpec {
                    addr,
                    rate,
                    seconds,
                    max_seconds,
                    connections,
                    rounds,
                    pid_dir,
                },
            )
            .await?;
        }
        Command::Freshness {
            addr,
            rates,
            seconds,
        } => {
            suites::freshness(
                &env,
                &root,
                &addr,
                &list::<f64>(&rates),
                Duration::from_secs(seconds),
            )
            .await?;
        }
    }
    Ok(())
}
