//! HTTP for tests: JSON calls to a service, each answered as `(status, JSON body)`, so that a
//! test states the request and the answer it expects and nothing about the client.

use reqwest::{Method, Response};
use serde_json::Value;

/// The status and the JSON body of `resp` (`Value::Null` when the body is not JSON).
pub async fn status_and_json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A JSON client of the service at `base` (`http://host:port`), optionally sending an API key
/// (as a bearer token) with every request. Cheap to clone; owns what it needs, so it can be
/// held while the test restarts the service.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Api {
    /// A client of `base` through `client`, without an API key.
    pub fn new(client: reqwest::Client, base: impl Into<String>) -> Api {
        Api {
            client,
            base: base.into(),
            key: None,
        }
    }

    /// The same client, sending `key` as a bearer token.
    pub fn with_key(&self, key: &str) -> Api {
        Api {
            key: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// `<base><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path` with `body` as JSON, and the key if any; panics when there is no answer.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.send_with(method, path, body, None).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `POST path` with `body` and an `Idempotency-Key`.
    pub async fn post_keyed(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> (u16, Value) {
        self.send_with(Method::POST, path, Some(body), Some(idempotency_key))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(Method::DELETE, path, None).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> (u16, Value) {
        let url = self.url(path);
        let mut req = self.client.request(method.clone(), &url);
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        status_and_json(resp).await
    }
}
