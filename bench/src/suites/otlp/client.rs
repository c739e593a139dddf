//! The `otlp` suite's load: workers with one keep-alive HTTP/1.1 connection each post batches
//! of [`BATCH`] traces on one wire, paced or as fast as answered, and check every answer: 202
//! with 100 ids (JSON), 200 with an `ExportTraceServiceResponse` without `partial_success`
//! (OTLP). Anything else is counted, and the suite fails on it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use prost::Message as _;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tunix_ingest_api::otlp::proto::ExportTraceServiceResponse;
use uuid::Uuid;

use super::bodies::{Batches, Wire, BATCH};

/// One load on one wire.
#[derive(Clone)]
pub(super) struct Load {
    pub(super) addr: String,
    pub(super) wire: Wire,
    pub(super) connections: usize,
    /// Traces per second over all connections; `None`: as fast as answered.
    pub(super) rate: Option<f64>,
    pub(super) duration: Duration,
    pub(super) api_key: Option<String>,
}

/// What a load did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) elapsed: Duration,
    /// Traces in requests answered as expected.
    pub(super) accepted: u64,
    /// Latency of every such request, in microseconds.
    pub(super) latencies_us: Vec<u64>,
    /// Unexpected answers by kind (`<status>`, `connection`, `partial_success`), counted.
    pub(super) failures: BTreeMap<String, u64>,
    /// The first unexpected answer in full.
    pub(super) example: Option<String>,
    /// The last acknowledged trace id of each connection.
    pub(super) last_ids: Vec<Uuid>,
}

impl Outcome {
    pub(super) fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(super) fn p99_ms(&self) -> f64 {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        l.get((l.len().saturating_sub(1) as f64 * 0.99).round() as usize)
            .map_or(f64::NAN, |us| *us as f64 / 1000.0)
    }

    fn fail(&mut self, (kind, what): (String, String)) {
        *self.failures.entry(kind).or_default() += 1;
        self.example.get_or_insert(what);
    }
}

/// Runs `load` with `batches` (cloned for each connection).
pub(super) async fn run(load: &Load, batches: &Batches) -> Outcome {
    let started = Instant::now();
    let workers: Vec<_> = (0..load.connections)
        .map(|w| tokio::spawn(worker(w, load.clone(), batches.clone(), started)))
        .collect();
    let mut total = Outcome::default();
    for w in workers {
        let Ok(o) = w.await else {
            total.fail(("panic".to_owned(), "a worker panicked".to_owned()));
            continue;
        };
        total.accepted += o.accepted;
        total.latencies_us.extend(o.latencies_us);
        for (k, n) in o.failures {
            *total.failures.entry(k).or_default() += n;
        }
        total.last_ids.extend(o.last_ids);
        if total.example.is_none() {
            total.example = o.example;
        }
    }
    total.elapsed = started.elapsed();
    total
}

async fn connect(addr: &str) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn worker(w: usize, load: Load, mut batches: Batches, started: Instant) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = StdRng::from_os_rng();
    // Each connection sends one request every `period`, offset so the connections interleave.
    let period = load
        .rate
        .map(|r| Duration::from_secs_f64(load.connections as f64 * BATCH as f64 / r));
    let mut next_send = started
        + period.map_or(Duration::ZERO, |p| {
            p.mul_f64(w as f64 / load.connections as f64)
        });
    // Start each connection on a different window.
    for _ in 0..w {
        batches.next(Wire::Json, &mut rng);
    }
    let mut sender = None;
    let mut last_id = None;
    while started.elapsed() < load.duration {
        if let Some(p) = period {
            tokio::time::sleep_until(next_send.into()).await;
            next_send += p;
        }
        let body = batches.next(load.wire, &mut rng);
        if sender
            .as_ref()
            .is_none_or(|s: &http1::SendRequest<_>| s.is_closed())
        {
            sender = connect(&load.addr).await;
        }
        let Some(s) = sender.as_mut() else {
            out.fail(("connection".to_owned(), "connect failed".to_owned()));
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut req = Request::post(load.wire.path())
            .header("host", &load.addr)
            .header("content-type", load.wire.content_type());
        if let Some(key) = &load.api_key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let req = req.body(Full::new(body.bytes)).expect("request");
        let t0 = Instant::now();
        let answer = match s.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.into_body().collect().await {
                    Ok(b) => Some((status, b.to_bytes())),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        let Some((status, answer)) = answer else {
            sender = None;
            out.fail(("connection".to_owned(), "no answer".to_owned()));
            continue;
        };
        let elapsed = t0.elapsed();
        match check(load.wire, status, &answer) {
            Ok(json_last) => {
                out.accepted += BATCH as u64;
                out.latencies_us.push(elapsed.as_micros() as u64);
                last_id = json_last.or(body.last_id);
            }
            Err(why) => out.fail(why),
        }
    }
    out.last_ids.extend(last_id);
    out
}

/// Checks one answer; the last trace id it acknowledged (JSON path), or the failure's kind and
/// description.
fn check(wire: Wire, status: u16, body: &[u8]) -> Result<Option<Uuid>, (String, String)> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    let kind = |k: &str, what: String| (k.to_owned(), what);
    match wire {
        Wire::Json => {
            if status != 202 {
                return Err(kind(&status.to_string(), format!("{status}: {}", text())));
            }
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| kind("body", format!("202 body: {e}")))?;
            let ids = v["ids"].as_array().map_or(0, Vec::len);
            if ids != BATCH {
                return Err(kind("ids", format!("202 with {ids} ids")));
            }
            Ok(v["ids"][BATCH - 1].as_str().and_then(|s| s.parse().ok()))
        }
        Wire::Otlp => {
            if status != 200 {
                return Err(kind(&status.to_string(), format!("{status}: {}", text())));
            }
            let r = ExportTraceServiceResponse::decode(body).map_err(|e| {
                kind(
                    "body",
                    format!("200 body is no ExportTraceServiceResponse: {e}"),
                )
            })?;
            match r.partial_success {
                None => Ok(None),
                Some(p) => Err(kind(
                    "partial_success",
                    format!(
                        "partial_success: {} rejected: {}",
                        p.rejected_spans,
                        p.error_message.chars().take(300).collect::<String>()
                    ),
                )),
            }
        }
    }
}
