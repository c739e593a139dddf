//! Scores through the API: validation, batches, retractions, and where the events land (their
//! own key, their trace's partition); our partitioner against librdkafka's own.

use std::time::Duration;

use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use tunix_schemas::TraceEvent;
use tunix_testkit::TestTopic;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn scores_are_validated_and_appended_beside_their_trace() {
    let api = TestApi::start().await;
    let (status, ack) = api.post("/api/traces", &example()).await;
    assert_eq!(status, 202);
    let id = ack["id"].as_str().unwrap().to_owned();
    a_score_is_acknowledged_with_its_trace_and_name(&api, &id).await;
    client_mistakes_are_refused_with_paths(&api, &id).await;
    a_batch_is_all_or_nothing_with_paths_under_the_item(&api, &id).await;
    a_retraction_is_acknowledged_and_a_bad_name_refused(&api, &id).await;
    each_event_has_its_own_key_in_its_traces_partition(&api, &id);
    api.stop().await;
}

async fn a_score_is_acknowledged_with_its_trace_and_name(api: &TestApi, id: &str) {
    let (status, body) = api
        .post(
            &format!("/api/traces/{id}/scores"),
            &json!({"name": "correct", "value": 1, "source": "grader", "comment": "ok"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["trace_id"].as_str(), body["name"].as_str()),
        (Some(id), Some("correct"))
    );
    assert!(body["recorded_at"].is_string());
}

/// Client mistakes: 422 with paths, 415; nothing is appended for them (counted on the topic at
/// the end).
async fn client_mistakes_are_refused_with_paths(api: &TestApi, id: &str) {
    for (body, loc, kind) in [
        (json!({"value": 1}), json!(["body", "name"]), "missing"),
        (
            json!({"name": "", "value": 1}),
            json!(["body", "name"]),
            "string_too_short",
        ),
        (
            json!({"name": "x".repeat(65), "value": 1}),
            json!(["body", "name"]),
            "string_too_long",
        ),
        (
            json!({"name": "n", "value": "high"}),
            json!(["body", "value"]),
            "value_error",
        ),
        (json!({"name": "n"}), json!(["body", "value"]), "missing"),
        (
            json!({"name": "n", "value": 1, "source": 5}),
            json!(["body", "source"]),
            "string_type",
        ),
        (json!([1]), json!(["body"]), "model_type"),
    ] {
        let (status, answer) = api.post(&format!("/api/traces/{id}/scores"), &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["detail"][0]["loc"], loc, "{body}");
        assert_eq!(answer["detail"][0]["type"], kind, "{body}");
    }
    let resp = api
        .post_raw(&format!("/api/traces/{id}/scores"), None, b"{}".to_vec())
        .await;
    assert_eq!(resp.status(), 415);
    let (status, _) = api
        .post("/api/traces/nope/scores", &json!({"name": "n", "value": 1}))
        .await;
    assert_eq!(status, 422);
}

/// A batch: all or nothing, paths under the item; empty is 400, over 1,000 items 413.
async fn a_batch_is_all_or_nothing_with_paths_under_the_item(api: &TestApi, id: &str) {
    let other = uuid::Uuid::now_v7();
    let (status, answer) = api
        .post(
            "/api/scores/batch",
            &json!([{"trace_id": id, "name": "quality", "value": 0.5},
                    {"trace_id": "bad", "name": "quality", "value": 0.5}]),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["loc"], json!(["body", 1, "trace_id"]));
    assert_eq!(api.post("/api/scores/batch", &json!([])).await.0, 400);
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"trace_id": id, "name": "q", "value": 1}))
        .collect();
    assert_eq!(api.post("/api/scores/batch", &json!(many)).await.0, 413);
    let (status, answer) = api
        .post(
            "/api/scores/batch",
            &json!([{"trace_id": id, "name": "quality", "value": 0.5},
                    {"trace_id": other, "name": "correct", "value": 0}]),
        )
        .await;
    assert_eq!(
        (status, answer["count"].as_u64()),
        (202, Some(2)),
        "{answer}"
    );
}

/// Retraction: 202; a name over 64 characters is 422.
async fn a_retraction_is_acknowledged_and_a_bad_name_refused(api: &TestApi, id: &str) {
    let calls = api.calls();
    let (status, _) = calls
        .delete(&format!("/api/traces/{id}/scores/correct"))
        .await;
    assert_eq!(status, 202);
    let (status, _) = calls
        .delete(&format!("/api/traces/{id}/scores/{}", "y".repeat(65)))
        .await;
    assert_eq!(status, 422);
}

/// On the topic: 1 submission + 1 score + 2 batch scores + 1 retraction and its tombstone, each
/// with its own key in its trace's partition (checked by `records`).
fn each_event_has_its_own_key_in_its_traces_partition(api: &TestApi, id: &str) {
    let records = api.records(6);
    assert_eq!(records.len(), 6);
    let submission_partition = records
        .iter()
        .find(|(_, e)| matches!(e, TraceEvent::Submitted(_)))
        .unwrap()
        .0;
    for (partition, event) in &records {
        if event.id().to_string() == id {
            assert_eq!(*partition, submission_partition, "{event:?}");
        }
    }
    let kinds: Vec<&str> = records
        .iter()
        .map(|(_, e)| match e {
            TraceEvent::Submitted(_) => "submitted",
            TraceEvent::ScoreRecorded(_) => "recorded",
            TraceEvent::ScoreRetracted(_) => "retracted",
            TraceEvent::Deleted(_) => "deleted",
            _ => "dataset",
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "recorded").count(), 3);
    assert_eq!(
        kinds.iter().filter(|k| **k == "retracted").count(),
        2,
        "the retraction, then its key's tombstone"
    );
}

/// Scores are placed by `schemas::partition_for`, submissions were placed by librdkafka's default
/// partitioner: they must agree for every id, or a score could overtake its trace.
#[tokio::test(flavor = "multi_thread")]
async fn our_partitioner_agrees_with_librdkafkas_default() {
    let topic = TestTopic::new(7).await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &topic.settings.brokers)
        .create()
        .unwrap();
    let ids: Vec<uuid::Uuid> = (0..200).map(|_| uuid::Uuid::new_v4()).collect();
    for id in &ids {
        let key = id.to_string();
        producer
            .send(
                FutureRecord::to(topic.name()).key(&key).payload("x"),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let records = tunix_testkit::consume_all(
        &topic.settings.brokers,
        topic.name(),
        ids.len(),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), ids.len());
    for m in records {
        let id: uuid::Uuid = std::str::from_utf8(m.key().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(m.partition(), tunix_schemas::partition_for(&id, 7), "{id}");
    }
}
