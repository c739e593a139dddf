//! The published surface: the OpenAPI document, metric names, the UI.

use serde_json::{json, Value};

use crate::helpers::*;

/// The OpenAPI document parses, and lists exactly the routes the router serves (pinned here:
/// changing the public HTTP surface is deliberate).
#[tokio::test(flavor = "multi_thread")]
async fn openapi_lists_every_served_route() {
    let api = TestApi::start().await;
    let (status, doc) = api.get("/openapi.json").await;
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
        ("DELETE", "/api/datasets/{name}/{version}"),
        ("DELETE", "/api/deletions/{id}"),
        ("DELETE", "/api/traces/{id}"),
        ("DELETE", "/api/traces/{id}/scores/{name}"),
        ("GET", "/"),
        ("GET", "/api/audit"),
        ("GET", "/api/datasets"),
        ("GET", "/api/datasets/{name}/export.jsonl"),
        ("GET", "/api/datasets/{name}/{version}"),
        ("GET", "/api/datasets/{name}/{version}/export"),
        ("GET", "/api/deletions/{id}"),
        ("GET", "/api/health"),
        ("GET", "/api/pipeline"),
        ("GET", "/api/redi/health"),
        ("GET", "/api/registry/schemas/ids/{id}"),
        ("GET", "/api/registry/subjects"),
        ("GET", "/api/registry/subjects/{subject}/versions"),
        ("GET", "/api/registry/subjects/{subject}/versions/{version}"),
        ("GET", "/api/traces"),
        ("GET", "/api/traces/compare"),
        ("GET", "/api/traces/stats"),
        ("GET", "/api/traces/{id}"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/readyz"),
        ("GET", "/ui/app.css"),
        ("GET", "/ui/app.js"),
        ("GET", "/ui/example.json"),
        ("GET", "/ui/{dir}/{file}"),
        ("POST", "/api/datasets"),
        ("POST", "/api/datasets/build"),
        ("POST", "/api/deletions"),
        ("POST", "/api/scores/batch"),
        ("POST", "/api/traces"),
        ("POST", "/api/traces/batch"),
        ("POST", "/api/traces/{id}/score"),
        ("POST", "/api/traces/{id}/scores"),
        ("POST", "/v1/traces"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(documented, expected);
    // Every documented operation is served (an unrouted request gets an empty 404 or a 405).
    for (method, path) in &documented {
        let url = api.url(
            &path
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
                .replace("{name}", "correct")
                .replace("{dir}", "lib")
                .replace("{file}", "dom.js"),
        );
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
async fn metrics_are_exported_under_their_documented_names() {
    // With redaction rules, so the per-rule series exist too.
    let api = TestApi::start_with(|cfg| {
        cfg.redaction = Some(std::sync::Arc::new(
            tunix_schemas::redact::RedactionRules::builtin(),
        ))
    })
    .await;
    assert_eq!(api.post_json("/api/traces", &example()).await.status(), 202);
    assert_eq!(
        api.post_json("/api/traces", &json!({"prompt": ""}))
            .await
            .status(),
        422
    );
    // An OTLP export with one span that is not an inference span (counted, not stored).
    let otlp = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "GET /"}]}]}]});
    assert_eq!(api.post_json("/v1/traces", &otlp).await.status(), 200);
    let text = api.metrics().await;
    for name in tunix_ingest_api::http::metrics::names::ALL {
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
