//! The tools the speed suite drives: wrk (HTTP load), pgbench (Postgres load), curl, the no-op
//! service, and its scratch directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;
use uuid::Uuid;

use super::Measure;
use crate::suites::find_root;

pub(super) fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

pub(super) async fn post_ndjson(addr: &str, body: &str) -> anyhow::Result<u16> {
    let file = std::env::temp_dir().join(format!("tunix-speed-seed-{}.ndjson", std::process::id()));
    std::fs::write(&file, body)?;
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/x-ndjson", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{addr}/api/traces/batch"))
        .output()
        .await?;
    let _ = std::fs::remove_file(&file);
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

pub(super) async fn fetch(url: &str) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("curl").args(["-sf", url]).output().await?;
    if !out.status.success() {
        bail!("GET {url} failed");
    }
    Ok(out.stdout)
}

/// `wrk -t1 -c64 --latency` for `secs` seconds; any non-2xx answer fails the run.
pub(super) async fn wrk(url: &str, script: Option<&Path>, secs: u64) -> anyhow::Result<Measure> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c64", "--latency", &format!("-d{secs}s")]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
        cmd.current_dir(find_root(&std::env::current_dir()?));
    }
    let out = cmd.arg(url).output().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses") || l.contains("Socket errors"))
    {
        bail!("wrk {url}: {}", line.trim());
    }
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no rate in wrk's output: {text}"))?;
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_ms(v.trim()));
    Ok(Measure { rate, p99_ms })
}

/// wrk's durations: `812.00us`, `12.34ms`, `1.02s`.
fn duration_ms(v: &str) -> Option<f64> {
    let (n, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    n.parse::<f64>().ok().map(|n| n * scale)
}

/// pgbench with 15 clients on one thread (the anchor; ingest-api reads on fewer,
/// `DB_POOL_SIZE`) for `secs` seconds, with the read connections' `jit = off`; returns
/// transactions/s.
pub(super) async fn pgbench(
    url: &str,
    script: &Path,
    mode: &str,
    vars: &[(String, String)],
    secs: u64,
) -> anyhow::Result<Measure> {
    let mut cmd = Command::new("pgbench");
    cmd.env("PGOPTIONS", "-c jit=off");
    cmd.args([
        "-n",
        "-M",
        mode,
        "-c",
        "15",
        "-j",
        "1",
        "-T",
        &secs.to_string(),
    ])
    .arg("-f")
    .arg(script);
    for (k, v) in vars {
        cmd.arg("-D").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(url).output().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench {}: {}{}",
            script.display(),
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))?;
    Ok(Measure::rate(tps))
}

/// The no-op service, killed on drop.
pub(super) struct Noop {
    child: tokio::process::Child,
    pub(super) url: String,
}

impl Noop {
    pub(super) async fn start(root: &Path, get_body: &Path) -> anyhow::Result<Noop> {
        let bin = root.join("target/release/tunix-noop");
        if !bin.exists() {
            bail!(
                "{} missing: cargo build --release -p tunix-bench",
                bin.display()
            );
        }
        let addr = "127.0.0.1:18080";
        let mut child = Command::new(bin)
            .args(["--addr", addr, "--get-body"])
            .arg(get_body)
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://{addr}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while fetch(&format!("{url}/api/traces/{}", Uuid::nil()))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                bail!("tunix-noop exited ({status}); is {addr} in use?");
            }
            if std::time::Instant::now() > deadline {
                bail!("tunix-noop did not answer within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Noop { child, url })
    }
}

impl Drop for Noop {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The suite's scripts and files, removed when it ends (also on an error).
pub(super) struct WorkDir(pub(super) PathBuf);

impl WorkDir {
    pub(super) fn create() -> anyhow::Result<WorkDir> {
        let dir = std::env::temp_dir().join(format!("tunix-speed-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
