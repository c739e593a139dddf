//! `tunix-bench cost`: CPU per 1,000 traces of every process of the local stack at a fixed rate
//! (single POSTs and batches of 100), broker requests per 1,000 traces, the idle stack's CPU and
//! memory, and the highest single-POST rate next to a raw producer's.
//!
//! Run: `target/release/tunix-bench cost --rate 1500 --seconds 60`

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tunix_pipeline::db::DbSettings;

use super::freshness::{load_with_freshness, FRESHNESS_GRACE};
use super::{produce_raw, quantiles, stack_load, stack_processes, StackEnv};
use crate::load::{self, Ack, LoadSpec, Stop};
use crate::report::ProcessSamples;

/// Runs `spec` (whose `ack_tx` feeds `rx`) and then waits until its last acknowledged trace is
/// visible in both read models (the consumers have drained what it sent), polling every 100 ms
/// by id; returns the report and 1 if that did not happen within [`FRESHNESS_GRACE`].
async fn load_until_drained(
    pool: &PgPool,
    spec: LoadSpec,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Ack>,
) -> anyhow::Result<(load::LoadReport, usize)> {
    let load = tokio::spawn(load::run(spec));
    let mut last = None;
    while !load.is_finished() {
        while let Ok(ack) = rx.try_recv() {
            last = Some(ack.id);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Ok(ack) = rx.try_recv() {
        last = Some(ack.id);
    }
    let report = load.await?;
    let Some(last) = last else {
        return Ok((report, 0));
    };
    let deadline = Instant::now() + FRESHNESS_GRACE;
    while Instant::now() < deadline {
        let (stored, listed): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM traces WHERE id = $1),
                    EXISTS (SELECT 1 FROM trace_list WHERE id = $1)",
        )
        .bind(last)
        .fetch_one(pool)
        .await?;
        if stored && listed {
            return Ok((report, 0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((report, 1))
}

fn cpu_snapshot(procs: &[ProcessSamples]) -> Vec<Duration> {
    procs
        .iter()
        .map(|p| p.cpu_total().unwrap_or_default())
        .collect()
}

/// Requests the stack's clients sent to the broker, summed over ingest-api, writer and
/// projector (their `*_broker_requests_total` counters).
#[derive(Debug, Clone, Copy, Default)]
struct Requests {
    produce: f64,
    fetch: f64,
    other: f64,
}

impl Requests {
    fn minus(self, before: Requests) -> Requests {
        Requests {
            produce: self.produce - before.produce,
            fetch: self.fetch - before.fetch,
            other: self.other - before.other,
        }
    }
}

/// GETs `http://{addr}/metrics` (HTTP/1.0, so the answer ends with the connection).
async fn metrics_text(addr: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

/// Sums every `*_broker_requests_total{request=...}` series the services export.
async fn broker_requests(addrs: &[&str]) -> anyhow::Result<Requests> {
    let mut r = Requests::default();
    for addr in addrs {
        let text = metrics_text(addr).await?;
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if !series.contains("_broker_requests_total{") {
                continue;
            }
            let v: f64 = value.parse().unwrap_or(0.0);
            if series.contains("request=\"produce\"") {
                r.produce += v;
            } else if series.contains("request=\"fetch\"") {
                r.fetch += v;
            } else {
                r.other += v;
            }
        }
    }
    Ok(r)
}

/// librdkafka reports its counters every 2 s: a snapshot waits this long to include the end of
/// a run (the same lag applies to the snapshot before it).
const STATS_LAG: Duration = Duration::from_millis(2500);

/// What one fixed-rate run cost.
struct CostRun {
    label: String,
    accepted: u64,
    rate: f64,
    /// CPU per process over the run and the drain after it.
    cpu: Vec<Duration>,
    /// Requests to the broker over the run and the drain after it.
    requests: Requests,
    get_p99: f64,
    list_p99: f64,
    unseen: usize,
}

/// Where the `cost` suite finds the stack's processes and their metrics.
pub struct StackProcesses<'a> {
    /// ingest-api's address.
    pub addr: &'a str,
    /// Where up.sh keeps the pids.
    pub pid_dir: &'a Path,
    /// The writer's and the projector's ops addresses.
    pub ops_addrs: &'a [String],
}

/// CPU milliseconds per 1,000 traces of each process of the stack at a fixed rate (single POSTs
/// and batches of 100), the idle stack's CPU after them, and the highest single-POST rate as a fraction of a
/// raw producer's in the same run. CPU comes from `/proc` (Postgres: the postmaster and every
/// backend) and covers the load and the consumers' drain after it; freshness is measured in a
/// separate 15 s run at the same rate, whose polling would otherwise count as Postgres's work.
pub async fn cost(
    env: &StackEnv,
    root: &Path,
    stack: StackProcesses<'_>,
    rate: f64,
    duration: Duration,
    idle: Duration,
) -> anyhow::Result<()> {
    let StackProcesses {
        addr,
        pid_dir,
        ops_addrs,
    } = stack;
    let procs = stack_processes(
        pid_dir,
        &["ingest-api", "broker", "writer", "projector", "postgres"],
        "postgres",
    );
    let metric_addrs: Vec<&str> = std::iter::once(addr)
        .chain(ops_addrs.iter().map(String::as_str))
        .collect();
    anyhow::ensure!(
        procs.len() == 5,
        "need the pids of ingest-api, broker, writer, projector and postgres in {}: start the stack with ./infra/up.sh",
        pid_dir.display()
    );
    let pool = DbSettings::for_url(&env.database_url).pool()?;

    let memory = |procs: &[ProcessSamples]| -> Vec<f64> {
        procs
            .iter()
            .map(|p| p.memory_mib().unwrap_or(f64::NAN))
            .collect()
    };

    let mut runs = Vec::new();
    for (label, batch, concurrency) in [
        ("single POSTs", 0usize, 64usize),
        ("batches of 100", 100, 4),
    ] {
        eprintln!(
            "{label} at {rate:.0} traces/s for {} s...",
            duration.as_secs()
        );
        // A paced load of `seconds` whose acknowledgements go to the returned receiver.
        let paced = |seconds: Duration, seed: u64| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Ack>();
            let spec = LoadSpec {
                batch,
                ack_tx: Some(tx),
                ..stack_load(
                    addr,
                    root,
                    concurrency,
                    Stop::After(seconds),
                    Some(rate),
                    seed,
                )
            };
            (spec, rx)
        };
        let (spec, rx) = paced(duration, 7 + batch as u64);
        let before = cpu_snapshot(&procs);
        let requests_before = broker_requests(&metric_addrs).await?;
        let (report, unseen) = load_until_drained(&pool, spec, rx).await?;
        let cpu = cpu_snapshot(&procs)
            .iter()
            .zip(&before)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        tokio::time::sleep(STATS_LAG).await;
        let requests = broker_requests(&metric_addrs).await?.minus(requests_before);
        // Freshness in a shorter run of its own: its polling would add to Postgres's CPU.
        let (spec, rx) = paced(duration.min(Duration::from_secs(15)), 17 + batch as u64);
        let mut f = load_with_freshness(&pool, spec, rx).await?;
        let (_, get_p99, _) = quantiles(&mut f.get_ms);
        let (_, list_p99, _) = quantiles(&mut f.list_ms);
        runs.push(CostRun {
            label: label.to_owned(),
            accepted: report.accepted,
            rate: report.accepted_per_sec(),
            cpu,
            requests,
            get_p99,
            list_p99,
            unseen: unseen + f.unseen,
        });
    }

    // The idle stack is measured after the fixed-rate runs, in its steady state: right after
    // start-up a JVM broker is still compiling its hot paths.
    eprintln!("idle stack, {} s...", idle.as_secs());
    let before = cpu_snapshot(&procs);
    let requests_before = broker_requests(&metric_addrs).await?;
    tokio::time::sleep(idle).await;
    let idle_requests = broker_requests(&metric_addrs).await?.minus(requests_before);
    let idle_cpu: Vec<f64> = cpu_snapshot(&procs)
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b).as_secs_f64() / idle.as_secs_f64() * 100.0)
        .collect();
    let idle_memory = memory(&procs);

    eprintln!(
        "highest single-POST rate (c=128, {} s)...",
        duration.as_secs().min(20)
    );
    let ingest_before = procs[0].cpu_total().unwrap_or_default();
    let max = load::run(stack_load(
        addr,
        root,
        128,
        Stop::After(duration.min(Duration::from_secs(20))),
        None,
        11,
    ))
    .await;
    let ingest_at_max = procs[0]
        .cpu_total()
        .unwrap_or_default()
        .saturating_sub(ingest_before);
    eprintln!("raw producer, same broker...");
    let raw = produce_raw(env, 200_000).await?;

    let end_memory = memory(&procs);
    let ours = |cpu: &[Duration]| -> Duration { cpu[0] + cpu[2] + cpu[3] };
    // One cell per run.
    let cells = |cell: &dyn Fn(&CostRun) -> String| -> String {
        runs.iter().map(cell).collect::<Vec<_>>().join(" | ")
    };
    println!(
        "| process | {} | idle, % of a core |",
        cells(&|r| format!("{}: CPU ms per 1,000 traces", r.label))
    );
    println!("| --- |{} ---: |", " ---: |".repeat(runs.len()));
    let per_1000 = |d: Duration, n: u64| d.as_secs_f64() * 1000.0 / n.max(1) as f64 * 1000.0;
    for (i, p) in procs.iter().enumerate() {
        println!(
            "| {} | {} | {:.1} |",
            p.name,
            cells(&|r| format!("{:.0}", per_1000(r.cpu[i], r.accepted))),
            idle_cpu[i]
        );
    }
    println!(
        "| ours (ingest-api + writer + projector) | {} | {:.1} |",
        cells(&|r| format!("{:.0}", per_1000(ours(&r.cpu), r.accepted))),
        idle_cpu[0] + idle_cpu[2] + idle_cpu[3]
    );
    println!(
        "| **total** | {} | {:.1} |",
        cells(&|r| format!(
            "**{:.0}**",
            per_1000(r.cpu.iter().sum::<Duration>(), r.accepted)
        )),
        idle_cpu.iter().sum::<f64>()
    );
    let per_1000_requests = |n: f64, traces: u64| n * 1000.0 / traces.max(1) as f64;
    for kind in ["produce", "fetch", "produce + fetch"] {
        let count = |r: &Requests| match kind {
            "produce" => r.produce,
            "fetch" => r.fetch,
            _ => r.produce + r.fetch,
        };
        println!(
            "| broker requests per 1,000 traces: {kind} | {} | {:.1}/s |",
            cells(&|r| format!("{:.0}", per_1000_requests(count(&r.requests), r.accepted))),
            count(&idle_requests) / idle.as_secs_f64()
        );
    }
    println!();
    println!("| process | RSS MiB, idle after the fixed-rate runs | RSS MiB, at the end |");
    println!("| --- | ---: | ---: |");
    for (i, p) in procs.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} |",
            p.name, idle_memory[i], end_memory[i]
        );
    }
    println!("(Postgres: the summed PSS of the postmaster and its backends.)");
    println!();
    for r in &runs {
        println!(
            "{}: {} accepted at {:.0}/s (target {rate:.0}); freshness p99 {:.0} ms (GET by id), {:.0} ms (list){}",
            r.label,
            r.accepted,
            r.rate,
            r.get_p99,
            r.list_p99,
            if r.unseen > 0 {
                format!("; {} sampled traces not visible in time", r.unseen)
            } else {
                String::new()
            }
        );
    }
    println!(
        "highest single-POST rate with the consumers running: {:.0}/s (p99 {:.1} ms, errors: {}) = {:.0}% of the raw producer's {raw:.0}/s",
        max.accepted_per_sec(),
        max.latency_ms(0.99),
        max.errors(),
        max.accepted_per_sec() / raw * 100.0
    );
    println!(
        "ingest-api CPU per single POST at that rate: {:.0} µs",
        ingest_at_max.as_secs_f64() * 1e6 / max.accepted.max(1) as f64
    );
    // One line for scripts comparing runs (bench/cost-compare.sh).
    let json = serde_json::json!({
        "processes": procs.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "idle_cpu_percent": idle_cpu,
        "idle_memory_mib": idle_memory,
        "end_memory_mib": end_memory,
        "idle_requests_per_sec": {
            "produce": idle_requests.produce / idle.as_secs_f64(),
            "fetch": idle_requests.fetch / idle.as_secs_f64(),
        },
        "runs": runs.iter().map(|r| serde_json::json!({
            "label": r.label,
            "accepted": r.accepted,
            "rate": r.rate,
            "cpu_ms_per_1000": r.cpu.iter().map(|d| per_1000(*d, r.accepted)).collect::<Vec<_>>(),
            "produce_per_1000": per_1000_requests(r.requests.produce, r.accepted),
            "fetch_per_1000": per_1000_requests(r.requests.fetch, r.accepted),
            "get_p99_ms": r.get_p99,
            "list_p99_ms": r.list_p99,
            "unseen": r.unseen,
        })).collect::<Vec<_>>(),
        "max_rate": max.accepted_per_sec(),
        "max_errors": max.errors(),
        "raw_rate": raw,
        "ingest_us_per_post_at_max": ingest_at_max.as_secs_f64() * 1e6 / max.accepted.max(1) as f64,
    });
    println!("COST {json}");
    Ok(())
}
