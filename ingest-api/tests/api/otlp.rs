//! `POST /v1/traces` against the real broker: payloads captured from real exporters
//! (`testdata/otlp/`, see its README) become the traces the mapping promises; bad input gets a
//! clear 4xx or a `partial_success` message, never a 5xx, and nothing refused reaches the topic.
//! The live producers (Python and Node SDKs) run end to end in `tests/tests/otlp.rs`.

use std::io::Write;
use std::time::Duration;

use prost::Message as _;
use serde_json::{json, Value};
use tunix_ingest_api::http::auth::{ApiKeys, Scope};
use tunix_ingest_api::otlp::proto::Value as PValue;
use tunix_ingest_api::otlp::proto::*;
use tunix_schemas::{ids, TraceEvent, TraceSubmitted};
use tunix_testkit::{eventually, repo_root, Broker, TestDb, TestTopic};

use crate::helpers::*;

const PROTOBUF: &str = "application/x-protobuf";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("testdata/otlp").join(name)).unwrap()
}

/// The producer's line for a fixture: the OTel trace id and the inference spans' ids by model.
fn produced(name: &str) -> (String, Vec<(String, String)>) {
    let v: Value = serde_json::from_slice(&fixture(&format!("{name}.producer.json"))).unwrap();
    let spans = v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["model"].as_str().unwrap().to_owned(),
                s["span_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (v["trace_id"].as_str().unwrap().to_owned(), spans)
}

fn otlp_id(trace: &str, span: &str) -> uuid::Uuid {
    ids::idempotent_trace_id(&format!("otlp:{trace}:{span}"))
}

async fn send(api: &TestApi, content_type: &str, gzip: bool, body: Vec<u8>) -> reqwest::Response {
    let mut req = api
        .client
        .post(api.url("/v1/traces"))
        .header("content-type", content_type)
        .body(body);
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    req.send().await.unwrap()
}

async fn send_json(api: &TestApi, doc: &Value) -> reqwest::Response {
    send(api, "application/json", false, doc.to_string().into_bytes()).await
}

/// A 200 protobuf answer's `(rejected_spans, error_message)`.
async fn partial(resp: reqwest::Response) -> (i64, String) {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], PROTOBUF);
    let body = resp.bytes().await.unwrap();
    let p = ExportTraceServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .unwrap_or_default();
    (p.rejected_spans, p.error_message)
}

fn submitted(events: &[TraceEvent], id: uuid::Uuid) -> &TraceSubmitted {
    events
        .iter()
        .find_map(|e| match e {
            TraceEvent::Submitted(s) if s.id == id => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("trace {id} on the topic"))
}

fn meta(s: &TraceSubmitted) -> Value {
    serde_json::from_str(s.trace.meta().unwrap().as_str()).unwrap()
}

fn kinds(s: &TraceSubmitted) -> Vec<&str> {
    s.trace.steps().iter().map(|s| s.kind.as_str()).collect()
}

fn kv(key: &str, v: Value) -> KeyValue {
    let value = match v {
        Value::String(s) => Some(PValue::String(s)),
        Value::Number(n) => Some(PValue::Int(n.as_i64().unwrap())),
        _ => None,
    };
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value }),
    }
}

/// A chat span with the given messages (JSON text) and ids.
fn chat_span(trace: u8, span: u8, input: &str, output: &str) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        name: "chat m".into(),
        kind: 3,
        start_time_unix_nano: 1_765_000_000_000_000_000,
        end_time_unix_nano: 1_765_000_001_000_000_000,
        attributes: vec![
            kv("gen_ai.operation.name", json!("chat")),
            kv("gen_ai.request.model", json!("m")),
            kv("gen_ai.input.messages", json!(input)),
            kv("gen_ai.output.messages", json!(output)),
        ],
        ..Span::default()
    }
}

fn request(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", json!("svc"))],
            }),
            scope_spans: vec![ScopeSpans { scope: None, spans }],
        }],
    }
    .encode_to_vec()
}

const ASK: &str = r#"[{"role":"user","parts":[{"type":"text","content":"6*7?"}]}]"#;
const ANSWER: &str = r#"[{"role":"assistant","parts":[{"type":"reasoning","content":"six sevens"},{"type":"text","content":"42"}],"finish_reason":"stop"}]"#;

#[tokio::test(flavor = "multi_thread")]
async fn captured_exports_become_one_trace_per_inference_span() {
    let api = TestApi::start().await;
    // The official OpenAI instrumentation, as protobuf and gzipped protobuf.
    let (status, message) =
        partial(send(&api, PROTOBUF, false, fixture("openai_v2.pb")).await).await;
    assert_eq!(status, 0, "nothing refused: {message}");
    assert!(
        message.contains("1 span(s) accepted but not stored"),
        "{message}"
    );
    assert_eq!(
        partial(send(&api, PROTOBUF, true, fixture("openai_v2_gzip.pb.gz")).await)
            .await
            .0,
        0
    );
    // OpenInference, and Node's SDK as OTLP/JSON and protobuf.
    assert_eq!(
        partial(send(&api, PROTOBUF, false, fixture("openinference.pb")).await)
            .await
            .0,
        0
    );
    let resp = send(&api, "application/json", false, fixture("node.json")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "0", "{body}");
    assert_eq!(
        partial(send(&api, PROTOBUF, false, fixture("node.pb")).await)
            .await
            .0,
        0
    );

    let events = api.events(3 + 3 + 3 + 2 + 2);
    assert_eq!(
        events.len(),
        13,
        "one event per inference span, none for the parents"
    );

    let (trace, spans) = produced("openai_v2.pb");
    let by_model = |m: &str| otlp_id(&trace, &spans.iter().find(|s| s.0 == m).unwrap().1);
    let plain = submitted(&events, by_model("stub-plain"));
    assert_eq!(plain.trace.trace_version(), "otlp:gen_ai");
    assert_eq!(
        plain.trace.final_answer(),
        "Paris is the capital of France."
    );
    assert!(
        plain.trace.prompt().contains("system: "),
        "{}",
        plain.trace.prompt()
    );
    assert_eq!(kinds(plain), ["answer"]);
    let m = meta(plain);
    assert_eq!(m["otel"]["trace_id"], trace);
    assert_eq!(m["gen_ai"]["request"]["model"], "stub-plain");
    assert_eq!(m["gen_ai"]["response"]["model"], "stub-plain-2026");
    assert_eq!(m["gen_ai"]["usage"]["input_tokens"], 21);
    assert_eq!(m["gen_ai"]["usage"]["output_tokens"], 7);
    assert_eq!(m["service"]["name"], "python-openai-v2-agent");
    assert_eq!(m["otel"]["has_reasoning"], false);
    let tool = submitted(&events, by_model("stub-tool"));
    assert_eq!(
        tool.trace.final_answer(),
        r#"tool_call: get_weather({"city":"Paris"})"#
    );
    assert_eq!(kinds(tool), ["tool_call"]);
    let call: Value = serde_json::from_str(&tool.trace.steps()[0].content).unwrap();
    assert_eq!(
        call,
        json!({"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}})
    );
    assert_eq!(
        tool.idempotency_key.as_deref(),
        Some(format!("otlp:{trace}:{}", spans[1].1).as_str())
    );

    let (trace, spans) = produced("openinference.pb");
    let reasoning = submitted(&events, otlp_id(&trace, &spans[2].1));
    assert_eq!(reasoning.trace.trace_version(), "otlp:openinference");
    assert_eq!(reasoning.trace.final_answer(), "The answer is 42.");
    // OpenInference keeps the reasoning only in the raw response (output.value).
    assert_eq!(kinds(reasoning), ["reasoning"]);
    assert_eq!(
        reasoning.trace.steps()[0].content,
        "First, consider 6*7. That is 42."
    );
    let m = meta(reasoning);
    assert_eq!(m["gen_ai"]["usage"]["reasoning_tokens"], 12);
    assert_eq!(m["gen_ai"]["request"]["model"], "stub-reasoning");
    // Its response id and finish reason sit beside the messages (output.value, llm.finish_reason).
    assert_eq!(m["gen_ai"]["response"]["id"], "chatcmpl-stub-reasoning-9");
    assert_eq!(m["gen_ai"]["response"]["finish_reasons"], json!(["stop"]));

    // Node: the semconv attributes set by hand, a reasoning part and a tool-call turn.
    let (trace, spans) = produced("node.pb");
    let first = submitted(&events, otlp_id(&trace, &spans[0].1));
    assert_eq!(kinds(first)[0], "reasoning");
    assert_eq!(first.trace.steps()[0].content, "6*7 is 42.");
    assert_eq!(first.trace.final_answer(), "42");
    assert_eq!(
        first.trace.prompt(),
        "system: You are terse.\n\nuser: What is 6*7?"
    );
    assert_eq!(meta(first)["otel"]["has_reasoning"], true);
    let second = submitted(&events, otlp_id(&trace, &spans[1].1));
    assert!(kinds(second).contains(&"tool_call"), "{:?}", kinds(second));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_4xx_or_a_partial_success_message() {
    let api = TestApi::start().await;
    // Truncated protobuf: 400 with a Status in protobuf.
    let pb = fixture("node.pb");
    let resp = send(&api, PROTOBUF, false, pb[..pb.len() / 2].to_vec()).await;
    assert_eq!(resp.status(), 400);
    let status = RpcStatus::decode(&resp.bytes().await.unwrap()[..]).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("undecodable OTLP protobuf"),
        "{status:?}"
    );

    // Ids in base64 (OTLP/JSON ids are hex): 400 with a JSON Status naming the field.
    let mut doc: Value = serde_json::from_slice(&fixture("node.json")).unwrap();
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] =
        json!("6JBCxQQYQ/AXssn2fSnQ3Q==");
    let resp = send_json(&api, &doc).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("spans[0].traceId") && msg.contains("base64"),
        "{body}"
    );

    // Per span: wrong id lengths, messages that are not JSON, no output (content capture off);
    // an empty AnyValue, 10,000 attributes and unknown fields are fine.
    let mut short_ids = chat_span(1, 1, ASK, ANSWER);
    short_ids.trace_id.pop();
    let not_json = chat_span(2, 2, "[{\"role\": ", ANSWER);
    let mut no_output = chat_span(3, 3, ASK, ANSWER);
    no_output
        .attributes
        .retain(|kv| kv.key != "gen_ai.output.messages");
    let mut empty_value = chat_span(4, 4, ASK, ANSWER);
    empty_value.attributes.push(KeyValue {
        key: "gen_ai.request.temperature".into(),
        value: Some(AnyValue { value: None }),
    });
    let mut wide = chat_span(5, 5, ASK, ANSWER);
    wide.attributes
        .extend((0..10_000).map(|i| kv(&format!("custom.attr.{i}"), json!(i))));
    let mut body = request(vec![short_ids, not_json, no_output, empty_value, wide]);
    body.extend([0xf8, 0x3e, 0x01]); // field 1000, varint 1: unknown to OTLP
    let (rejected, message) = partial(send(&api, PROTOBUF, false, body).await).await;
    assert_eq!(rejected, 3, "{message}");
    assert!(message.contains("trace_id must be 16 bytes"), "{message}");
    assert!(
        message.contains("gen_ai.input.messages is not valid JSON"),
        "{message}"
    );
    assert!(message.contains("no output messages"), "{message}");
    let events = api.events(2);
    assert_eq!(events.len(), 2, "only the two good spans reached the topic");
    let empty = submitted(&events, otlp_id(&"04".repeat(16), &"04".repeat(8)));
    assert_eq!(meta(empty)["gen_ai"]["request"]["temperature"], Value::Null);

    // A JSON empty AnyValue `{}` and unknown keys decode.
    let mut doc: Value = serde_json::from_slice(&fixture("node.json")).unwrap();
    let span = &mut doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
    span["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "x", "value": {}}));
    span["futureField"] = json!({"a": 1});
    let resp = send_json(&api, &doc).await;
    assert_eq!(resp.status(), 200);

    // A bomb: 64 MiB of zeros in 64 KiB of gzip, over BATCH_MAX_BYTES once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 64 << 20]).unwrap();
    let resp = send(&api, PROTOBUF, true, gz.finish().unwrap()).await;
    assert_eq!(resp.status(), 413);
    assert!(RpcStatus::decode(&resp.bytes().await.unwrap()[..]).is_ok());

    let resp = send(&api, "text/plain", false, b"hello".to_vec()).await;
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("application/x-protobuf"),
        "{body}"
    );
    let metrics = api.metrics().await;
    assert!(
        metrics.contains(r#"tunix_ingest_otlp_spans_total{outcome="bad_ids"} 1"#)
            && metrics.contains(r#"tunix_ingest_otlp_spans_total{outcome="invalid"} 1"#),
        "{metrics}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_land_on_the_same_traces_and_long_content_is_split_or_refused_visibly() {
    let api = TestApi::start().await;
    for _ in 0..2 {
        assert_eq!(
            partial(send(&api, PROTOBUF, false, fixture("node.pb")).await)
                .await
                .0,
            0
        );
    }
    let events = api.events(4);
    let mut ids: Vec<_> = events.iter().map(TraceEvent::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (events.len(), ids.len()),
        (4, 2),
        "a retry repeats the same two ids"
    );

    let long = "x".repeat(45_000);
    let output = json!([{"role": "assistant", "parts": [{"type": "reasoning", "content": long}, {"type": "text", "content": "done"}]}]).to_string();
    let big_prompt =
        json!([{"role": "user", "parts": [{"type": "text", "content": "y".repeat(60_000)}]}])
            .to_string();
    let body = request(vec![
        chat_span(7, 7, ASK, &output),
        chat_span(8, 8, &big_prompt, ANSWER),
    ]);
    let (rejected, message) = partial(send(&api, PROTOBUF, false, body).await).await;
    assert_eq!(rejected, 1, "{message}");
    assert!(
        message.contains("body.prompt") && message.contains("50000"),
        "{message}"
    );
    let events = api.events(5);
    let split = submitted(&events, otlp_id(&"07".repeat(16), &"07".repeat(8)));
    assert_eq!(
        kinds(split),
        ["reasoning", "reasoning:continued", "reasoning:continued"]
    );
    let whole: String = split
        .trace
        .steps()
        .iter()
        .map(|s| s.content.as_str())
        .collect();
    assert_eq!(whole, long, "the split steps give the part back whole");
    assert!(api
        .metrics()
        .await
        .contains(r#"tunix_ingest_otlp_spans_total{outcome="too_large"} 1"#));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_broker_outages_answer_as_otlp_exporters_expect() {
    let mut broker = Broker::start();
    let topic = TestTopic::on(&broker.brokers(), 3).await;
    let api = TestApi::start_on(topic, TestDb::new().await, |c| {
        c.produce_timeout = Duration::from_secs(2);
        c.api_keys = ApiKeys::from_pairs(&[
            ("ingest-key-0123456789", &[Scope::Ingest]),
            ("reader-key-0123456789", &[Scope::Read]),
        ]);
    })
    .await;
    let post = |key: Option<&'static str>| {
        let mut req = api
            .client
            .post(api.url("/v1/traces"))
            .header("content-type", PROTOBUF)
            .body(request(vec![chat_span(9, 9, ASK, ANSWER)]));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let resp = post(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        RpcStatus::decode(&resp.bytes().await.unwrap()[..])
            .unwrap()
            .code,
        16
    );
    let resp = post(Some("reader-key-0123456789")).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        RpcStatus::decode(&resp.bytes().await.unwrap()[..])
            .unwrap()
            .code,
        7
    );
    assert_eq!(
        partial(post(Some("ingest-key-0123456789")).await.unwrap())
            .await
            .0,
        0
    );

    broker.stop();
    let resp = post(Some("ingest-key-0123456789")).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(
        RpcStatus::decode(&resp.bytes().await.unwrap()[..])
            .unwrap()
            .code,
        14
    );
    broker.start_again();
    eventually(
        Duration::from_secs(60),
        "OTLP accepted after the broker returns",
        || async {
            (post(Some("ingest-key-0123456789")).await.ok()?.status() == 200).then_some(())
        },
    )
    .await;
    let events = api.events(2);
    assert!(events.len() >= 2);
    assert!(
        events
            .iter()
            .all(|e| e.id() == otlp_id(&"09".repeat(16), &"09".repeat(8))),
        "every acknowledged export is the one span's trace, under its one id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redaction_rules_apply_to_otlp_traces_including_the_kept_messages() {
    let api = TestApi::start_with(|cfg| {
        cfg.redaction = Some(std::sync::Arc::new(
            tunix_schemas::redact::RedactionRules::builtin(),
        ))
    })
    .await;
    let input =
        json!([{"role": "user", "parts": [{"type": "text", "content": "mail ada@example.com"}]}])
            .to_string();
    let body = request(vec![chat_span(6, 6, &input, ANSWER)]);
    assert_eq!(partial(send(&api, PROTOBUF, false, body).await).await.0, 0);
    let events = api.events(1);
    let s = submitted(&events, otlp_id(&"06".repeat(16), &"06".repeat(8)));
    assert!(
        !s.trace.prompt().contains("ada@example.com"),
        "{}",
        s.trace.prompt()
    );
    assert!(
        s.trace.prompt().contains("[REDACTED:"),
        "{}",
        s.trace.prompt()
    );
    let meta = s.trace.meta().unwrap().as_str();
    assert!(
        !meta.contains("ada@example.com") && meta.contains("[REDACTED:"),
        "{meta}"
    );
    api.stop().await;
}
