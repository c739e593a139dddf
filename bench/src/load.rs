//! The HTTP load generator: workers with one keep-alive HTTP/1.1 connection each post traces (or
//! batches) as fast as allowed, or at a target rate, and record status codes, latencies and the
//! acknowledged ids.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::gen::{Bodies, Shape};

/// When a run ends.
#[derive(Debug, Clone)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many requests in total.
    Requests(u64),
    /// When the token is cancelled.
    Token(CancellationToken),
}

/// What to send, how hard, for how long.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// `host:port` of ingest-api.
    pub addr: String,
    /// Concurrent connections (one request in flight each).
    pub concurrency: usize,
    /// When to stop.
    pub stop: Stop,
    /// Target traces per second over all workers; `None` for as fast as possible.
    pub rate: Option<f64>,
    /// 0: single `POST /api/traces`; n: `POST /api/traces/batch` with n traces per request.
    pub batch: usize,
    /// Trace sizes.
    pub shape: Shape,
    /// `Authorization: Bearer` key, if the API requires one.
    pub api_key: Option<String>,
    /// Send a unique `Idempotency-Key` with every request (ingest-api then checks that the id is
    /// not a deleted trace's, a Postgres lookup).
    pub idempotency_keys: bool,
    /// Keep the acknowledged ids (and when they were acknowledged).
    pub collect_ids: bool,
    /// Seed for generated traces.
    pub seed: u64,
    /// Repository root (for the dataset).
    pub repo_root: PathBuf,
    /// Receives every acknowledgement as it happens (freshness measurements).
    pub ack_tx: Option<tokio::sync::mpsc::UnboundedSender<Ack>>,
}

/// One acknowledged trace.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    /// Its id.
    pub id: Uuid,
    /// When the 2xx arrived.
    pub at: Instant,
}

/// What happened.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Requests that got an answer.
    pub requests: u64,
    /// Traces acknowledged (2xx), counting every item of a batch.
    pub accepted: u64,
    /// Answers by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that failed without an answer (connection refused or reset).
    pub connection_errors: u64,
    /// Latency of every 2xx request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Acknowledged ids, when collected.
    pub acked: Vec<Ack>,
    /// Mean body size sent, in bytes.
    pub body_bytes: usize,
}

impl LoadReport {
    /// The `q` quantile (0..=1) of 2xx latencies, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        quantile_us(&self.latencies_us, q) / 1000.0
    }

    /// Accepted traces per second.
    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A one-line summary of errors, e.g. `503: 12, connection: 3`.
    pub fn errors(&self) -> String {
        let mut parts: Vec<String> = self
            .by_status
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        if self.connection_errors > 0 {
            parts.push(format!("connection: {}", self.connection_errors));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The `q` quantile of unsorted microsecond samples.
pub fn quantile_us(samples: &[u32], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[idx])
}

#[derive(Default)]
struct Shared {
    report: LoadReport,
}

async fn connect(addr: &str) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

/// Runs the load and returns the report.
pub async fn run(spec: LoadSpec) -> LoadReport {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let started = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    let body_bytes = Bodies::new(spec.shape, &spec.repo_root, spec.seed).mean_size();
    for w in 0..spec.concurrency {
        let spec = spec.clone();
        let shared = shared.clone();
        let sent = sent.clone();
        workers.push(tokio::spawn(async move {
            worker(w, spec, shared, sent, started).await;
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let mut shared = std::mem::take(&mut *shared.lock().expect("report lock"));
    shared.report.elapsed = started.elapsed();
    shared.report.body_bytes = body_bytes * spec.batch.max(1);
    shared.report
}

fn done(spec: &LoadSpec, started: Instant, sent: &std::sync::atomic::AtomicU64) -> bool {
    match &spec.stop {
        Stop::After(d) => started.elapsed() >= *d,
        Stop::Requests(n) => sent.load(std::sync::atomic::Ordering::Relaxed) >= *n,
        Stop::Token(t) => t.is_cancelled(),
    }
}

async fn worker(
    w: usize,
    spec: LoadSpec,
    shared: Arc<Mutex<Shared>>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    started: Instant,
) {
    let mut bodies = Bodies::new(
        spec.shape,
        &spec.repo_root,
        spec.seed.wrapping_add(w as u64),
    );
    let path = if spec.batch == 0 {
        "/api/traces"
    } else {
        "/api/traces/batch"
    };
    let per_request = spec.batch.max(1) as f64;
    // Pacing: each worker sends one request every `period`, offset so workers interleave.
    let period = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.concurrency as f64 * per_request / r));
    let mut next_send = started
        + period.map_or(Duration::ZERO, |p| {
            p.mul_f64(w as f64 / spec.concurrency as f64)
        });
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    let mut local = LoadReport::default();
    let mut since_merge = 0u32;
    while !done(&spec, started, &sent) {
        if let Some(p) = period {
            let now = Instant::now();
            if next_send > now {
                tokio::time::sleep(next_send - now).await;
            }
            next_send += p;
        }
        if let Stop::Requests(n) = spec.stop {
            if sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= n {
                break;
            }
        }
        let body = if spec.batch == 0 {
            Bytes::copy_from_slice(bodies.next_body())
        } else {
            let mut b = Vec::with_capacity(bodies.mean_size() * spec.batch + 2);
            b.push(b'[');
            for i in 0..spec.batch {
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(bodies.next_body());
            }
            b.push(b']');
            Bytes::from(b)
        };
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(&spec.addr).await;
            if sender.is_none() {
                local.connection_errors += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let s = sender.as_mut().expect("connected");
        if s.ready().await.is_err() {
            sender = None;
            local.connection_errors += 1;
            continue;
        }
        let mut req = Request::post(path)
            .header("host", &spec.addr)
            .header("content-type", "application/json");
        if let Some(key) = &spec.api_key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        if spec.idempotency_keys {
            req = req.header(
                "idempotency-key",
                format!(
                    "bench-{}-{w}-{}-{}",
                    spec.seed,
                    started.elapsed().as_nanos(),
                    local.requests
                ),
            );
        }
        let req = req.body(Full::new(body)).expect("request");
        let t0 = Instant::now();
        match s.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                let elapsed = t0.elapsed();
                local.requests += 1;
                *local.by_status.entry(status.as_u16()).or_default() += 1;
                if status == StatusCode::ACCEPTED {
                    local
                        .latencies_us
                        .push(elapsed.as_micros().min(u32::MAX as u128) as u32);
                    local.accepted += per_request as u64;
                    if spec.collect_ids || spec.ack_tx.is_some() {
                        let at = Instant::now();
                        if let Ok(body) = body {
                            let before = local.acked.len();
                            collect_ids(&body, at, &mut local.acked);
                            if let Some(tx) = &spec.ack_tx {
                                for ack in &local.acked[before..] {
                                    let _ = tx.send(*ack);
                                }
                            }
                            if !spec.collect_ids {
                                local.acked.truncate(before);
                            }
                        }
                    }
                }
            }
            Err(_) => {
                sender = None;
                local.connection_errors += 1;
            }
        }
        since_merge += 1;
        if since_merge == 256 {
            since_merge = 0;
            merge(&shared, &mut local);
        }
    }
    merge(&shared, &mut local);
}

fn collect_ids(body: &[u8], at: Instant, out: &mut Vec<Ack>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    if let Some(id) = v["id"].as_str().and_then(|s| s.parse().ok()) {
        out.push(Ack { id, at });
    }
    if let Some(ids) = v["ids"].as_array() {
        out.extend(
            ids.iter()
                .filter_map(|i| i.as_str()?.parse().ok())
                .map(|id| Ack { id, at }),
        );
    }
}

fn merge(shared: &Mutex<Shared>, local: &mut LoadReport) {
    let mut s = shared.lock().expect("report lock");
    let r = &mut s.report;
    r.requests += local.requests;
    r.accepted += local.accepted;
    r.connection_errors += local.connection_errors;
    for (k, v) in std::mem::take(&mut local.by_status) {
        *r.by_status.entry(k).or_default() += v;
    }
    r.latencies_us.append(&mut local.latencies_us);
    r.acked.append(&mut local.acked);
    local.requests = 0;
    local.accepted = 0;
    local.connection_errors = 0;
}
