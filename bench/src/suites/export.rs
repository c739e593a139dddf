//! `tunix-bench export`: dataset creation and export rates, and ingest-api's memory meanwhile.
//!
//! Loads `rows` synthetic traces (the read benchmark's loader: one real ~0.5 KB trace's payload,
//! list rows with facets and terms, scores), starts the release `tunix-ingest-api` and
//! `tunix-projector` binaries as processes on a fresh topic and that database, creates a dataset
//! of every trace (with a 10% eval split), then exports it over HTTP as JSONL and as Parquet,
//! reading the stream to the end. Next to it, in the same run: `COPY (SELECT payload FROM traces
//! ... in member order) TO STDOUT` of the same rows, the database's own rate. ingest-api's RSS is
//! sampled every 20 ms during each step.
//!
//! Run: `cargo build --release --bins && target/release/tunix-bench export --rows 1000000`

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::report::{rss_kb, RssSampler};
use crate::suites::read::load_read_rows;
use crate::suites::StackEnv;

/// A service binary next to this one (`cargo build --release` builds them all).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build --release --bins` first",
        path.display()
    );
    Ok(path)
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// Samples ingest-api's RSS often enough to catch a short export's peak.
fn sample(pid: u32) -> RssSampler {
    RssSampler::every(Some(pid), Duration::from_millis(20))
}

/// A sampler's peak, in MB.
async fn peak_mb(sampler: RssSampler) -> f64 {
    sampler.stop().await.unwrap_or(0) as f64 / 1024.0
}

async fn connect(addr: &str) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One streamed GET: (time to first byte, total time, bytes).
async fn stream(addr: &str, path: &str) -> anyhow::Result<(Duration, Duration, u64)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let started = Instant::now();
    let req = http::Request::get(path)
        .header("host", addr)
        .body(Empty::new())?;
    let resp = sender.send_request(req).await?;
    anyhow::ensure!(resp.status() == 200, "{path}: {}", resp.status());
    let mut body = resp.into_body();
    let mut first = None;
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            first.get_or_insert_with(|| started.elapsed());
            bytes += data.len() as u64;
        }
    }
    Ok((first.unwrap_or_default(), started.elapsed(), bytes))
}

/// Runs the suite.
pub async fn export(env: &StackEnv, rows: i64) -> anyhow::Result<()> {
    let (url, pool) = env.fresh_database("tunix_bench_export").await?;
    load_read_rows(&pool, rows).await?;
    let topic = env.fresh_topic("bench_export").await?;
    let api_addr = free_addr()?;
    let common = |cmd: &mut Command| {
        cmd.env("DATABASE_URL", &url)
            .env("KAFKA_BROKERS", &env.brokers)
            .env("KAFKA_TOPIC", &topic.topic)
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
    };
    let mut projector = Command::new(sibling("tunix-projector")?);
    common(&mut projector);
    projector
        .env("PROJECTOR_OPS_ADDR", free_addr()?)
        .env("PROJECTOR_INSTANCE_ID", "bench-projector");
    let _projector = Proc(projector.spawn()?);
    let mut api = Command::new(sibling("tunix-ingest-api")?);
    common(&mut api);
    api.env("API_ADDR", &api_addr);
    let api = Proc(api.spawn()?);
    let pid = api.0.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = connect(&api_addr).await {
            let req = http::Request::get("/readyz")
                .header("host", &api_addr)
                .body(Full::new(Bytes::new()))?;
            if let Ok(r) = s.send_request(req).await {
                if r.status() == 200 {
                    break;
                }
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "ingest-api did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idle_mb = rss_kb(pid).unwrap_or(0) as f64 / 1024.0;

    // Create: every trace, 10% eval.
    eprintln!("creating a dataset of {rows} traces...");
    let sampler = sample(pid);
    let started = Instant::now();
    let body = serde_json::json!({"name": "bench", "version": "1", "split": {"eval_fraction": 0.1, "seed": 1}});
    let mut s = connect(&api_addr).await?;
    let req = http::Request::post("/api/datasets")
        .header("host", &api_addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = s.send_request(req).await?;
    let status = resp.status();
    let answer = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == 201 || status == 202,
        "create: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    // 202: the projector is still folding the membership; wait until it is ready.
    loop {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM datasets WHERE name = 'bench'")
                .fetch_optional(&pool)
                .await?;
        if state.as_deref() == Some("ready") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let create_time = started.elapsed();
    let create_mb = peak_mb(sampler).await;
    let members: i64 = sqlx::query_scalar("SELECT member_count FROM datasets WHERE name = 'bench'")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        members == rows,
        "the dataset has {members} of {rows} traces"
    );

    // COPY of the same rows in the same order: the database's own rate.
    let copy_started = Instant::now();
    let mut copy_bytes = 0u64;
    {
        let mut conn = pool.acquire().await?;
        let mut out = conn
            .copy_out_raw(
                "COPY (SELECT t.payload FROM dataset_members m JOIN traces t ON t.id = m.trace_id
                       JOIN datasets d ON d.build_id = m.build_id
                       WHERE d.name = 'bench' ORDER BY m.position) TO STDOUT",
            )
            .await?;
        while let Some(chunk) = out.try_next().await? {
            copy_bytes += chunk.len() as u64;
        }
    }
    let copy_time = copy_started.elapsed();

    let mut results = Vec::new();
    for (name, path) in [
        ("JSONL (format=trace)", "/api/datasets/bench/1/export"),
        (
            "JSONL (format=tunix_sft)",
            "/api/datasets/bench/1/export?format=tunix_sft",
        ),
        ("Parquet", "/api/datasets/bench/1/export?format=parquet"),
    ] {
        eprintln!("exporting {name}...");
        let sampler = sample(pid);
        let (first, total, bytes) = stream(&api_addr, path).await?;
        results.push((name, first, total, bytes, peak_mb(sampler).await));
    }

    let rate = |t: Duration| rows as f64 / t.as_secs_f64();
    println!(
        "dataset of {rows} traces (~0.5 KB each, with scores, 10% eval); ingest-api RSS idle {idle_mb:.0} MB\n"
    );
    println!(
        "| step | time s | rows/s | MB/s | first byte ms | vs COPY | ingest-api peak RSS MB |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| create (select, split, {} chunk events, projector folds) | {:.1} | {:.0} | - | - | - | {create_mb:.0} |",
        (rows as usize).div_ceil(tunix_schemas::dataset::CHUNK_MEMBERS),
        create_time.as_secs_f64(),
        rate(create_time),
    );
    println!(
        "| COPY (SELECT payload ... in member order) TO STDOUT | {:.1} | {:.0} | {:.1} | - | 100% | - |",
        copy_time.as_secs_f64(),
        rate(copy_time),
        copy_bytes as f64 / 1e6 / copy_time.as_secs_f64(),
    );
    for (name, first, total, bytes, peak) in results {
        println!(
            "| export {name} | {:.1} | {:.0} | {:.1} | {:.0} | {:.0}% | {peak:.0} |",
            total.as_secs_f64(),
            rate(total),
            bytes as f64 / 1e6 / total.as_secs_f64(),
            first.as_secs_f64() * 1000.0,
            rate(total) / rate(copy_time) * 100.0,
        );
    }
    drop(api);
    pool.close().await;
    if std::env::var_os("TUNIX_BENCH_KEEP").is_none() {
        env.drop_database(&url).await;
        env.delete_topic(&topic).await;
    } else {
        eprintln!("kept {url}");
    }
    Ok(())
}
