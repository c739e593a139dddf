//! The built-in Schema Registry's answers in the Confluent API's shapes, errors included (its
//! clients read `error_code`).

use serde_json::json;

use crate::helpers::TestApi;

#[tokio::test(flavor = "multi_thread")]
async fn answers_and_errors_have_the_registry_apis_shapes() {
    let api = TestApi::start().await;
    let subject = format!("{}-ai.tunix.events.TraceSubmitted", api.topic.name());
    let get = |path: String| {
        let req = api.client.get(api.url(&format!("/api/registry{path}")));
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, ct, body)
        }
    };
    let (status, ct, body) = get(format!("/subjects/{subject}/versions/latest")).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/vnd.schemaregistry.v1+json")
    );
    assert_eq!(body["id"], 1_000_000_002);
    assert_eq!(body["version"], 2);
    assert_eq!(body["subject"], subject.as_str());
    let (_, _, v1) = get(format!("/subjects/{subject}/versions/1")).await;
    assert_eq!(v1["id"], 1_000_000_001);
    let (status, _, body) = get("/schemas/ids/1000000004?subject=x&format=y".into()).await;
    assert_eq!(status, 200, "newer clients' query parameters are ignored");
    assert!(body["schema"].as_str().unwrap().contains("ScoreRecorded"));
    for (path, status, code) in [
        ("/schemas/ids/5".to_owned(), 404, 40403),
        ("/schemas/ids/1000099999".to_owned(), 404, 40403),
        ("/schemas/ids/abc".to_owned(), 404, 40403),
        ("/subjects/nope/versions".to_owned(), 404, 40401),
        (format!("/subjects/{subject}/versions/9"), 404, 40402),
        (format!("/subjects/{subject}/versions/abc"), 422, 42202),
    ] {
        let (got, ct, body) = get(path.clone()).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(ct, "application/vnd.schemaregistry.v1+json", "{path}");
        assert_eq!(body["error_code"], json!(code), "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    api.stop().await;
}
