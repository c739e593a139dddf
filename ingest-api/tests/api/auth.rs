//! API keys: every `/api` route demands its documented scope. The routes are not listed by hand:
//! they are walked from the OpenAPI document, which lists exactly what the router serves, so a new
//! route without an entry in `router::ROUTE_SCOPES` (and in the README's auth table) fails here.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;
use tunix_ingest_api::http::auth::{ApiKeys, Scope};

use crate::helpers::*;

use tunix_ingest_api::router::ROUTE_SCOPES as SCOPES;

const INGEST: &str = "ingest-key-0123456789";
const READER: &str = "reader-key-0123456789";
const ADMIN: &str = "admin-key-01234567890";

/// Every `(METHOD, path)` of the OpenAPI document under `/api`.
fn documented_api_routes() -> BTreeSet<(String, String)> {
    let doc = serde_json::to_value(tunix_ingest_api::openapi_document()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api") && !path.starts_with("/v1") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_scope_table_covers_every_documented_api_route() {
    let table: BTreeSet<(String, String)> = SCOPES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented_api_routes(), table);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_api_route_demands_its_documented_scope() {
    let api = TestApi::start_with(|c| {
        c.api_keys = ApiKeys::from_pairs(&[
            (INGEST, &[Scope::Ingest]),
            (READER, &[Scope::Read]),
            (ADMIN, &[Scope::Admin]),
        ]);
    })
    .await;
    let id = uuid::Uuid::now_v7().to_string();
    let call = |method: &str, path: &str, key: Option<&str>| {
        let mut req = api
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                api.url(&path.replace("{id}", &id)),
            )
            .json(&example());
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        async move { req.send().await.unwrap() }
    };
    for (method, path, scope) in SCOPES {
        let route = format!("{method} {path}");
        // No key, or an unknown one: 401 with a Bearer challenge.
        for key in [None, Some("wrong-key-0123456789")] {
            let resp = call(method, path, key).await;
            assert_eq!(resp.status(), 401, "{route} with {key:?}");
            assert!(resp.headers().get("www-authenticate").is_some(), "{route}");
            let body: Value = resp.json().await.unwrap();
            // OTLP answers errors as a google.rpc.Status (here in JSON: the request's encoding).
            let field = if path.starts_with("/v1") {
                "message"
            } else {
                "detail"
            };
            assert!(body[field].is_string(), "{route}: {body}");
        }
        // Each key: admitted exactly when it holds the scope (admin holds every scope).
        for (key, held) in [
            (INGEST, Scope::Ingest),
            (READER, Scope::Read),
            (ADMIN, Scope::Admin),
        ] {
            let admitted = match scope {
                None => true,
                Some(needed) => held == *needed || held == Scope::Admin,
            };
            let status = call(method, path, Some(key)).await.status().as_u16();
            if admitted {
                assert!(
                    status != 401 && status != 403,
                    "{route} with the {held:?} key: got {status}"
                );
            } else {
                assert_eq!(status, 403, "{route} with the {held:?} key");
            }
        }
    }
    // Ops endpoints stay open for probes and scrapers.
    for open in ["/healthz", "/metrics", "/openapi.json"] {
        assert_eq!(api.status(open).await, 200, "{open}");
    }
    api.stop().await;
}
