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
    let (status, ack) = json(api.post_json("/api/traces", &example()).await).await;
    assert_eq!(status, 202);
    let id = ack["id"].as_str().unwrap().to_owned();

    let (status, body) = json(
        api.post_json(
            &format!("/api/traces/{id}/scores"),
            &json!({"name": "correct", "value": 1, "source": "grader", "comment": "ok"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["trace_id"].as_str(), body["name"].as_str()),
        (Some(id.as_str()), Some("correct"))
    );
    assert!(body["recorded_at"].is_string());

    // Client mistakes: 422 with paths, 415, 400, 413; nothing is appended for them.
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
        let (status, answer) = json(
            api.post_json(&format!("/api/traces/{id}/scores"), &body)
                .await,
        )
        .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["detail"][0]["loc"], loc, "{body}");
        assert_eq!(answer["detail"][0]["type"], kind, "{body}");
    }
    let resp = api
        .post_raw(&format!("/api/traces/{id}/scores"), None, b"{}".to_vec())
        .await;
    assert_eq!(resp.status(), 415);
    let (status, _) = json(
        api.post_json("/api/traces/nope/scores", &json!({"name": "n", "value": 1}))
            .await,
    )
    .await;
    assert_eq!(status, 422);

    // A batch: all or nothing, paths under the item.
    let other = uuid::Uuid::now_v7();
    let (status, answer) = json(
        api.post_json(
            "/api/scores/batch",
            &json!([{"trace_id": id, "name": "quality", "value": 0.5},
                    {"trace_id": "bad", "name": "quality", "value": 0.5}]),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["loc"], json!(["body", 1, "trace_id"]));
    assert_eq!(
        json(api.post_json("/api/scores/batch", &json!([])).await)
            .await
            .0,
        400
    );
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"trace_id": id, "name": "q", "value": 1}))
        .collect();
    assert_eq!(
        json(api.post_json("/api/scores/batch", &json!(many)).await)
            .await
            .0,
        413
    );
    let (status, answer) = json(
        api.post_json(
            "/api/scores/batch",
            &json!([{"trace_id": id, "name": "quality", "value": 0.5},
                    {"trace_id": other, "name": "correct", "value": 0}]),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, answer["count"].as_u64()),
        (202, Some(2)),
        "{answer}"
    );

    // Retraction.
    let resp = api
        .client
        .delete(api.url(&format!("/api/traces/{id}/scores/correct")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = api
        .client
        .delete(api.url(&format!("/api/traces/{id}/scores/{}", "y".repeat(65))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    // On the topic: 1 submission + 1 score + 2 batch scores + 1 retraction and its tombstone,
    // each with its own key in its trace's partition (checked by `records`).
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
    api.stop().await;
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
