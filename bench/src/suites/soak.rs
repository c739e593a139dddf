//! `tunix-bench soak`: load at a fixed rate for a long time, sampling the RSS and CPU of every
//! process of the local stack, to show whether memory settles.
//!
//! Run: `target/release/tunix-bench soak --rate 3000 --seconds 600`

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{stack_load, stack_processes};
use crate::load::{self, Stop};
use crate::report::ProcessSamples;

/// Load at `rate` for `duration`, sampling RSS and CPU of every service of the stack.
pub async fn soak(
    root: &Path,
    addr: &str,
    rate: f64,
    duration: Duration,
    pid_dir: &Path,
) -> anyhow::Result<()> {
    let mut procs: Vec<ProcessSamples> = stack_processes(
        pid_dir,
        &["ingest-api", "writer", "projector", "broker", "postgres"],
        "postgres (all processes, PSS)",
    );
    anyhow::ensure!(
        !procs.is_empty(),
        "no pids in {}: start the stack with ./infra/up.sh",
        pid_dir.display()
    );
    let stop = CancellationToken::new();
    let spec = stack_load(addr, root, 32, Stop::Token(stop.clone()), Some(rate), 1);
    let started = Instant::now();
    let load = tokio::spawn(load::run(spec));
    let interval = (duration / 20).max(Duration::from_secs(1));
    for p in &mut procs {
        p.sample(started);
    }
    while started.elapsed() < duration {
        tokio::time::sleep(interval.min(duration.saturating_sub(started.elapsed()))).await;
        for p in &mut procs {
            p.sample(started);
        }
        eprintln!(
            "  t={:>4.0}s {}",
            started.elapsed().as_secs_f64(),
            procs
                .iter()
                .map(|p| format!(
                    "{} {:.0} MB",
                    p.name,
                    p.samples.last().map_or(f64::NAN, |s| s.1)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    stop.cancel();
    let r = load.await?;
    println!(
        "soak: {:.0} s at a target of {rate:.0} traces/s: {} accepted ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, errors: {}\n",
        r.elapsed.as_secs_f64(),
        r.accepted,
        r.accepted_per_sec(),
        r.latency_ms(0.5),
        r.latency_ms(0.99),
        r.errors()
    );
    println!("| service | RSS MB at start | RSS MB after 10% | RSS MB at end | max RSS MB | mean CPU % of a core |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for p in &procs {
        let rss: Vec<f64> = p.samples.iter().map(|s| s.1).collect();
        let cpu: Vec<f64> = p
            .samples
            .iter()
            .skip(1)
            .map(|s| s.2)
            .filter(|c| c.is_finite())
            .collect();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            p.name,
            rss.first().copied().unwrap_or(f64::NAN),
            rss.get(rss.len() / 10).copied().unwrap_or(f64::NAN),
            rss.last().copied().unwrap_or(f64::NAN),
            rss.iter().copied().fold(f64::NAN, f64::max),
            cpu.iter().sum::<f64>() / cpu.len().max(1) as f64
        );
    }
    println!("\nRSS samples (MB) every {:.0} s:", interval.as_secs_f64());
    for p in &procs {
        let series: Vec<String> = p.samples.iter().map(|s| format!("{:.0}", s.1)).collect();
        println!("- {}: {}", p.name, series.join(" "));
    }
    Ok(())
}
