//! ingest-api over real HTTP against the real broker (started by `infra/test.sh`).

mod helpers;
mod trust;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tunix_ingest_api::auth::{ApiKeys, Scope};
use tunix_schemas::TraceEvent;
use tunix_testkit::{dataset, eventually, Broker, TestDb, TestTopic};

use helpers::*;

fn example() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(tunix_testkit::repo_root().join("testdata/example-27x19.json"))
            .unwrap(),
    )
    .unwrap()
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

/// Every seed validation rule over HTTP: status 422 and FastAPI's detail shape.
#[tokio::test(flavor = "multi_thread")]
async fn seed_validation_cases_answer_422_with_paths() {
    let api = TestApi::start().await;
    let base = json!({"trace_version": "1", "prompt": "p", "final_answer": "a", "steps": [{"i": 0, "type": "t", "content": "c"}]});
    let set = |path: &[&str], value: Value| {
        let mut v = base.clone();
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
    };
    let cases: Vec<(Value, Value, &str)> = vec![
        (
            set(&["trace_version"], json!("")),
            json!(["body", "trace_version"]),
            "string_too_short",
        ),
        (
            set(&["trace_version"], json!("x".repeat(65))),
            json!(["body", "trace_version"]),
            "string_too_long",
        ),
        (
            set(&["prompt"], json!("")),
            json!(["body", "prompt"]),
            "string_too_short",
        ),
        (
            set(&["prompt"], json!("x".repeat(50_001))),
            json!(["body", "prompt"]),
            "string_too_long",
        ),
        (
            set(&["final_answer"], json!("")),
            json!(["body", "final_answer"]),
            "string_too_short",
        ),
        (
            set(&["final_answer"], json!("ü".repeat(50_001))),
            json!(["body", "final_answer"]),
            "string_too_long",
        ),
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
            set(&["steps", "0", "type"], json!("")),
            json!(["body", "steps", 0, "type"]),
            "string_too_short",
        ),
        (
            set(&["steps", "0", "type"], json!("t".repeat(65))),
            json!(["body", "steps", 0, "type"]),
            "string_too_long",
        ),
        (
            set(&["steps", "0", "content"], json!("")),
            json!(["body", "steps", 0, "content"]),
            "string_too_short",
        ),
        (
            set(&["steps", "0", "content"], json!("c".repeat(20_001))),
            json!(["body", "steps", 0, "content"]),
            "string_too_long",
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
    ];
    for (body, loc, kind) in cases {
        let (status, detail) = json(api.post_json("/api/traces", &body).await).await;
        assert_eq!(status, 422, "{loc} {kind}");
        let first = &detail["detail"][0];
        assert_eq!(first["loc"], loc, "{detail}");
        assert_eq!(first["type"], kind, "{detail}");
        assert!(first["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Valid at the edges: accepted.
    for body in [
        set(&["trace_version"], json!("x".repeat(64))),
        set(&["prompt"], json!("🧠".repeat(50_000))),
        set(&["steps", "0", "content"], json!("c".repeat(20_000))),
        set(&["steps", "0", "i"], json!(0)),
        set(&["meta"], Value::Null),
    ] {
        assert_eq!(api.post_json("/api/traces", &body).await.status(), 202);
    }
    // Malformed JSON and wrong content types are 4xx with a detail, never 5xx.
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

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
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
        let resp = api
            .client
            .post(api.url("/api/traces"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(bytes)
            .send()
            .await
            .unwrap();
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
        let resp = api
            .client
            .post(api.url("/api/traces"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{encoding}");
    }
    let resp = api
        .client
        .post(api.url("/api/traces"))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body(ok)
        .send()
        .await
        .unwrap();
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
async fn batches_are_all_or_nothing() {
    let api = TestApi::start().await;
    let mut items: Vec<Value> = dataset()[..10].to_vec();
    items[7]["steps"][0]["i"] = json!(-1);
    let (status, body) = json(api.post_json("/api/traces/batch", &json!(items)).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", 7, "steps", 0, "i"])
    );

    let (status, body) = json(api.post_json("/api/traces/batch", &json!([])).await).await;
    assert_eq!(status, 400, "{body}");
    let too_many: Vec<Value> = (0..1001).map(|i| dataset()[i % 550].clone()).collect();
    let (status, body) = json(api.post_json("/api/traces/batch", &json!(too_many)).await).await;
    assert_eq!(status, 413);
    assert!(
        body["detail"].as_str().unwrap().contains("1000"),
        "names the limit: {body}"
    );

    // A good batch, as a JSON array and as NDJSON: ids in input order.
    let good: Vec<Value> = dataset()[..10].to_vec();
    let (status, body) = json(api.post_json("/api/traces/batch", &json!(good)).await).await;
    assert_eq!(status, 202);
    let ndjson: String = dataset()[10..15].iter().map(|v| format!("{v}\n")).collect();
    let (status, body2) = json(
        api.post_raw(
            "/api/traces/batch",
            Some("application/x-ndjson"),
            ndjson.into_bytes(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body2["count"], 5);

    let events = api.events(15);
    assert_eq!(events.len(), 15, "the rejected batches appended nothing");
    let ids: Vec<&str> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let TraceEvent::Submitted(s) = events.iter().find(|e| e.id().to_string() == *id).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            s.trace.prompt(),
            good[n]["prompt"].as_str().unwrap(),
            "ids in input order"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_answers_503_with_retry_after_then_recovers() {
    let mut broker = Broker::start_durable();
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

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_gate_every_api_route_by_scope() {
    let ingest = "ingest-key-0123456789";
    let reader = "reader-key-0123456789";
    let admin = "admin-key-01234567890";
    let api = TestApi::start_with(|c| {
        c.api_keys = ApiKeys::from_pairs(&[
            (ingest, &[Scope::Ingest]),
            (reader, &[Scope::Read]),
            (admin, &[Scope::Admin]),
        ]);
    })
    .await;
    let id = uuid::Uuid::now_v7();
    let call = |method: reqwest::Method, path: String, key: Option<&'static str>| {
        let mut req = api.client.request(method, api.url(&path)).json(&example());
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    use reqwest::Method;
    for (method, path) in [
        (Method::POST, "/api/traces".to_owned()),
        (Method::GET, "/api/traces".to_owned()),
        (Method::GET, format!("/api/traces/{id}")),
        (Method::DELETE, format!("/api/traces/{id}")),
        (Method::GET, "/api/health".to_owned()),
    ] {
        let resp = call(method.clone(), path.clone(), None).await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} without a key");
        assert!(resp.headers().get("www-authenticate").is_some());
        let resp = call(method.clone(), path.clone(), Some("wrong-key-0123456789"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} with a bad key");
    }
    assert_eq!(
        call(Method::POST, "/api/traces".into(), Some(reader))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        call(Method::GET, "/api/traces".into(), Some(ingest))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        call(Method::DELETE, format!("/api/traces/{id}"), Some(reader))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        call(Method::POST, "/api/traces".into(), Some(ingest))
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        call(Method::GET, "/api/traces".into(), Some(reader))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call(Method::DELETE, format!("/api/traces/{id}"), Some(admin))
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        call(Method::POST, "/api/traces".into(), Some(admin))
            .await
            .unwrap()
            .status(),
        202,
        "admin includes ingest"
    );
    // Ops endpoints stay open for probes and scrapers.
    assert_eq!(api.status("/healthz").await, 200);
    assert_eq!(api.status("/metrics").await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_exported_under_their_documented_names() {
    let api = TestApi::start().await;
    assert_eq!(api.post_json("/api/traces", &example()).await.status(), 202);
    assert_eq!(
        api.post_json("/api/traces", &json!({"prompt": ""}))
            .await
            .status(),
        422
    );
    let text = api
        .client
        .get(api.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in tunix_ingest_api::metrics::names::ALL {
        assert!(text.contains(name), "{name} is exported:\n{text}");
    }
    assert!(text.contains("tunix_ingest_requests_total{route=\"/api/traces\",status=\"202\"}"));
    assert!(text.contains("tunix_ingest_validation_failures_total{reason=\"string_too_short\"}"));
    assert!(
        text.contains("tunix_ingest_produce_latency_seconds_bucket"),
        "a histogram, not a summary"
    );
    api.stop().await;
}

/// SIGTERM while requests are in flight: each of them still gets its answer, every 2xx is on the
/// topic, and new connections are refused afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests() {
    let topic = TestTopic::new(3).await;
    let db = TestDb::new().await;
    let port = tunix_testkit::free_port();
    let mut service = tunix_testkit::Service::start(
        "ingest-api",
        env!("CARGO_BIN_EXE_tunix-ingest-api").into(),
        vec![
            ("API_ADDR".into(), format!("127.0.0.1:{port}")),
            ("KAFKA_BROKERS".into(), topic.settings.brokers.clone()),
            ("KAFKA_TOPIC".into(), topic.name().into()),
            ("DATABASE_URL".into(), db.url.clone()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(30), "ingest-api ready", || async {
        (client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .ok()?
            .status()
            == 200)
            .then_some(())
    })
    .await;

    // 20 requests whose bodies are half sent when SIGTERM arrives.
    let body = serde_json::to_vec(&example()).unwrap();
    let mut senders = Vec::new();
    let mut inflight = Vec::new();
    for _ in 0..20 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        tx.send(Ok(body[..body.len() / 2].to_vec())).await.unwrap();
        senders.push(tx);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let req = client
            .post(format!("{base}/api/traces"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send();
        inflight.push(tokio::spawn(req));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // let every request reach the server
    let pid = service.pid().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for tx in senders {
        tx.send(Ok(body[body.len() / 2..].to_vec())).await.unwrap();
    }
    let mut ids = Vec::new();
    for req in inflight {
        let resp = req
            .await
            .unwrap()
            .expect("in-flight requests get an answer");
        assert_eq!(resp.status(), 202);
        ids.push(
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let status = service
        .terminate(Duration::from_secs(30))
        .expect("exits after draining");
    assert!(status.success(), "clean exit: {}", service.log_tail(20));
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer accepting"
    );

    let on_topic: Vec<String> = tunix_testkit::consume_all(
        &topic.settings.brokers,
        topic.name(),
        ids.len(),
        Duration::from_secs(20),
    )
    .iter()
    .map(|m| {
        TraceEvent::decode(rdkafka::message::Message::payload(m).unwrap())
            .unwrap()
            .id()
            .to_string()
    })
    .collect();
    for id in &ids {
        assert!(on_topic.contains(id), "acknowledged {id} is on the topic");
    }
}

/// The OpenAPI document parses, and lists exactly the routes the router serves (pinned here:
/// changing the public HTTP surface is deliberate).
#[tokio::test(flavor = "multi_thread")]
async fn openapi_lists_every_served_route() {
    let api = TestApi::start().await;
    let (status, doc) = json(
        api.client
            .get(api.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "delete", "put", "patch"] {
            if let Some(op) = item.get(method) {
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents its responses"
                );
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let expected: Vec<(String, String)> = [
        ("DELETE", "/api/traces/{id}"),
        ("GET", "/"),
        ("GET", "/api/health"),
        ("GET", "/api/traces"),
        ("GET", "/api/traces/{id}"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/readyz"),
        ("GET", "/ui/app.css"),
        ("GET", "/ui/app.js"),
        ("GET", "/ui/example.json"),
        ("POST", "/api/traces"),
        ("POST", "/api/traces/batch"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(documented, expected);
    // Every documented operation is served (an unrouted request gets an empty 404 or a 405).
    for (method, path) in &documented {
        let url = api.url(&path.replace("{id}", &uuid::Uuid::new_v4().to_string()));
        let resp = api
            .client
            .request(method.parse().unwrap(), url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        assert!(
            status != 405 && !(status == 404 && body.is_empty()),
            "{method} {path} is routed: {status}"
        );
    }
    // An undocumented route is not served.
    assert_eq!(api.status("/api/nope").await, 404);
    // Schemas and error shapes are in the document.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "TraceIn",
        "StepIn",
        "Accepted",
        "BatchAccepted",
        "ListPage",
        "ListItem",
        "Pagination",
        "TraceOut",
        "ErrorBody",
        "ValidationErrorBody",
        "ValidationDetail",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    let post = &doc["paths"]["/api/traces"]["post"]["responses"];
    for code in ["202", "413", "415", "422", "503"] {
        assert!(
            post.get(code).is_some(),
            "POST /api/traces documents {code}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_is_served_from_the_public_address() {
    let api = TestApi::start().await;
    let resp = api.client.get(api.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("/ui/app.js") && html.contains("Load example"));
    let example = api
        .client
        .get(api.url("/ui/example.json"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(example["prompt"], "Convert 68°F to Celsius");
    for asset in ["/ui/app.js", "/ui/app.css"] {
        assert_eq!(api.status(asset).await, 200, "{asset}");
    }
}

/// The read API gives up on a query after `QUERY_TIMEOUT` (503); its connections carry the same
/// `statement_timeout`, so Postgres stops the query too instead of running it to the end (a
/// deep offset page on ten million rows kept Postgres busy for minutes after its 503).
#[tokio::test(flavor = "multi_thread")]
async fn read_queries_are_cancelled_in_postgres_at_the_read_limit() {
    let topic = TestTopic::new(1).await;
    let db = TestDb::new().await;
    let cfg =
        tunix_ingest_api::IngestConfig::for_tests(&topic.settings.brokers, topic.name(), &db.url);
    let state = tunix_ingest_api::AppState::new(cfg).expect("state");
    let limit: String = sqlx::query_scalar("SELECT current_setting('statement_timeout')")
        .fetch_one(&state.pool)
        .await
        .unwrap();
    assert_eq!(
        limit,
        format!("{}s", tunix_ingest_api::read::QUERY_TIMEOUT.as_secs()),
        "ingest-api's connections carry the read limit"
    );
    // And Postgres enforces it: a statement past the limit is cancelled (SQLSTATE 57014), which
    // the read API maps to 503 like any other database trouble.
    let started = Instant::now();
    let err = sqlx::query("SELECT pg_sleep(30)")
        .execute(&state.pool)
        .await
        .expect_err("cancelled by statement_timeout");
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "{err}");
    assert!(
        tunix_pipeline::db::is_transient(&err),
        "answers 503, not 500"
    );
}
