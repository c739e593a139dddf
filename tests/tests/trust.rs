//! The "Trust" promises over the real pipeline (ingest-api → broker → writer and projector →
//! Postgres, each a separate process): what the seed API accepted is stored and read back as sent,
//! and the documented decisions about retried Idempotency-Keys and id spellings hold.

use serde_json::{json, Value};
use tunix_e2e::{metric_sum, Stack, StackOptions};
use tunix_testkit::{eventually, CONVERGE};

async fn raw_get(stack: &Stack, path: &str) -> (u16, String) {
    let resp = stack.http.get(stack.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Before: 202, then "value overflows numeric format" in the writer, the event dead-lettered as
/// `postgres_rejected`, GET 404 forever while the list showed the trace; and NUL was refused.
#[tokio::test(flavor = "multi_thread")]
async fn nul_and_numbers_beyond_numeric_are_acknowledged_stored_and_read_back_as_sent() {
    let stack = Stack::start(StackOptions::default()).await;
    let meta = r#"{"zero":0e-99999,"tiny":1e-400,"spelled":1E+2,"big":123456789012345678901234567890,"nul\u0000key":["a\u0000b"]}"#;
    let body = format!(
        r#"{{"trace_version":"v1\u0000beta","prompt":"What\u0000 is ␀ 2+2?","final_answer":"4\u0000","steps":[{{"i":0,"type":"comp\u0000ute","content":"2+2=4\u0000"}}],"meta":{meta}}}"#
    );
    let resp = stack
        .http
        .post(stack.url("/api/traces"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(ack["trace_version"], "v1\u{0}beta");
    let id = ack["id"].as_str().unwrap().to_owned();
    stack.wait_converged(1, CONVERGE).await;

    let (status, text) = raw_get(&stack, &format!("/api/traces/{id}")).await;
    assert_eq!(status, 200, "{text}");
    // Numbers keep their spelling, byte for byte.
    assert!(text.contains(meta), "meta comes back verbatim: {text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got["payload"]["prompt"], sent["prompt"]);
    assert_eq!(got["payload"]["steps"], sent["steps"]);
    assert_eq!(got["payload"]["final_answer"], sent["final_answer"]);
    assert_eq!(got["trace_version"], "v1\u{0}beta");

    // The list shows the same strings, and the version filter finds it by its NUL.
    let (status, page) = stack.get("/api/traces").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"][0]["trace_version"], "v1\u{0}beta");
    assert_eq!(page["data"][0]["prompt_preview"], "What\u{0} is ␀ 2+2?");
    let (_, page) = stack.get("/api/traces?trace_version=v1%00beta").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    for other in ["v1", "v1%00", "v1%E2%90%800beta", "v1beta"] {
        let (_, page) = stack
            .get(&format!("/api/traces?trace_version={other}"))
            .await;
        assert_eq!(page["data"], json!([]), "{other} is a different version");
    }

    // Nothing went to the dead-letter topic.
    let writer_metrics = stack.scrape(&stack.writer_ops).await.unwrap();
    assert_eq!(
        metric_sum(&writer_metrics, "tunix_writer_dlq_total").unwrap_or(0.0),
        0.0,
        "{writer_metrics}"
    );
}

/// The documented decisions: a key reused with a different body replaces the trace (the last
/// submission of an id wins, as compaction of the topic keeps it; the ingest path has no state to
/// compare bodies before the broker's ack) and the writer reports the conflict; each 202 carries
/// its own acceptance time, and the stored trace has the last one's; other UUID spellings read
/// the same trace.
#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_reuse_and_id_spellings_behave_as_documented() {
    let stack = Stack::start(StackOptions::default()).await;
    let post = |prompt: &'static str| {
        let stack = &stack;
        async move {
            let trace = json!({"trace_version": "1", "prompt": prompt, "final_answer": "a",
                               "steps": [{"i": 0, "type": "t", "content": "c"}]});
            let (status, ack) = stack
                .client()
                .post_keyed("/api/traces", &trace, "trust/reuse-1")
                .await;
            assert_eq!(status, 202);
            ack
        }
    };
    let first = post("first body").await;
    stack.wait_converged(1, CONVERGE).await;
    let retry = post("first body").await;
    let conflicting = post("a different body").await;
    assert_eq!(first["id"], retry["id"]);
    assert_eq!(first["id"], conflicting["id"]);
    assert_ne!(
        first["created_at"], conflicting["created_at"],
        "each 202 carries its own acceptance time"
    );

    let id = first["id"].as_str().unwrap();
    let conflicts = eventually(CONVERGE, "the writer reports one conflict", || async {
        let text = stack.scrape(&stack.writer_ops).await?;
        let n = metric_sum(&text, "tunix_writer_idempotency_conflicts_total")?;
        (n >= 1.0).then_some(n)
    })
    .await;
    assert_eq!(conflicts, 1.0, "the identical retry is not a conflict");
    let stored = eventually(CONVERGE, "the last body is stored", || async {
        let (_, stored) = stack.get(&format!("/api/traces/{id}")).await;
        (stored["payload"]["prompt"] == "a different body").then_some(stored)
    })
    .await;
    assert_eq!(
        stored["created_at"], conflicting["created_at"],
        "and its created_at"
    );

    let simple = id.replace('-', "");
    for spelling in [
        simple.clone(),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        id.to_uppercase(),
    ] {
        let (status, body) = stack
            .get(&format!(
                "/api/traces/{}",
                spelling.replace('{', "%7B").replace('}', "%7D")
            ))
            .await;
        assert_eq!(status, 200, "{spelling}");
        assert_eq!(body["id"], id, "{spelling}: answered with the canonical id");
    }
}
