//! Every route that takes a JSON body reads it through the one prologue
//! (`http::body::read_json`): a body that is not declared JSON is 415 with a `detail` naming the
//! fix, on every such route alike, and nothing is appended.

use crate::helpers::TestApi;

/// Each route taking a JSON body, with a body that would otherwise be accepted or refused later.
const JSON_ROUTES: &[(&str, &str)] = &[
    ("/api/traces", "{}"),
    (
        "/api/traces/0190a8c6-5b1c-7c3e-9a4e-3f1b2c3d4e5f/scores",
        "{\"name\": \"x\", \"value\": 1}",
    ),
    ("/api/scores/batch", "[]"),
    ("/api/datasets", "{}"),
    ("/api/datasets/build", "{}"),
    ("/api/deletions", "{\"filter\": {}, \"dry_run\": true}"),
];

#[tokio::test]
async fn every_json_route_refuses_a_body_not_declared_json() {
    let api = TestApi::start().await;
    for (path, body) in JSON_ROUTES {
        for content_type in [None, Some("text/plain")] {
            let mut req = api.client.post(api.url(path)).body(*body);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let resp = req.send().await.expect("an answer");
            assert_eq!(resp.status(), 415, "POST {path} with {content_type:?}");
            let detail: serde_json::Value = resp.json().await.expect("JSON body");
            let msg = detail["detail"].as_str().unwrap_or_default();
            assert!(
                msg.contains("application/json"),
                "POST {path} with {content_type:?}: {msg:?}"
            );
        }
    }
    assert!(
        api.events(0).is_empty(),
        "nothing appended for refused bodies"
    );
    api.stop().await;
}
