//! Single-trace ingest: what reaches the topic, validation, body limits, retries, broker outages.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tunix_schemas::TraceEvent;
use tunix_testkit::{dataset, eventually, Broker, TestDb, TestTopic};

use crate::helpers::*;

/// gzip of `data`, for Content-Encoding tests.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn posted_traces_are_on_the_topic_exactly_as_submitted() {
    let api = TestApi::start().await;
    let mut bodies: Vec<Value> = dataset()[..20].to_vec();
    bodies.push(example());
    bodies.push(json!({
        "trace_version": "2.0-β",
        "prompt": "emoji 🧠🤖, CJK 推理, RTL שלום, escapes \" \\ \n\t",
        "final_answer": "👍",
        "steps": [{"i": 9, "type": "思考", "content": "e\u{301} zero\u{200b}width"}, {"i": 2, "type": "t", "content": "x"}],
        "meta": {"nested": {"deep": [1, 2.5, -3e10, null, {"k": "v"}]}, "big": 12345678901234567890_u64},
        "unknown_field": "ignored"
    }));
    let mut accepted = Vec::new();
    for body in &bodies {
        let resp = api.post_json("/api/traces", body).await;
        assert_eq!(resp.status(), 202);
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let (_, ack) = json(resp).await;
        assert_eq!(
            location,
            format!("/api/traces/{}", ack["id"].as_str().unwrap())
        );
        assert_eq!(ack["trace_version"], body["trace_version"]);
        assert!(chrono::DateTime::parse_from_rfc3339(ack["created_at"].as_str().unwrap()).is_ok());
        accepted.push(ack);
    }
    let events = api.events(bodies.len());
    assert_eq!(
        events.len(),
        bodies.len(),
        "one event per acknowledged trace"
    );
    for (body, ack) in bodies.iter().zip(&accepted) {
        let id: uuid::Uuid = ack["id"].as_str().unwrap().parse().unwrap();
        let event = events
            .iter()
            .find(|e| e.id() == id)
            .expect("event for every 202");
        let TraceEvent::Submitted(s) = event else {
            panic!("submitted")
        };
        assert_eq!(s.id.get_version_num(), 7, "server ids are time-ordered");
        let mut expected = body.clone();
        expected.as_object_mut().unwrap().remove("unknown_field");
        expected
            .as_object_mut()
            .unwrap()
            .entry("meta")
            .or_insert(Value::Null);
        let got: Value = serde_json::from_str(&s.trace.to_json()).unwrap();
        assert_eq!(got, expected, "every field, unicode intact");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(ack["created_at"].as_str().unwrap()).unwrap(),
            s.created_at
        );
    }
}

/// A minimal valid trace with `value` at `path` (`-name` with `Value::Null` removes the field).
fn set(path: &[&str], value: Value) -> Value {
    let mut v = json!({"trace_version": "1", "prompt": "p", "final_answer": "a", "steps": [{"i": 0, "type": "t", "content": "c"}]});
    let mut cur = &mut v;
    for (n, key) in path.iter().enumerate() {
        if n + 1 == path.len() {
            if value.is_null() && key.starts_with('-') {
                cur.as_object_mut().unwrap().remove(&key[1..]);
            } else {
                cur[*key] = value.clone();
            }
        } else if let Ok(i) = key.parse::<usize>() {
            cur = &mut cur[i];
        } else {
            cur = &mut cur[*key];
        }
    }
    v
}

/// Every seed validation rule: (body, the `loc` of the first error, its `type`).
fn seed_validation_cases() -> Vec<(Value, Value, &'static str)> {
    // Every text field's bounds: empty is too short, one character over its maximum too long.
    let mut cases: Vec<(Value, Value, &'static str)> = Vec::new();
    for (path, loc, filler, max) in [
        (
            &["trace_version"][..],
            json!(["body", "trace_version"]),
            "x",
            64,
        ),
        (&["prompt"], json!(["body", "prompt"]), "x", 50_000),
        (
            &["final_answer"],
            json!(["body", "final_answer"]),
            "ü",
            50_000,
        ),
        (
            &["steps", "0", "type"],
            json!(["body", "steps", 0, "type"]),
            "t",
            64,
        ),
        (
            &["steps", "0", "content"],
            json!(["body", "steps", 0, "content"]),
            "c",
            20_000,
        ),
    ] {
        cases.push((set(path, json!("")), loc.clone(), "string_too_short"));
        cases.push((
            set(path, json!(filler.repeat(max + 1))),
            loc,
            "string_too_long",
        ));
    }
    cases.extend([
        (
            set(&["steps"], json!([])),
            json!(["body", "steps"]),
            "too_short",
        ),
        (
            set(
                &["steps"],
                json!((0..1001)
                    .map(|i| json!({"i": i, "type": "t", "content": "c"}))
                    .collect::<Vec<_>>()),
            ),
            json!(["body", "steps"]),
            "too_long",
        ),
        (
            set(&["steps", "0", "i"], json!(-1)),
            json!(["body", "steps", 0, "i"]),
            "greater_than_equal",
        ),
        (
            set(&["steps", "0", "i"], json!("zero")),
            json!(["body", "steps", 0, "i"]),
            "int_type",
        ),
        (
            set(&["meta"], json!([1])),
            json!(["body", "meta"]),
            "dict_type",
        ),
        (
            set(&["-prompt"], Value::Null),
            json!(["body", "prompt"]),
            "missing",
        ),
        (
            set(
                &["steps"],
                json!([{"i": 3, "type": "t", "content": "c"}, {"i": 3, "type": "t", "content": "d"}]),
            ),
            json!(["body", "steps", 1, "i"]),
            "value_error",
        ),
    ]);
    cases
}

/// Every seed validation rule over HTTP: status 422 and FastAPI's detail shape.
#[tokio::test(flavor = "multi_thread")]
async fn seed_validation_cases_answer_422_with_paths() {
    let api = TestApi::start().await;
    for (body, loc, kind) in seed_validation_cases() {
        let (status, detail) = json(api.post_json("/api/traces", &body).await).await;
        assert_eq!(status, 422, "{loc} {kind}");
        let first = &detail["detail"][0];
        assert_eq!(first["loc"], loc, "{detail}");
        assert_eq!(first["type"], kind, "{detail}");
        assert!(first["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
    values_at_the_edges_are_accepted(&api).await;
    malformed_json_and_wrong_content_types_are_4xx_with_a_detail(&api).await;
}

/// Valid at the edges: accepted.
async fn values_at_the_edges_are_accepted(api: &TestApi) {
    for body in [
        set(&["trace_version"], json!("x".repeat(64))),
        set(&["prompt"], json!("🧠".repeat(50_000))),
        set(&["steps", "0", "content"], json!("c".repeat(20_000))),
        set(&["steps", "0", "i"], json!(0)),
        set(&["meta"], Value::Null),
    ] {
        assert_eq!(api.post_json("/api/traces", &body).await.status(), 202);
    }
}

/// Malformed JSON and wrong content types are 4xx with a detail, never 5xx.
async fn malformed_json_and_wrong_content_types_are_4xx_with_a_detail(api: &TestApi) {
    let (status, detail) = json(
        api.post_raw(
            "/api/traces",
            Some("application/json"),
            b"{\"prompt\": ".to_vec(),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, detail["detail"][0]["type"].as_str()),
        (422, Some("json_invalid"))
    );
    let (status, detail) = json(
        api.post_raw("/api/traces", Some("text/plain"), b"{}".to_vec())
            .await,
    )
    .await;
    assert_eq!(status, 415);
    assert!(detail["detail"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    assert_eq!(
        api.post_raw("/api/traces", None, b"{}".to_vec())
            .await
            .status(),
        415
    );
}

/// POSTs a JSON trace body encoded with `encoding` (`Content-Encoding`).
async fn post_encoded(api: &TestApi, encoding: &str, bytes: Vec<u8>) -> reqwest::Response {
    api.client
        .post(api.url("/api/traces"))
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_bodies_get_413_however_they_arrive() {
    let api = TestApi::start_with(|c| c.trace_max_bytes = 64 * 1024).await;
    let msg = "Payload size exceeds maximum of 65536 bytes";
    let big = serde_json::to_vec(&json!({"trace_version": "1", "prompt": "x".repeat(70_000), "final_answer": "a", "steps": [{"i": 0, "type": "t", "content": "c"}]})).unwrap();

    // Content-Length.
    let (status, body) = json(
        api.post_raw("/api/traces", Some("application/json"), big.clone())
            .await,
    )
    .await;
    assert_eq!((status, body["detail"].as_str()), (413, Some(msg)));

    // Chunked (no Content-Length): the cap counts bytes actually read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let resp = api
        .client
        .post(api.url("/api/traces"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!((status, body["detail"].as_str()), (413, Some(msg)));

    // gzip and zstd bombs: tiny on the wire, huge when decoded.
    let bomb_json = format!(
        "{{\"trace_version\":\"1\",\"prompt\":\"{}\"}}",
        "a".repeat(20 << 20)
    );
    for (encoding, bytes) in [
        ("gzip", gzip(bomb_json.as_bytes())),
        ("zstd", zstd::encode_all(bomb_json.as_bytes(), 3).unwrap()),
    ] {
        assert!(
            bytes.len() < 64 * 1024,
            "{encoding} bomb is small on the wire"
        );
        let resp = post_encoded(&api, encoding, bytes).await;
        let (status, body) = json(resp).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (413, Some(msg)),
            "{encoding}"
        );
    }

    // Compressed valid traces are accepted.
    let ok = serde_json::to_vec(&example()).unwrap();
    for (encoding, bytes) in [
        ("gzip", gzip(&ok)),
        ("zstd", zstd::encode_all(&ok[..], 3).unwrap()),
    ] {
        let resp = post_encoded(&api, encoding, bytes).await;
        assert_eq!(resp.status(), 202, "{encoding}");
    }
    let resp = post_encoded(&api, "br", ok).await;
    assert_eq!(resp.status(), 415);
    assert!((200..300).contains(&api.status("/healthz").await));
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_retries_give_the_same_id() {
    let api = TestApi::start().await;
    let send = |key: &'static str| {
        api.client
            .post(api.url("/api/traces"))
            .header("idempotency-key", key)
            .json(&example())
            .send()
    };
    let (_, a) = json(send("job-7/trace-1").await.unwrap()).await;
    let (_, b) = json(send("job-7/trace-1").await.unwrap()).await;
    let (_, c) = json(send("job-7/trace-2").await.unwrap()).await;
    assert_eq!(a["id"], b["id"]);
    assert_ne!(a["id"], c["id"]);
    assert_eq!(
        a["id"].as_str().unwrap(),
        tunix_schemas::ids::idempotent_trace_id("job-7/trace-1").to_string()
    );
    let batch = |key: &'static str| {
        api.client
            .post(api.url("/api/traces/batch"))
            .header("idempotency-key", key)
            .json(&dataset()[..5])
            .send()
    };
    let (_, x) = json(batch("batch-1").await.unwrap()).await;
    let (_, y) = json(batch("batch-1").await.unwrap()).await;
    assert_eq!(x["ids"], y["ids"]);
    assert_eq!(x["ids"].as_array().unwrap().len(), 5);
    let resp = api
        .client
        .post(api.url("/api/traces"))
        .header("idempotency-key", "")
        .json(&example())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_answers_503_with_retry_after_then_recovers() {
    let mut broker = Broker::start();
    let topic = TestTopic::on(&broker.brokers(), 3).await;
    let api = TestApi::start_on(topic, TestDb::new().await, |c| {
        c.produce_timeout = Duration::from_secs(2);
    })
    .await;
    assert_eq!(api.post_json("/api/traces", &example()).await.status(), 202);

    broker.stop();
    let started = Instant::now();
    let resp = api.post_json("/api/traces", &example()).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert!(
        resp.headers().get("retry-after").is_some(),
        "Retry-After is set"
    );
    assert!(
        took < Duration::from_secs(4),
        "answered within the bound: {took:?}"
    );
    eventually(
        Duration::from_secs(10),
        "readiness 503 while the broker is down",
        || async {
            (api.client
                .get(api.url("/readyz"))
                .send()
                .await
                .ok()?
                .status()
                == 503)
                .then_some(())
        },
    )
    .await;

    broker.start_again();
    let id = eventually(
        Duration::from_secs(60),
        "recovery after the broker returns",
        || async {
            let resp = api.post_json("/api/traces", &example()).await;
            if resp.status() == 202 {
                return Some(json(resp).await.1["id"].as_str()?.to_owned());
            }
            None
        },
    )
    .await;
    assert!(
        api.events(2).iter().any(|e| e.id().to_string() == id),
        "the post-recovery trace is on the topic"
    );
}
