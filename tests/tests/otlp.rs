//! `POST /v1/traces` (OTLP/HTTP) end to end, fed by other people's OpenTelemetry code: the
//! official `opentelemetry-instrumentation-openai-v2` and Arize's OpenInference instrumentation
//! around the real `openai` client (Python, protobuf, plain and gzip), and the OpenTelemetry JS
//! SDK's OTLP/JSON and protobuf exporters (Node), all driven by the producers in `tests/otel/`
//! (see `tests/otel/NOTES.md`). Each inference span becomes one trace whose id derives from its
//! trace and span ids; the spans are read back through `GET /api/traces/{id}`, listed by
//! `meta.otel.trace_id`, re-sent (idempotent), sent in pieces (grouped by meta, not by arrival)
//! and exported as a `tunix_sft` dataset.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tunix_e2e::{kv, Stack, StackOptions};
use tunix_testkit::{eventually, python, repo_root, Api, CONVERGE};

const KEY: &str = "otlp-key-0123456789abcdef";

async fn start(partitions: i32) -> Stack {
    Stack::start(StackOptions {
        api_env: vec![kv("API_KEYS", format!("{KEY}:ingest+read+admin"))],
        partitions,
        ..StackOptions::default()
    })
    .await
}

fn api(stack: &Stack) -> Api {
    stack.client().with_key(KEY)
}

/// A producer's stdout line: the OTel trace id and its inference spans `(model, span id)`.
#[derive(Debug)]
struct Produced {
    trace_id: String,
    spans: Vec<(String, String)>,
}

fn parse_produced(line: &str) -> Produced {
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    let spans = v["spans"].as_array().expect("spans");
    Produced {
        trace_id: v["trace_id"].as_str().unwrap().to_owned(),
        spans: spans
            .iter()
            .map(|s| {
                assert_eq!(s["trace_id"], v["trace_id"]);
                let model = s["model"].as_str().unwrap().to_owned();
                (model, s["span_id"].as_str().unwrap().to_owned())
            })
            .collect(),
    }
}

/// Runs a producer to completion (bounded); panics with its stderr unless it exits 0.
async fn produce(cmd: &mut Command, what: &str) -> Produced {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} still runs after 120 s"))
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {} {stderr}", out.status);
    parse_produced(&String::from_utf8_lossy(&out.stdout))
}

/// `tests/otel/stub_openai.py` on a free port; killed when dropped.
struct Stub {
    _child: Child,
    base: String,
}

async fn stub() -> Stub {
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/otel/stub_openai.py"))
        .arg("0")
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start stub_openai.py");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("stub_openai.py says where it listens")
        .unwrap()
        .unwrap_or_default();
    let port = first.strip_prefix("listening ").expect(&first).trim();
    Stub {
        _child: child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn python_producer(script: &str, stack: &Stack, stub: &Stub, compression: &str) -> Produced {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/otel").join(script))
        .arg(format!("http://{}", stack.api_addr))
        .arg(&stub.base)
        .arg(KEY)
        .arg(compression);
    produce(&mut cmd, &format!("{script} {compression}")).await
}

/// The id of the trace an inference span becomes.
fn trace_of(trace_hex: &str, span_hex: &str) -> String {
    tunix_schemas::ids::idempotent_trace_id(&format!("otlp:{trace_hex}:{span_hex}")).to_string()
}

/// Waits until `GET /api/traces/{id}` answers 200; returns the body.
async fn read(stack: &Stack, id: &str) -> Value {
    let api = api(stack);
    eventually(CONVERGE, &format!("trace {id} readable"), || {
        let api = api.clone();
        async move {
            let (status, body) = api.get(&format!("/api/traces/{id}")).await;
            (status == 200).then_some(body)
        }
    })
    .await
}

/// The ids `GET /api/traces?<query>` lists (sorted), once there are exactly `n` of them; more
/// than `n` fails at once.
async fn listed(stack: &Stack, query: &str, n: usize) -> Vec<String> {
    let api = api(stack);
    eventually(CONVERGE, &format!("{n} traces listed for {query}"), || {
        let api = api.clone();
        async move {
            let (status, page) = api.get(&format!("/api/traces?limit=100&{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            let ids: Vec<String> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect();
            assert!(
                ids.len() <= n,
                "{query} lists {} traces, want {n}: {page}",
                ids.len()
            );
            (ids.len() == n).then(|| sorted(ids))
        }
    })
    .await
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// A trace's steps as `[[type, content], ...]`, tool calls and results parsed from their JSON.
fn steps(payload: &Value) -> Value {
    let steps = payload["steps"].as_array().unwrap();
    let step = |s: &Value| match s["type"].as_str().unwrap() {
        "tool_call" | "tool_result" => json!([s["type"], parsed(s["content"].as_str().unwrap())]),
        _ => json!([s["type"], s["content"]]),
    };
    steps.iter().map(step).collect()
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The `meta.otel` every span's trace carries, whatever the producer.
fn check_otel(body: &Value, p: &Produced, span: &str, convention: &str) {
    let otel = &body["payload"]["meta"]["otel"];
    assert_eq!(otel["trace_id"], p.trace_id.as_str(), "{body}");
    assert_eq!(otel["span_id"], span);
    assert_eq!(otel["convention"], convention);
    let parent = otel["parent_span_id"].as_str().expect("a parent span");
    assert_eq!(parent.len(), 16);
    assert!(p.spans.iter().all(|(_, s)| s != parent));
    let (start, end) = (otel["start_time"].as_str(), otel["end_time"].as_str());
    assert!(start.is_some() && start <= end, "{otel}");
    assert!(otel["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(!otel["messages"]["input"].as_array().unwrap().is_empty());
    assert!(!otel["messages"]["output"].as_array().unwrap().is_empty());
    assert_eq!(body["trace_version"], format!("otlp:{convention}"));
    assert_eq!(
        body["payload"]["trace_version"],
        format!("otlp:{convention}")
    );
}

/// The three traces a Python producer's run became (`oi`: OpenInference, else openai-v2), read
/// back and listed.
async fn check_python_run(stack: &Stack, p: &Produced, oi: bool) {
    assert_eq!(p.spans.len(), 3, "{p:?}");
    let (paris, weather) = ("Paris is the capital of France.", r#"{"city":"Paris"}"#);
    // openai-v2 parses tool arguments to an object; OpenInference keeps the string.
    let args = if oi { json!(weather) } else { parsed(weather) };
    let call = json!([["tool_call", {"id": "call_1", "name": "get_weather", "arguments": args}]]);
    // openai-v2 drops the stub's `reasoning_content` (no reasoning part, no reasoning_tokens;
    // see tests/otel/NOTES.md): one `answer` step. OpenInference leaves it out of
    // llm.output_messages too but keeps it in the raw response (output.value), which ingest-api
    // reads: a `reasoning` step; and it sends llm.token_count.completion_details.reasoning.
    let reasoning = match oi {
        true => json!([["reasoning", "First, consider 6*7. That is 42."]]),
        false => json!([["answer", "The answer is 42."]]),
    };
    let expected = json!([
        {"question": "What is the capital of France?", "tokens": [21, 7], "answer": paris,
         "steps": [["answer", paris]], "reasoning_tokens": null},
        {"question": "What is the capital of France?", "tokens": [48, 15],
         "answer": "tool_call: get_weather({\"city\":\"Paris\"})", "steps": call,
         "reasoning_tokens": null},
        {"question": "What is 6*7?", "tokens": [18, 20], "answer": "The answer is 42.",
         "steps": reasoning, "reasoning_tokens": oi.then_some(12)},
    ]);
    let mut ids = Vec::new();
    for ((model, span), want) in p.spans.iter().zip(expected.as_array().unwrap()) {
        let id = trace_of(&p.trace_id, span);
        let body = read(stack, &id).await;
        assert_eq!(body["id"], id.as_str());
        check_otel(&body, p, span, if oi { "openinference" } else { "gen_ai" });
        let (t, meta) = (&body["payload"], &body["payload"]["meta"]);
        // The system prompt is a role "system" message in the input for both instrumentations.
        let question = want["question"].as_str().unwrap();
        let prompt = format!("system: You are terse.\n\nuser: {question}");
        assert_eq!(t["prompt"], prompt, "{t}");
        assert_eq!(t["final_answer"], want["answer"]);
        assert_eq!(steps(t), want["steps"], "{model}");
        let has_reasoning = oi && model == "stub-reasoning";
        assert_eq!(meta["otel"]["has_reasoning"], has_reasoning);
        let g = &meta["gen_ai"];
        let operation = json!([g["operation"], g["provider"]]);
        assert_eq!(operation, json!(["chat", "openai"]));
        assert_eq!(g["request"]["model"], model.as_str(), "{g}");
        assert_eq!(g["response"]["model"], format!("{model}-2026"));
        let usage = &g["usage"];
        let tokens = json!([usage["input_tokens"], usage["output_tokens"]]);
        assert_eq!(tokens, want["tokens"], "{g}");
        let reasoning = usage.get("reasoning_tokens").cloned().unwrap_or_default();
        assert_eq!(reasoning, want["reasoning_tokens"], "{g}");
        let otel = &meta["otel"];
        if oi {
            assert_eq!(otel["name"], "ChatCompletion");
            let kind_status = json!([otel["kind"], otel["status"]["code"]]);
            assert_eq!(kind_status, json!(["internal", "ok"]));
            let total = want["tokens"][0].as_i64().unwrap() + want["tokens"][1].as_i64().unwrap();
            assert_eq!(usage["total_tokens"], total);
            assert_eq!(meta["service"]["name"], "python-openinference-agent");
        } else {
            let reason = if model == "stub-tool" {
                json!(["tool_calls"])
            } else {
                json!(["stop"])
            };
            assert_eq!(g["response"]["finish_reasons"], reason);
            let rid = g["response"]["id"].as_str().unwrap();
            assert!(rid.starts_with(&format!("chatcmpl-{model}-")), "{rid}");
            assert_eq!(otel["name"], format!("chat {model}"));
            let kind_status = json!([otel["kind"], otel["status"]["code"]]);
            assert_eq!(kind_status, json!(["client", "unset"]));
            assert_eq!(otel["scope"]["name"], "opentelemetry.util.genai.handler");
            assert_eq!(meta["service"]["name"], "python-openai-v2-agent");
        }
        ids.push(id);
    }
    // The parent `agent-run` span is not stored: exactly the three inference spans.
    let by_trace = format!("meta.otel.trace_id={}", p.trace_id);
    assert_eq!(listed(stack, &by_trace, 3).await, sorted(ids.clone()));
    let plain = format!("{by_trace}&meta.gen_ai.request.model=stub-plain");
    assert_eq!(listed(stack, &plain, 1).await, [ids[0].clone()]);
    let capital = listed(stack, &format!("{by_trace}&q=capital"), 2).await;
    assert_eq!(capital, sorted(ids[..2].to_vec()));
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_v2_spans_become_traces_over_protobuf_and_gzip() {
    let stack = start(4).await;
    let stub = stub().await;
    let plain = python_producer("produce_openai_v2.py", &stack, &stub, "none").await;
    check_python_run(&stack, &plain, false).await;
    let gzip = python_producer("produce_openai_v2.py", &stack, &stub, "gzip").await;
    assert_ne!(gzip.trace_id, plain.trace_id);
    check_python_run(&stack, &gzip, false).await;
    // Across both runs, the model filter finds both plain calls.
    let both = listed(&stack, "meta.gen_ai.request.model=stub-plain", 2).await;
    let want = [&plain, &gzip].map(|p| trace_of(&p.trace_id, &p.spans[0].1));
    assert_eq!(both, sorted(want.to_vec()));
}

#[tokio::test(flavor = "multi_thread")]
async fn openinference_spans_become_traces() {
    let stack = start(4).await;
    let stub = stub().await;
    let p = python_producer("produce_openinference.py", &stack, &stub, "none").await;
    check_python_run(&stack, &p, true).await;
}

/// The two chat spans of the Node producer (or of its captures in `testdata/otlp/`).
async fn check_node_trace(stack: &Stack, p: &Produced) {
    assert_eq!(p.spans.len(), 2, "{p:?}");
    let mut ids = Vec::new();
    for (n, (_, span)) in p.spans.iter().enumerate() {
        let id = trace_of(&p.trace_id, span);
        let body = read(stack, &id).await;
        check_otel(&body, p, span, "gen_ai");
        let t = &body["payload"];
        let meta = &t["meta"];
        assert_eq!(meta["otel"]["has_reasoning"], true, "{t}");
        assert_eq!(meta["otel"]["kind"], "client");
        assert_eq!(
            meta["otel"]["scope"],
            json!({"name": "tunix-rt.tests.otel.node", "version": "0.0.0"})
        );
        assert_eq!(meta["service"]["name"], "node-agent");
        let g = &meta["gen_ai"];
        assert_eq!(g["request"]["model"], "stub-model");
        assert_eq!(g["response"]["model"], "stub-model-2026");
        assert_eq!(g["response"]["id"], format!("chatcmpl-node-{}", n + 1));
        let steps = steps(t);
        if n == 0 {
            assert_eq!(t["prompt"], "system: You are terse.\n\nuser: What is 6*7?");
            assert_eq!(t["final_answer"], "42");
            assert_eq!(steps, json!([["reasoning", "6*7 is 42."]]));
            assert_eq!(
                g["usage"],
                json!({"input_tokens": 12, "output_tokens": 9, "reasoning_tokens": 5})
            );
            assert_eq!(g["response"]["finish_reasons"], json!(["stop"]));
        } else {
            assert_eq!(
                t["prompt"],
                "system: You are terse.\n\nuser: Weather in Paris?"
            );
            assert_eq!(
                t["final_answer"],
                r#"tool_call: get_weather({"city":"Paris"})"#
            );
            // The history after the last user message, then the output's parts.
            let want = json!([
                ["tool_call", {"id": "call_0", "name": "get_time", "arguments": {"city": "Paris"}}],
                ["tool_result", {"id": "call_0", "response": "14:00"}],
                ["reasoning", "I need the weather."],
                ["tool_call", {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
            ]);
            assert_eq!(steps, want);
            assert_eq!(g["usage"]["reasoning_tokens"], 8);
        }
        ids.push(id);
    }
    let by_trace = format!("meta.otel.trace_id={}", p.trace_id);
    assert_eq!(listed(stack, &by_trace, 2).await, sorted(ids));
}

#[tokio::test(flavor = "multi_thread")]
async fn node_sdk_json_and_protobuf_exports_keep_the_reasoning() {
    let stack = start(4).await;
    for encoding in ["json", "proto"] {
        let mut cmd = Command::new("node");
        cmd.arg(repo_root().join("tests/otel/node/produce.mjs"))
            .arg(format!("http://{}", stack.api_addr))
            .arg(KEY)
            .arg(encoding);
        let p = produce(&mut cmd, &format!("produce.mjs {encoding}")).await;
        check_node_trace(&stack, &p).await;
    }
}

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("testdata/otlp").join(name)).expect(name)
}

fn captured(name: &str) -> Produced {
    parse_produced(&String::from_utf8(testdata(&format!("{name}.producer.json"))).unwrap())
}

/// Posts one OTLP body; returns the answer's body, after checking it is a 200.
async fn export(stack: &Stack, content_type: &str, body: Vec<u8>) -> Vec<u8> {
    let resp = stack
        .http
        .post(stack.url("/v1/traces"))
        .bearer_auth(KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.bytes().await.unwrap().to_vec();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exporters_retry_stores_each_span_once() {
    // One partition: a marker trace posted after the two exports is consumed after them.
    let stack = start(1).await;
    let p = captured("node.pb");
    for _attempt in 0..2 {
        export(&stack, "application/x-protobuf", testdata("node.pb")).await;
    }
    let (status, ack) = api(&stack)
        .post(
            "/api/traces",
            &json!({"trace_version": "marker", "prompt": "p", "final_answer": "a",
                 "steps": [{"i": 0, "type": "t", "content": "c"}]}),
        )
        .await;
    assert_eq!(status, 202, "{ack}");
    let marker = ack["id"].as_str().unwrap().to_owned();
    read(&stack, &marker).await;
    listed(&stack, "trace_version=marker", 1).await;
    // Both read models are past both exports: two spans, stored once each.
    check_node_trace(&stack, &p).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM traces")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3, "two spans and the marker");
    stack.wait_converged(3, CONVERGE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_in_several_exports_is_grouped_by_its_trace_id() {
    let stack = start(4).await;
    let p = captured("node.json");
    let whole: Value = serde_json::from_slice(&testdata("node.json")).unwrap();
    let mut pieces = Vec::new();
    for rs in whole["resourceSpans"].as_array().unwrap() {
        for ss in rs["scopeSpans"].as_array().unwrap() {
            for span in ss["spans"].as_array().unwrap() {
                let mut scope = ss.clone();
                scope["spans"] = json!([span]);
                let mut resource = rs.clone();
                resource["scopeSpans"] = json!([scope]);
                let inference = span["name"] != "invoke_agent";
                pieces.push((inference, json!({"resourceSpans": [resource]})));
            }
        }
    }
    assert_eq!(pieces.len(), 3);
    // The chat spans in reverse order, the parent last.
    pieces.sort_by_key(|(inference, _)| !inference);
    pieces[..2].reverse();
    for (inference, piece) in pieces {
        let body = export(&stack, "application/json", piece.to_string().into_bytes()).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        if inference {
            assert_eq!(body, json!({}));
        } else {
            let message = body["partialSuccess"]["errorMessage"].as_str().unwrap();
            assert!(message.contains("not inference spans"), "{body}");
        }
    }
    check_node_trace(&stack, &p).await;
    let ids = listed(&stack, &format!("meta.otel.trace_id={}", p.trace_id), 2).await;
    let mut by_start = Vec::new();
    for id in ids {
        let otel = read(&stack, &id).await["payload"]["meta"]["otel"].clone();
        let start = otel["start_time"].as_str().unwrap().to_owned();
        by_start.push((start, otel["span_id"].as_str().unwrap().to_owned()));
    }
    by_start.sort();
    let order: Vec<&str> = by_start.iter().map(|(_, s)| s.as_str()).collect();
    let want: Vec<&str> = p.spans.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        order, want,
        "sorted by meta.otel.start_time: the producer's order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dataset_of_otlp_traces_exports_the_reasoning_to_tunix_sft() {
    let stack = start(4).await;
    let p = captured("node.json");
    export(&stack, "application/json", testdata("node.json")).await;
    let by_trace = format!("meta.otel.trace_id={}", p.trace_id);
    let ids = listed(&stack, &by_trace, 2).await;
    // Membership comes from the list view (projector), the exported payloads from `traces`
    // (writer): both must have the traces before the export can hold them.
    for id in &ids {
        read(&stack, id).await;
    }
    let definition = json!({"name": "otlp", "version": "1",
        "filter": {"meta.otel.trace_id": p.trace_id}, "selection": "latest"});
    let (status, ds) = api(&stack).post("/api/datasets", &definition).await;
    assert!(status == 201 || status == 202, "{status} {ds}");
    let ds = eventually(CONVERGE, "dataset otlp@1 ready", || async {
        let (_, ds) = api(&stack).get("/api/datasets/otlp/1").await;
        (ds["state"] == "ready").then_some(ds)
    })
    .await;
    assert_eq!(ds["member_count"], 2, "{ds}");
    let resp = stack
        .http
        .get(stack.url("/api/datasets/otlp/1/export?format=tunix_sft"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let rows: Vec<Value> = text.lines().map(parsed).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let got: Vec<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(got), ids);
    let first = trace_of(&p.trace_id, &p.spans[0].1);
    for r in &rows {
        let prompts = r["prompts"].as_str().unwrap();
        assert_eq!(r["metadata"]["format"], "tunix_sft");
        if r["id"] == first.as_str() {
            let want = "<start_of_turn>user\nsystem: You are terse.\n\nuser: What is 6*7?<end_of_turn>\n<start_of_turn>model\nReasoning:\n1. 6*7 is 42.\nAnswer: 42<end_of_turn>";
            assert_eq!(prompts, want);
        } else {
            assert!(prompts.contains("\n3. I need the weather.\n"), "{prompts}");
            assert!(
                prompts.contains(r#"Answer: tool_call: get_weather({"city":"Paris"})"#),
                "{prompts}"
            );
        }
    }
}
