//! Batches: all or nothing, ids in input order.

use serde_json::{json, Value};
use tunix_schemas::TraceEvent;
use tunix_testkit::dataset;

use crate::helpers::*;

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
