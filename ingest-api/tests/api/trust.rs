//! Promises that broke under adversarial input (the "Trust" issue), each pinned by a regression
//! test: client mistakes are 4xx naming the parameter, never 503; unknown routes and wrong methods
//! answer in the JSON error shape; repeated header lines mean their joined value; an oversized
//! body announced with `Expect: 100-continue` is refused at once.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunix_ingest_api::http::auth::{ApiKeys, Scope};

use crate::helpers::*;

/// Asserts a 422 whose `loc` names `param`.
fn assert_names(case: &str, (status, body): &(u16, Value), param: &str) {
    assert_eq!(*status, 422, "{case}: {body}");
    let loc = &body["detail"][0]["loc"];
    assert_eq!(loc[1], param, "{case}: {body}");
}

fn cursor(micros: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1:{micros}:{}", uuid::Uuid::nil()))
}

/// Before: these reached Postgres, failed there, and came back as 503 "the database is
/// unavailable", telling clients to retry and paging an operator.
#[tokio::test(flavor = "multi_thread")]
async fn read_parameters_at_their_representable_edges_are_never_503() {
    let api = TestApi::start().await;
    let min = tunix_ingest_api::traces::filter::PG_MIN_MICROS;

    for (path, param) in [
        (format!("/api/traces?cursor={}", cursor(min - 1)), "cursor"),
        (format!("/api/traces?cursor={}", cursor(i64::MIN)), "cursor"),
        (format!("/api/traces?cursor={}", cursor(i64::MAX)), "cursor"),
        (
            "/api/traces?created_after=-5000-01-01".into(),
            "created_after",
        ),
        (
            "/api/traces?created_before=-4713-11-23T23:59:59Z".into(),
            "created_before",
        ),
        (
            "/api/traces?created_after=-262143-01-01".into(),
            "created_after",
        ),
        ("/api/traces?limit=9223372036854775808".into(), "limit"),
        ("/api/traces?offset=-9223372036854775808".into(), "offset"),
        ("/api/traces/%00?wait_ms=0".into(), "id"),
        ("/api/traces/not-a-uuid".into(), "id"),
    ] {
        assert_names(&path, &api.get(&path).await, param);
    }

    // The edges themselves are fine, and so is a NUL in the version filter (it matches traces
    // whose trace_version has that NUL; there are none here).
    for path in [
        format!("/api/traces?cursor={}", cursor(min)),
        "/api/traces?created_after=-4713-11-24".into(),
        "/api/traces?created_before=9999-12-31T23:59:59.999999Z".into(),
        "/api/traces?created_before=%2B200000-01-01".into(),
        "/api/traces?trace_version=%00".into(),
        "/api/traces?trace_version=a%00b%E2%90%80".into(),
        "/api/traces?offset=9223372036854775807&limit=100".into(),
        "/api/traces?limit=1&offset=0".into(),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["data"], json!([]), "{path}");
    }
    let (status, body) = api.get("/api/traces?offset=9223372036854775807").await;
    assert_eq!(
        (status, &body["pagination"]["next_offset"]),
        (200, &Value::Null)
    );
    api.stop().await;
}

/// Before: an empty body. Now FastAPI's shape, with `Allow` on 405.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_wrong_methods_answer_in_the_json_error_shape() {
    let api = TestApi::start().await;
    for path in ["/api/nope", "/api/traces/x/y/z", "/api", "/nope"] {
        let resp = api.client.get(api.url(path)).send().await.unwrap();
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        assert_eq!(
            json(resp).await,
            (404, json!({"detail": "Not Found"})),
            "{path}"
        );
    }
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/api/traces", "GET,HEAD,POST"),
        (reqwest::Method::DELETE, "/api/traces/batch", "POST"),
        (
            reqwest::Method::PATCH,
            "/api/traces/0191d6e2-7b7a-7c3e-8f00-123456789abc",
            "GET,HEAD,DELETE",
        ),
    ] {
        let resp = api
            .client
            .request(method.clone(), api.url(path))
            .send()
            .await
            .unwrap();
        let got_allow = resp.headers()["allow"].to_str().unwrap().replace(' ', "");
        let mut got: Vec<&str> = got_allow.split(',').collect();
        let mut want: Vec<&str> = allow.split(',').collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{method} {path}");
        assert_eq!(
            json(resp).await,
            (405, json!({"detail": "Method Not Allowed"})),
            "{method} {path}"
        );
    }
    api.stop().await;
}

fn trace_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"trace_version": "1", "prompt": "p", "final_answer": "a", "steps": [{"i": 0, "type": "t", "content": "c"}]})).unwrap()
}

async fn post_with(api: &TestApi, lines: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let mut headers = HeaderMap::new();
    for (k, v) in lines {
        headers.append(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    json(
        api.client
            .post(api.url("/api/traces"))
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A name, the header lines, the body and the expected status.
type HeaderCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

/// Before: `Content-Encoding: gzip` and `Content-Encoding: br` on two lines honoured only the
/// first line and accepted the trace; on one line (`gzip, br`) it was 415.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_header_lines_mean_their_joined_value() {
    let api = TestApi::start_with(|c| {
        c.api_keys = ApiKeys::from_pairs(&[("ingest-key-0123456789", &[Scope::Ingest])])
    })
    .await;
    let auth = ("authorization", "Bearer ingest-key-0123456789");
    let ct = ("content-type", "application/json");
    let gz = crate::ingest::gzip(&trace_body());

    let cases: Vec<HeaderCase> = vec![
        (
            "gzip then br",
            vec![
                auth,
                ct,
                ("content-encoding", "gzip"),
                ("content-encoding", "br"),
            ],
            gz.clone(),
            415,
        ),
        (
            "gzip, br",
            vec![auth, ct, ("content-encoding", "gzip, br")],
            gz.clone(),
            415,
        ),
        (
            "gzip then gzip",
            vec![
                auth,
                ct,
                ("content-encoding", "gzip"),
                ("content-encoding", "gzip"),
            ],
            gz.clone(),
            415,
        ),
        (
            "identity then gzip",
            vec![
                auth,
                ct,
                ("content-encoding", "identity"),
                ("content-encoding", "gzip"),
            ],
            gz.clone(),
            202,
        ),
        (
            "two content types",
            vec![auth, ct, ("content-type", "text/plain")],
            trace_body(),
            400,
        ),
        (
            "two equal content types",
            vec![auth, ct, ct],
            trace_body(),
            400,
        ),
        (
            "two idempotency keys",
            vec![auth, ct, ("idempotency-key", "a"), ("idempotency-key", "b")],
            trace_body(),
            400,
        ),
        (
            "two authorizations",
            vec![auth, auth, ct],
            trace_body(),
            400,
        ),
        (
            "one of each",
            vec![auth, ct, ("idempotency-key", "trust-test")],
            trace_body(),
            202,
        ),
    ];
    for (name, lines, body, want) in cases {
        let (status, answer) = post_with(&api, &lines, body).await;
        assert_eq!(status, want, "{name}: {answer}");
        if status >= 400 {
            assert!(answer["detail"].is_string(), "{name}: {answer}");
        }
    }
    api.stop().await;
}

/// Before: `100 Continue` was sent, and 413 came only after the body timeout.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_announced_with_expect_continue_is_refused_at_once() {
    let api = TestApi::start_with(|c| {
        c.trace_max_bytes = 64 * 1024;
        c.body_read_timeout = Duration::from_secs(60);
    })
    .await;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    socket
        .write_all(
            b"POST /api/traces HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    // Read the first answer without ever sending the body.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut buf))
        .await
        .expect("an answer well before the 60 s body timeout")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(!head.contains("100 Continue"), "{head}");
    assert!(
        head.contains("Payload size exceeds maximum of 65536 bytes"),
        "{head}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // Without Expect, a small declared body over the cap is still drained and answered.
    let (status, _) = post_with(
        &api,
        &[("content-type", "application/json")],
        vec![b' '; 70 * 1024],
    )
    .await;
    assert_eq!(status, 413);
    api.stop().await;
}
