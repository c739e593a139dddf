//! Redaction at ingest (`REDACTION_RULES`): secrets are replaced before the event is appended, so
//! they never reach the topic; the 202 says how many per rule; metrics count them; bad rules stop
//! start-up with every problem listed.

use std::sync::Arc;

use serde_json::json;
use tunix_ingest_api::IngestConfig;
use tunix_pipeline::config::Env;
use tunix_schemas::redact::RedactionRules;
use tunix_schemas::TraceEvent;

use crate::helpers::{json, TestApi};

const SECRET: &str = "sk-live_0123456789abcdefghijklmnop";
const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";

fn rules() -> Arc<RedactionRules> {
    Arc::new(
        RedactionRules::parse(
            r#"{"rules": [
                {"name": "secret", "detector": "secret"},
                {"name": "credit_card", "detector": "credit_card"},
                {"name": "email", "detector": "email"},
                {"name": "phone", "detector": "phone"},
                {"name": "ticket", "pattern": "TICKET-[0-9]{6}", "fields": ["meta"], "replacement": "[ticket]"}
            ]}"#,
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_topic_and_the_answer_counts_them() {
    let api = TestApi::start_with(|cfg| cfg.redaction = Some(rules())).await;
    let body = json!({
        "trace_version": "1",
        "prompt": format!("my key is {SECRET}, mail {EMAIL}"),
        "final_answer": format!("charged {CARD}"),
        "steps": [{"i": 0, "type": "think", "content": format!("call +1 415 555 2671 or {EMAIL}")}],
        "meta": {"ticket": "TICKET-123456", "user": EMAIL, "n": 7}
    });
    let (status, ack) = json(api.post_json("/api/traces", &body).await).await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(
        ack["redactions"],
        json!({"secret": 1, "credit_card": 1, "email": 3, "phone": 1, "ticket": 1})
    );
    let batch = json!([body, {"trace_version": "1", "prompt": "clean", "final_answer": "a",
                              "steps": [{"i": 0, "type": "t", "content": "c"}]}]);
    let (status, ack) = json(api.post_json("/api/traces/batch", &batch).await).await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(
        ack["redactions"],
        json!({"secret": 1, "credit_card": 1, "email": 3, "phone": 1, "ticket": 1}),
        "batch totals"
    );

    // Not a byte of the secrets is on the topic.
    let records = tunix_testkit::consume_all(
        &api.topic.settings.brokers,
        api.topic.name(),
        3,
        std::time::Duration::from_secs(20),
    );
    assert_eq!(records.len(), 3);
    for m in &records {
        let value = rdkafka::message::Message::payload(m).unwrap();
        for secret in [SECRET, EMAIL, "4111 1111", "TICKET-123456", "555 2671"] {
            assert!(
                !value.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} reached the topic"
            );
        }
    }
    let redacted = api
        .events(3)
        .into_iter()
        .find_map(|e| match e {
            TraceEvent::Submitted(s) if s.trace.prompt() != "clean" => Some(s.trace),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        redacted.prompt(),
        "my key is [REDACTED:secret], mail [REDACTED:email]"
    );
    assert_eq!(redacted.final_answer(), "charged [REDACTED:credit_card]");
    assert_eq!(
        redacted.meta().unwrap().as_str(),
        r#"{"n":7,"ticket":"[ticket]","user":"[REDACTED:email]"}"#,
        "meta keeps its text except the redacted values"
    );

    // Metrics count accepted replacements per rule (zeros exported up front).
    let metrics = api.metrics().await;
    for (rule, n) in [("email", 6), ("secret", 2), ("ticket", 2)] {
        let line = format!("tunix_ingest_redactions_total{{rule=\"{rule}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_rules_nothing_is_redacted_and_the_answer_has_no_counts() {
    let api = TestApi::start().await;
    let body = json!({"trace_version": "1", "prompt": format!("key {SECRET}"), "final_answer": "a",
                      "steps": [{"i": 0, "type": "t", "content": "c"}]});
    let (status, ack) = json(api.post_json("/api/traces", &body).await).await;
    assert_eq!(status, 202);
    assert!(ack.get("redactions").is_none(), "{ack}");
    api.stop().await;
}

#[test]
fn bad_rules_stop_start_up_with_every_problem() {
    let dir = tunix_testkit::artifacts_dir();
    let path = dir.join(tunix_testkit::unique("rules.json"));
    std::fs::write(
        &path,
        r#"{"rules": [{"name": "a", "detector": "ssn"}, {"name": "b", "pattern": "("}]}"#,
    )
    .unwrap();
    let env = Env::from_map([("REDACTION_RULES", path.display().to_string())]);
    let err = IngestConfig::from_env(env).unwrap_err().to_string();
    assert!(err.contains("rule 1 (a): unknown detector"), "{err}");
    assert!(
        err.contains("rule 2 (b): the pattern does not compile"),
        "{err}"
    );
    let env = Env::from_map([("REDACTION_RULES", "/nonexistent/rules.json")]);
    let err = IngestConfig::from_env(env).unwrap_err().to_string();
    assert!(
        err.contains("REDACTION_RULES=/nonexistent/rules.json"),
        "{err}"
    );
}
