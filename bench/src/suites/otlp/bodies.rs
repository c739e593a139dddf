//! The request bodies of the `otlp` suite: 100 real traces as an OTLP protobuf
//! `ExportTraceServiceRequest` of 100 GenAI inference spans, and the traces ingest-api stores for
//! them as a `POST /api/traces/batch` JSON array.

use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use tunix_ingest_api::otlp::mapping;
use tunix_ingest_api::otlp::proto::{
    AnyValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans,
    ScopeSpans, Span, Status, Value as Attr,
};
use tunix_schemas::redact::NoRedaction;
use uuid::Uuid;

/// Traces per request, on both paths.
pub(super) const BATCH: usize = 100;

/// Which endpoint a load posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    /// `POST /api/traces/batch`, a JSON array of the traces the OTLP path stores.
    Json,
    /// `POST /v1/traces`, `application/x-protobuf`.
    Otlp,
}

impl Wire {
    pub(super) fn path(self) -> &'static str {
        match self {
            Wire::Json => "/api/traces/batch",
            Wire::Otlp => "/v1/traces",
        }
    }

    pub(super) fn content_type(self) -> &'static str {
        match self {
            Wire::Json => "application/json",
            Wire::Otlp => "application/x-protobuf",
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Wire::Json => "JSON batch",
            Wire::Otlp => "OTLP protobuf",
        }
    }
}

/// Batches of [`BATCH`] dataset traces, round robin over the dataset (550 traces: 11 distinct
/// windows), the same windows on both wires.
#[derive(Clone)]
pub(super) struct Batches {
    json: Vec<Bytes>,
    otlp: Vec<ExportTraceServiceRequest>,
    next: usize,
}

/// One request's body and, for OTLP, the id of its last trace (derived from its last span's ids
/// as ingest-api derives it; the JSON path's ids come in the answer).
pub(super) struct Body {
    pub(super) bytes: Bytes,
    pub(super) last_id: Option<Uuid>,
}

impl Batches {
    /// Renders every window from `testdata/dev-reasoning-v2.jsonl`.
    pub(super) fn new(root: &Path) -> Batches {
        let traces = crate::gen::dataset(root);
        let windows = lcm(traces.len(), BATCH) / BATCH;
        let window = |w: usize| -> Vec<&Value> {
            (0..BATCH)
                .map(|i| &traces[(w * BATCH + i) % traces.len()])
                .collect()
        };
        let otlp: Vec<ExportTraceServiceRequest> = (0..windows)
            .map(|w| request(window(w).into_iter().map(span).collect()))
            .collect();
        let json = otlp.iter().map(stored_traces).collect();
        Batches {
            json,
            otlp,
            next: 0,
        }
    }

    /// The next window on `wire`; OTLP spans get fresh random trace and span ids, so every span
    /// is a new trace.
    pub(super) fn next(&mut self, wire: Wire, rng: &mut StdRng) -> Body {
        let w = self.next % self.json.len();
        self.next += 1;
        match wire {
            Wire::Json => Body {
                bytes: self.json[w].clone(),
                last_id: None,
            },
            Wire::Otlp => {
                let request = &mut self.otlp[w];
                let spans = &mut request.resource_spans[0].scope_spans[0].spans;
                for s in spans.iter_mut() {
                    rng.fill(&mut s.trace_id[..]);
                    rng.fill(&mut s.span_id[..]);
                    s.trace_id[0] |= 1; // never all zero
                    s.span_id[0] |= 1;
                }
                let last = spans.last().expect("a full batch");
                let key = format!("otlp:{}:{}", hex(&last.trace_id), hex(&last.span_id));
                Body {
                    last_id: Some(tunix_schemas::ids::idempotent_trace_id(&key)),
                    bytes: Bytes::from(request.encode_to_vec()),
                }
            }
        }
    }

    /// Mean body size per trace on `wire`, in bytes.
    pub(super) fn bytes_per_trace(&self, wire: Wire) -> f64 {
        let total: usize = match wire {
            Wire::Json => self.json.iter().map(Bytes::len).sum(),
            Wire::Otlp => self.otlp.iter().map(|r| r.encoded_len()).sum(),
        };
        total as f64 / (self.json.len() * BATCH) as f64
    }
}

/// The JSON batch of the traces ingest-api stores for `request` (its own mapping, with fixed
/// ids): the same prompts, steps, answers and `meta`, so the two paths hand the pipeline the same
/// traces and the comparison isolates decoding and mapping.
fn stored_traces(request: &ExportTraceServiceRequest) -> Bytes {
    let mut request = request.clone();
    for (n, s) in request.resource_spans[0].scope_spans[0]
        .spans
        .iter_mut()
        .enumerate()
    {
        s.trace_id = vec![0x7e; 16];
        s.span_id = (n as u64 + 1).to_be_bytes().to_vec();
    }
    let mapped = mapping::map_request(&request, &mut NoRedaction, usize::MAX);
    assert_eq!(
        mapped.traces.len(),
        BATCH,
        "every span maps: {:?}",
        mapped.refusals
    );
    let items: Vec<String> = mapped.traces.iter().map(|t| t.trace.to_json()).collect();
    Bytes::from(format!("[{}]", items.join(",")))
}

fn lcm(a: usize, b: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kv(key: &str, value: Attr) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Attr::String(value.to_owned()))
}

/// One request of `spans` from one service and instrumentation scope.
fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "tunix-bench")],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tunix-bench.otlp".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                }),
                spans,
            }],
        }],
    }
}

/// A dataset trace as the chat span an instrumented client would emit: the prompt as the user's
/// message, each step as a reasoning part and the final answer as the text part of the answer.
fn span(trace: &Value) -> Span {
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let prompt = str_of(&trace["prompt"]);
    let answer = str_of(&trace["final_answer"]);
    let mut parts: Vec<Value> = trace["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| json!({"type": "reasoning", "content": str_of(&s["content"])}))
        .collect();
    parts.push(json!({"type": "text", "content": answer}));
    let input = json!([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]);
    let output = json!([{"role": "assistant", "parts": parts, "finish_reason": "stop"}]);
    let tokens = |v: &Value| Attr::Int((v.to_string().len() / 4).max(1) as i64);
    let model = "gpt-4o-mini";
    let start = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
    Span {
        trace_id: vec![0; 16],
        span_id: vec![0; 8],
        parent_span_id: Vec::new(),
        name: format!("chat {model}"),
        kind: 3, // client
        start_time_unix_nano: start,
        end_time_unix_nano: start + 812_500_000,
        attributes: vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.provider.name", "openai"),
            text("gen_ai.request.model", model),
            text("gen_ai.response.model", model),
            kv("gen_ai.usage.input_tokens", tokens(&input)),
            kv("gen_ai.usage.output_tokens", tokens(&output)),
            text("gen_ai.input.messages", &input.to_string()),
            text("gen_ai.output.messages", &output.to_string()),
        ],
        events: Vec::new(),
        status: Some(Status {
            message: String::new(),
            code: 1,
        }),
    }
}
