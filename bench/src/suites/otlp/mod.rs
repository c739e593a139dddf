//! `tunix-bench otlp`: OTLP/HTTP intake (`POST /v1/traces`, protobuf) next to the JSON batch
//! endpoint (`POST /api/traces/batch`) with the same traces, as same-run ratios (issue "OTLP
//! intake": protobuf batches of 100 inference spans cost no more ingest-api CPU per trace than
//! the JSON batch; spans/s into the full pipeline next to the JSON path).
//!
//! Both wires carry batches of 100 of the 550 real traces (`testdata/dev-reasoning-v2.jsonl`),
//! the same windows on both: JSON as the original traces, OTLP as one GenAI chat span each
//! (`gen_ai.input.messages` the prompt, `gen_ai.output.messages` one reasoning part per step and
//! the answer as text), with fresh random trace and span ids in every request, so every span is
//! a new trace. Each round, alternating which wire goes first:
//! - a paced run at `--rate` traces/s per wire (4 connections): CPU ms per 1,000 traces of every
//!   process of the stack from `/proc`, over the run and the consumers' drain after it (until
//!   each connection's last trace is in `traces` and in the list view);
//! - a run as fast as answered (`--connections`): accepted traces/s, and the rate into the full
//!   pipeline, i.e. the traces over the time until the last of them is in `traces` and the list.
//!
//! Every answer is checked (202 with 100 ids; 200 with an `ExportTraceServiceResponse` without
//! `partial_success`); any other answer fails the run.
//!
//! Run: `target/release/tunix-bench otlp --rate 1500 --seconds 20 --max-seconds 15 --rounds 3`

mod bodies;
mod client;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use sqlx::PgPool;
use tunix_pipeline::db::DbSettings;
use uuid::Uuid;

use super::{stack_processes, StackEnv};
use crate::report::ProcessSamples;
use bodies::{Batches, Wire};
use client::Load;

/// What one run measures.
pub struct OtlpSpec {
    /// ingest-api address.
    pub addr: String,
    /// Traces per second of the paced runs.
    pub rate: f64,
    /// Seconds per paced run.
    pub seconds: u64,
    /// Seconds per run as fast as answered.
    pub max_seconds: u64,
    /// Connections of the runs as fast as answered.
    pub connections: usize,
    /// Rounds (medians are reported).
    pub rounds: usize,
    /// Where up.sh keeps the pids.
    pub pid_dir: PathBuf,
}

/// The stack's processes, in the table's order.
const PROCESSES: [&str; 5] = ["ingest-api", "writer", "projector", "broker", "postgres"];
/// How long the consumers may take to show a load's last traces after it ends.
const GRACE: Duration = Duration::from_secs(120);

/// One wire's figures in one round.
#[derive(Default, Clone)]
struct Figures {
    /// CPU ms per 1,000 traces per process (paced run and drain), in [`PROCESSES`] order.
    cpu: Vec<f64>,
    paced_rate: f64,
    paced_p99: f64,
    max_rate: f64,
    pipeline_rate: f64,
    drain_s: f64,
    max_p99: f64,
    /// ingest-api CPU ms per 1,000 traces in the run as fast as answered.
    max_ingest_cpu: f64,
    /// Mean stored payload (`traces.payload`) of the paced run's last traces, in bytes.
    stored_bytes: f64,
}

/// Runs the suite and prints the table.
pub async fn otlp(env: &StackEnv, root: &Path, spec: OtlpSpec) -> anyhow::Result<()> {
    let procs = stack_processes(&spec.pid_dir, &PROCESSES, "postgres");
    if procs.len() != PROCESSES.len() {
        bail!(
            "need the pids of {} in {}: start the stack with ./infra/up.sh",
            PROCESSES.join(", "),
            spec.pid_dir.display()
        );
    }
    let pool = DbSettings::for_url(&env.database_url).pool()?;
    let batches = Batches::new(root);
    let load = |wire, connections, rate, seconds| Load {
        addr: spec.addr.clone(),
        wire,
        connections,
        rate,
        duration: Duration::from_secs(seconds),
        api_key: std::env::var("TUNIX_API_KEY").ok(),
    };
    // A short warm-up on each wire: fails early when the stack lacks `/v1/traces`.
    for wire in [Wire::Json, Wire::Otlp] {
        let o = client::run(&load(wire, 1, Some(500.0), 2), &batches).await;
        checked(wire, &o)?;
        visible_after(&pool, &o.last_ids).await?;
    }
    let mut rounds: Vec<[Figures; 2]> = Vec::new();
    for round in 0..spec.rounds {
        let order = if round % 2 == 0 {
            [Wire::Json, Wire::Otlp]
        } else {
            [Wire::Otlp, Wire::Json]
        };
        let mut figures = [Figures::default(), Figures::default()];
        for wire in order {
            eprintln!(
                "round {}/{}: {} at {:.0} traces/s for {} s...",
                round + 1,
                spec.rounds,
                wire.label(),
                spec.rate,
                spec.seconds
            );
            let f = &mut figures[wire as usize];
            let before = cpu(&procs);
            let o = client::run(&load(wire, 4, Some(spec.rate), spec.seconds), &batches).await;
            checked(wire, &o)?;
            visible_after(&pool, &o.last_ids).await?;
            f.cpu = cpu(&procs)
                .iter()
                .zip(&before)
                .map(|(a, b)| per_1000(a.saturating_sub(*b), o.accepted))
                .collect();
            f.paced_rate = o.rate();
            f.paced_p99 = o.p99_ms();
            f.stored_bytes = sqlx::query_scalar(
                "SELECT avg(octet_length(payload::text))::float8 FROM traces WHERE id = ANY($1)",
            )
            .bind(&o.last_ids)
            .fetch_one(&pool)
            .await?;
        }
        for wire in order {
            eprintln!(
                "round {}/{}: {} as fast as answered (c={}) for {} s...",
                round + 1,
                spec.rounds,
                wire.label(),
                spec.connections,
                spec.max_seconds
            );
            let f = &mut figures[wire as usize];
            let ingest_before = procs[0].cpu_total().unwrap_or_default();
            let started = Instant::now();
            let o = client::run(
                &load(wire, spec.connections, None, spec.max_seconds),
                &batches,
            )
            .await;
            let ingest = procs[0].cpu_total().unwrap_or_default();
            checked(wire, &o)?;
            let load_end = started + o.elapsed;
            let seen = visible_after(&pool, &o.last_ids).await?;
            f.max_rate = o.rate();
            f.max_p99 = o.p99_ms();
            f.max_ingest_cpu = per_1000(ingest.saturating_sub(ingest_before), o.accepted);
            f.pipeline_rate = o.accepted as f64 / seen.duration_since(started).as_secs_f64();
            f.drain_s = seen.saturating_duration_since(load_end).as_secs_f64();
        }
        for wire in [Wire::Json, Wire::Otlp] {
            let f = &figures[wire as usize];
            eprintln!(
                "  {}: CPU ms/1,000 {:?}; paced {:.0}/s p99 {:.1} ms; max {:.0}/s p99 {:.1} ms, pipeline {:.0}/s (drain {:.1} s), ingest-api {:.0} ms/1,000",
                wire.label(),
                f.cpu.iter().map(|c| c.round()).collect::<Vec<_>>(),
                f.paced_rate,
                f.paced_p99,
                f.max_rate,
                f.max_p99,
                f.pipeline_rate,
                f.drain_s,
                f.max_ingest_cpu
            );
        }
        rounds.push(figures);
    }
    print(&spec, &batches, &rounds);
    Ok(())
}

fn cpu(procs: &[ProcessSamples]) -> Vec<Duration> {
    procs
        .iter()
        .map(|p| p.cpu_total().unwrap_or_default())
        .collect()
}

fn per_1000(d: Duration, traces: u64) -> f64 {
    d.as_secs_f64() * 1000.0 / traces.max(1) as f64 * 1000.0
}

/// Fails the run on any unexpected answer.
fn checked(wire: Wire, o: &client::Outcome) -> anyhow::Result<()> {
    if !o.failures.is_empty() || o.accepted == 0 {
        bail!(
            "{}: unexpected answers {:?} ({} traces accepted); first: {}",
            wire.label(),
            o.failures,
            o.accepted,
            o.example.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// Polls every 50 ms until every id is in `traces` and in the list view; when they all were.
async fn visible_after(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + GRACE;
    loop {
        let (stored, listed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM traces WHERE id = ANY($1)),
                    (SELECT count(*) FROM trace_list WHERE id = ANY($1))",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?;
        if stored == ids.len() as i64 && listed == ids.len() as i64 {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "after {GRACE:?}, {stored} of the last {} acknowledged traces are in `traces` and {listed} in the list: are the writer and projector running?",
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print(spec: &OtlpSpec, batches: &Batches, rounds: &[[Figures; 2]]) {
    // Median of one figure per wire, and the median of the rounds' OTLP / JSON ratios.
    let row = |name: &str, get: &dyn Fn(&Figures) -> f64, digits: usize| {
        let json = median(rounds.iter().map(|r| get(&r[0])).collect());
        let otlp = median(rounds.iter().map(|r| get(&r[1])).collect());
        let ratio = median(rounds.iter().map(|r| get(&r[1]) / get(&r[0])).collect());
        println!("| {name} | {json:.digits$} | {otlp:.digits$} | {ratio:.2} |");
        ratio
    };
    println!();
    println!(
        "otlp: batches of 100 real traces; medians of {} rounds and median of the rounds' OTLP / JSON ratios, same run",
        rounds.len()
    );
    println!("| medians of {} rounds | JSON batch (`POST /api/traces/batch`) | OTLP protobuf (`POST /v1/traces`) | OTLP / JSON |", rounds.len());
    println!("| --- | ---: | ---: | ---: |");
    let at = format!("at {:.0} traces/s", spec.rate);
    let mut ingest_ratio = f64::NAN;
    for (i, name) in PROCESSES.iter().enumerate() {
        let r = row(
            &format!("{at}: {name}, CPU ms / 1,000 traces"),
            &|f| f.cpu[i],
            0,
        );
        if i == 0 {
            ingest_ratio = r;
        }
    }
    row(
        &format!("{at}: ours (ingest-api + writer + projector)"),
        &|f| f.cpu[..3].iter().sum(),
        0,
    );
    row(&format!("{at}: total"), &|f| f.cpu.iter().sum(), 0);
    row(&format!("{at}: accepted/s"), &|f| f.paced_rate, 0);
    row(&format!("{at}: p99 ms per request"), &|f| f.paced_p99, 1);
    let c = spec.connections;
    row(
        &format!("as fast as answered (c={c}): accepted traces (spans)/s"),
        &|f| f.max_rate,
        0,
    );
    row(
        &format!("as fast as answered (c={c}): into the full pipeline, traces (spans)/s"),
        &|f| f.pipeline_rate,
        0,
    );
    row(
        "as fast as answered: drain after the load, s",
        &|f| f.drain_s,
        1,
    );
    row("as fast as answered: p99 ms per request", &|f| f.max_p99, 1);
    row(
        "as fast as answered: ingest-api CPU ms / 1,000 traces",
        &|f| f.max_ingest_cpu,
        0,
    );
    let (j, o) = (
        batches.bytes_per_trace(Wire::Json),
        batches.bytes_per_trace(Wire::Otlp),
    );
    println!(
        "| request bytes per trace | {j:.0} | {o:.0} | {:.2} |",
        o / j
    );
    row("stored payload bytes per trace", &|f| f.stored_bytes, 0);
    println!();
    println!(
        "goal: OTLP protobuf ingest-api CPU per trace <= JSON batch's (same run): {:.2}x, {}",
        ingest_ratio,
        if ingest_ratio <= 1.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
