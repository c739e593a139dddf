//! Printing results, and sampling the memory and CPU of running services from `/proc`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::gen::Shape;
use crate::load::LoadReport;

/// One row of the ingest table.
pub struct IngestRow {
    label: String,
    accepted_per_sec: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: String,
    rss_mb: Option<f64>,
    vs_raw: Option<f64>,
    cpu_us_per_trace: Option<f64>,
}

/// Builds a row from a load report.
pub fn ingest_row(
    shape: &Shape,
    concurrency: usize,
    batch: usize,
    r: &LoadReport,
    rss_peak_kb: Option<u64>,
    raw: Option<f64>,
    cpu: Option<Duration>,
) -> IngestRow {
    let mode = if batch == 0 {
        "single POST".to_owned()
    } else {
        format!("batch of {batch}")
    };
    IngestRow {
        label: format!("{shape}, {mode}, c={concurrency}"),
        accepted_per_sec: r.accepted_per_sec(),
        p50: r.latency_ms(0.5),
        p99: r.latency_ms(0.99),
        p999: r.latency_ms(0.999),
        errors: r.errors(),
        rss_mb: rss_peak_kb.map(|kb| kb as f64 / 1024.0),
        vs_raw: raw.map(|raw| r.accepted_per_sec() / raw),
        cpu_us_per_trace: cpu.map(|c| c.as_secs_f64() * 1e6 / r.accepted.max(1) as f64),
    }
}

/// Prints the ingest table (Markdown).
pub fn print_ingest(rows: &[IngestRow], raw: Option<f64>) {
    if let Some(raw) = raw {
        println!("raw producer rate to the same broker: {raw:.0} events/s\n");
    }
    println!("| load | accepted/s | p50 ms | p99 ms | p99.9 ms | errors | ingest-api peak RSS MB | ingest-api CPU µs/trace | vs raw producer |");
    println!("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
            r.label,
            r.accepted_per_sec,
            r.p50,
            r.p99,
            r.p999,
            r.errors,
            r.rss_mb.map_or("-".to_owned(), |m| format!("{m:.0}")),
            r.cpu_us_per_trace
                .map_or("-".to_owned(), |c| format!("{c:.1}")),
            r.vs_raw
                .map_or("-".to_owned(), |v| format!("{:.0}%", v * 100.0)),
        );
    }
}

/// Resident set size of a process, in KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    proc_kb(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// The value in KiB of the line starting with `key` in a /proc file of `key: value kB` lines.
fn proc_kb(path: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system) of a process so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Reads a pid from a pid file.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Samples a process's RSS every 500 ms and keeps the peak.
pub struct RssSampler {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Option<u64>>,
}

impl RssSampler {
    /// Starts sampling the process in `pid_file` (nothing happens if it does not exist).
    pub fn start(pid_file: &Path) -> RssSampler {
        RssSampler::every(read_pid(pid_file), Duration::from_millis(500))
    }

    /// Starts sampling process `pid` every `period`.
    pub fn every(pid: Option<u32>, period: Duration) -> RssSampler {
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let pid = pid?;
            let mut peak = 0;
            loop {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                tokio::select! {
                    _ = tokio::time::sleep(period) => {},
                    _ = token.cancelled() => return Some(peak),
                }
            }
        });
        RssSampler { stop, task }
    }

    /// Stops and returns the peak RSS in KiB.
    pub async fn stop(self) -> Option<u64> {
        self.stop.cancel();
        self.task.await.ok().flatten()
    }
}

/// Proportional set size (shared pages split among the processes sharing them) in KiB.
pub fn pss_kb(pid: u32) -> Option<u64> {
    proc_kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// The direct children of `pid` (for Postgres: its backends and background workers).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Resource samples of one process (or a process and its children) over a run.
pub struct ProcessSamples {
    /// Service name.
    pub name: String,
    pid: u32,
    /// Count the children too (Postgres: the work happens in its backends). CPU is summed over
    /// the live processes, memory is their summed PSS, so shared buffers count once.
    tree: bool,
    last_cpu: Option<(Instant, Duration)>,
    /// (seconds since start, RSS MiB, CPU % of one core) per sample.
    pub samples: Vec<(f64, f64, f64)>,
}

impl ProcessSamples {
    /// Tracks `pid` under `name`.
    pub fn new(name: &str, pid: u32) -> ProcessSamples {
        ProcessSamples {
            name: name.to_owned(),
            pid,
            tree: false,
            last_cpu: None,
            samples: Vec::new(),
        }
    }

    /// Tracks `pid` and its children under `name`.
    pub fn tree(name: &str, pid: u32) -> ProcessSamples {
        ProcessSamples {
            tree: true,
            ..ProcessSamples::new(name, pid)
        }
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid];
        if self.tree {
            pids.extend(children(self.pid));
        }
        pids
    }

    /// CPU time used so far (user + system), summed over the tree when tracking children.
    pub fn cpu_total(&self) -> Option<Duration> {
        let pids = self.pids();
        cpu_time(self.pid).map(|own| {
            own + pids[1..]
                .iter()
                .filter_map(|p| cpu_time(*p))
                .sum::<Duration>()
        })
    }

    /// Memory now, in MiB: RSS, or the summed PSS of the tree when tracking children.
    pub fn memory_mib(&self) -> Option<f64> {
        let kb = if self.tree {
            self.pids()
                .iter()
                .filter_map(|p| pss_kb(*p))
                .reduce(|a, b| a + b)
        } else {
            rss_kb(self.pid)
        };
        kb.map(|kb| kb as f64 / 1024.0)
    }

    /// Takes one sample.
    pub fn sample(&mut self, since: Instant) {
        let now = Instant::now();
        let pids = self.pids();
        // A backend that exited between samples takes its CPU time with it: tree CPU reads low
        // when connections churn (the pipeline's pools keep theirs open).
        let cpu = cpu_time(self.pid).map(|own| {
            own + pids[1..]
                .iter()
                .filter_map(|p| cpu_time(*p))
                .sum::<Duration>()
        });
        let pct = match (self.last_cpu, cpu) {
            (Some((t0, c0)), Some(c1)) => {
                (c1.saturating_sub(c0)).as_secs_f64() / now.duration_since(t0).as_secs_f64() * 100.0
            }
            _ => f64::NAN,
        };
        if let Some(c) = cpu {
            self.last_cpu = Some((now, c));
        }
        let kb = if self.tree {
            pids.iter().filter_map(|p| pss_kb(*p)).reduce(|a, b| a + b)
        } else {
            rss_kb(self.pid)
        };
        let rss = kb.map_or(f64::NAN, |kb| kb as f64 / 1024.0);
        self.samples
            .push((now.duration_since(since).as_secs_f64(), rss, pct));
    }
}
