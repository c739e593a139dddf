//! The seed API's remaining gaps, tried as its clients would: the upstream health check, CORS for
//! a UI on another origin, and the batch answer in both shapes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use tunix_ingest_api::compat::redi::{RediMode, RediSettings};
use tunix_testkit::dataset;

use crate::helpers::*;

/// A local stand-in for the upstream: answers `status` on `/health`, counting calls.
async fn upstream(status: StatusCode, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

fn real(base: &str, ttl: f64) -> RediSettings {
    RediSettings {
        mode: RediMode::Real,
        base_url: base.to_owned(),
        health_path: "/health".into(),
        cache_ttl: Duration::from_secs_f64(ttl),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redi_health_mock_real_down_and_cached() {
    // mock (the default): healthy, nothing called.
    let api = TestApi::start().await;
    assert_eq!(
        api.get("/api/redi/health").await,
        (200, json!({"status": "healthy"}))
    );
    api.stop().await;

    // real, upstream 200: healthy; a second call within the TTL is served from the cache.
    let (base, hits) = upstream(StatusCode::OK, Duration::ZERO).await;
    let api = TestApi::start_with(|c| c.redi = real(&base, 30.0)).await;
    for _ in 0..2 {
        let (status, body) = api.get("/api/redi/health").await;
        assert_eq!((status, body), (200, json!({"status": "healthy"})));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "cached for the TTL");
    api.stop().await;

    // real, upstream 500: down, with the reason; TTL 0 calls every time.
    let (base, hits) = upstream(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO).await;
    let api = TestApi::start_with(|c| c.redi = real(&base, 0.0)).await;
    for _ in 0..2 {
        let (status, body) = api.get("/api/redi/health").await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "down");
        assert_eq!(body["error"], "HTTP 500");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    api.stop().await;

    // real, nothing listening: down, with the connection error.
    let api = TestApi::start_with(|c| c.redi = real("http://127.0.0.1:9", 0.0)).await;
    let (_, body) = api.get("/api/redi/health").await;
    assert_eq!(body["status"], "down");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    api.stop().await;
}

#[test]
fn redi_settings_are_checked_at_start_up() {
    let read = |pairs: &[(&str, &str)]| {
        let mut env = tunix_pipeline::config::Env::from_map(pairs.iter().copied());
        let _ = RediSettings::from_env(&mut env);
        env.finish()
    };
    assert!(read(&[]).is_ok(), "mock needs nothing");
    assert!(
        read(&[("REDIAI_MODE", "real")]).is_err(),
        "real needs a URL"
    );
    assert!(read(&[
        ("REDIAI_MODE", "real"),
        ("REDIAI_BASE_URL", "http://redi:8000")
    ])
    .is_ok());
    assert!(
        read(&[("REDIAI_HEALTH_PATH", "health")]).is_err(),
        "must start with /"
    );
    assert!(read(&[("REDIAI_MODE", "fake")]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_admits_the_configured_origins_only() {
    // Off by default: no CORS headers.
    let api = TestApi::start().await;
    let resp = api
        .client
        .get(api.url("/api/traces"))
        .header("origin", "https://ui.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    api.stop().await;

    let api = TestApi::start_with(|c| c.cors_origins = vec!["https://ui.example.com".into()]).await;
    let preflight = api
        .client
        .request(reqwest::Method::OPTIONS, api.url("/api/traces"))
        .header("origin", "https://ui.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://ui.example.com");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("idempotency-key"));

    let resp = api
        .client
        .post(api.url("/api/traces"))
        .header("origin", "https://ui.example.com")
        .json(&example())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://ui.example.com"
    );
    assert!(resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("location"));

    let stranger = api
        .client
        .get(api.url("/api/traces"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_batch_answer_carries_both_shapes() {
    let api = TestApi::start().await;
    let items: Vec<Value> = dataset()[..3].to_vec();
    let (status, body) = json(api.post_json("/api/traces/batch", &json!(items)).await).await;
    assert_eq!(status, 202);
    assert_eq!(body["count"], 3);
    assert_eq!(body["created_count"], 3, "the seed's field");
    let traces = body["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 3);
    for (n, t) in traces.iter().enumerate() {
        assert_eq!(t["id"], body["ids"][n], "input order");
        assert_eq!(t["created_at"], body["created_at"]);
        assert_eq!(t["trace_version"], items[n]["trace_version"]);
    }
    api.stop().await;
}
