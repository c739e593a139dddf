//! A corpus of malformed requests from a seeded generator, against the real ingest-api process:
//! every one gets a 4xx (408 for a stalled body) with a useful detail, never a 5xx; the server is
//! healthy afterwards and its memory stays bounded.

use std::io::Write;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunix_e2e::{Stack, StackOptions};

/// One malformed request.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    chunked: bool,
}

impl Case {
    fn post(name: impl Into<String>, body: Vec<u8>) -> Case {
        Case {
            name: name.into(),
            method: "POST",
            path: "/api/traces".into(),
            content_type: Some("application/json"),
            headers: Vec::new(),
            body,
            chunked: false,
        }
    }
    fn batch(name: impl Into<String>, body: Vec<u8>) -> Case {
        Case {
            path: "/api/traces/batch".into(),
            ..Case::post(name, body)
        }
    }
    fn get(name: impl Into<String>, path: String) -> Case {
        Case {
            method: "GET",
            path,
            content_type: None,
            ..Case::post(name, Vec::new())
        }
    }
}

fn valid() -> Value {
    json!({
        "trace_version": "1.0",
        "prompt": "What is 2 + 2?",
        "final_answer": "4",
        "steps": [{"i": 0, "type": "compute", "content": "2 + 2 = 4"}, {"i": 1, "type": "check", "content": "ok"}],
        "meta": {"source": "corpus"}
    })
}

/// A minimal valid document with `extra` (`,"key":value` members) after its fields.
fn minimal_with(extra: &str) -> String {
    format!(
        r#"{{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{{"i":0,"type":"t","content":"c"}}]{extra}}}"#
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// What every category of the corpus draws on.
struct Context {
    /// Seeded, so the corpus is the same on every run.
    rng: StdRng,
    /// A valid trace body.
    good: Vec<u8>,
    /// The 550 dataset traces.
    dataset: Vec<Value>,
    /// The TRACE_MAX_BYTES the server runs with.
    limit: usize,
}

/// The corpus, by category: deterministic for a given seed.
fn corpus(seed: u64, limit: usize) -> Vec<(&'static str, Vec<Case>)> {
    let mut cx = Context {
        rng: StdRng::seed_from_u64(seed),
        good: serde_json::to_vec(&valid()).unwrap(),
        dataset: tunix_testkit::dataset(),
        limit,
    };
    vec![
        ("syntax", syntax(&mut cx)),
        ("schema", schema(&mut cx)),
        ("deliberate differences", differences(&mut cx)),
        ("transport", transport(&mut cx)),
        ("batches", batches(&mut cx)),
        ("reads and routes", reads(&mut cx)),
        ("mutations", mutations(&mut cx)),
    ]
}

/// Bodies that are not JSON: truncated documents, malformed syntax, random bytes.
fn syntax(cx: &mut Context) -> Vec<Case> {
    let rng = &mut cx.rng;
    let dataset = &cx.dataset;
    let mut cases = Vec::new();
    // Truncated JSON.
    for n in 0..25 {
        let src = serde_json::to_vec(&dataset[rng.random_range(0..dataset.len())]).unwrap();
        let cut = rng.random_range(1..src.len() - 1);
        cases.push(Case::post(
            format!("truncated #{n} at {cut}"),
            src[..cut].to_vec(),
        ));
    }
    // Invalid JSON of many kinds.
    for (n, text) in [
        "",
        " ",
        "{",
        "}",
        "[",
        "{]",
        "{\"prompt\": }",
        "{\"a\":1,}",
        "{'prompt': 'x'}",
        "{\"i\": NaN}",
        "{\"i\": Infinity}",
        "{/* comment */}",
        "nul",
        "tru",
        "\"unterminated",
        "{\"a\":\"\\x41\"}",
        "{\"a\":\"\\u12\"}",
        "0x10",
        "{\"a\" 1}",
        "{{}}",
    ]
    .iter()
    .enumerate()
    {
        cases.push(Case::post(
            format!("invalid json #{n}: {text:?}"),
            text.as_bytes().to_vec(),
        ));
    }
    for n in 0..15 {
        let len = rng.random_range(1..400);
        let garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        cases.push(Case::post(format!("random bytes #{n}"), garbage));
    }
    cases
}

/// JSON that breaks the trace rules: wrong types, missing fields, limits, numbers, duplicate keys.
fn schema(_: &mut Context) -> Vec<Case> {
    let mut cases = Vec::new();
    // Wrong types at every field, including nulls where values are required.
    let wrongs = [
        json!(null),
        json!(42),
        json!(-1.5),
        json!(true),
        json!("text"),
        json!([1, 2]),
        json!({"k": "v"}),
    ];
    let fields: Vec<(&str, Vec<&str>)> = vec![
        ("trace_version", vec!["trace_version"]),
        ("prompt", vec!["prompt"]),
        ("final_answer", vec!["final_answer"]),
        ("steps", vec!["steps"]),
        ("steps[0]", vec!["steps", "0"]),
        ("steps[0].i", vec!["steps", "0", "i"]),
        ("steps[0].type", vec!["steps", "0", "type"]),
        ("steps[0].content", vec!["steps", "0", "content"]),
        ("meta", vec!["meta"]),
    ];
    for (label, path) in &fields {
        for wrong in &wrongs {
            let is_valid = match *label {
                "meta" => wrong.is_null() || wrong.is_object(),
                "trace_version" | "prompt" | "final_answer" | "steps[0].type"
                | "steps[0].content" => wrong.is_string(),
                "steps[0].i" => wrong.as_i64().is_some_and(|i| i >= 0),
                _ => false,
            };
            if is_valid {
                continue;
            }
            let mut v = valid();
            let mut cur = &mut v;
            for (n, key) in path.iter().enumerate() {
                let last = n + 1 == path.len();
                let next = match key.parse::<usize>() {
                    Ok(i) => &mut cur[i],
                    Err(_) => &mut cur[*key],
                };
                if last {
                    *next = wrong.clone();
                    break;
                }
                cur = next;
            }
            cases.push(Case::post(
                format!("{label} = {wrong}"),
                serde_json::to_vec(&v).unwrap(),
            ));
        }
    }
    // Missing fields.
    for field in ["trace_version", "prompt", "final_answer", "steps"] {
        let mut v = valid();
        v.as_object_mut().unwrap().remove(field);
        cases.push(Case::post(
            format!("missing {field}"),
            serde_json::to_vec(&v).unwrap(),
        ));
    }
    // Limits.
    for (label, field, value) in [
        ("empty prompt", "prompt", json!("")),
        (
            "prompt of 50,001 characters",
            "prompt",
            json!("é".repeat(50_001)),
        ),
        (
            "trace_version of 65 characters",
            "trace_version",
            json!("v".repeat(65)),
        ),
        ("no steps", "steps", json!([])),
        (
            "1,001 steps",
            "steps",
            json!((0..1001)
                .map(|i| json!({"i": i, "type": "t", "content": "c"}))
                .collect::<Vec<_>>()),
        ),
        (
            "duplicate step indices",
            "steps",
            json!([{"i": 1, "type": "t", "content": "a"}, {"i": 1, "type": "t", "content": "b"}]),
        ),
        (
            "negative step index",
            "steps",
            json!([{"i": -7, "type": "t", "content": "a"}]),
        ),
        (
            "fractional step index",
            "steps",
            json!([{"i": 1.5, "type": "t", "content": "a"}]),
        ),
        (
            "step index beyond 64 bits",
            "steps",
            json!([{"i": 9_223_372_036_854_775_808u64, "type": "t", "content": "a"}]),
        ),
    ] {
        let mut v = valid();
        v[field] = value;
        cases.push(Case::post(label, serde_json::to_vec(&v).unwrap()));
    }
    // Huge numbers.
    for (n, num) in [
        "1e400",
        "-1e400",
        "1e-400",
        "123456789012345678901234567890",
        "9223372036854775808",
    ]
    .iter()
    .enumerate()
    {
        let body = format!(
            r#"{{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{{"i":{num},"type":"t","content":"c"}}]}}"#
        );
        cases.push(Case::post(
            format!("huge step index #{n}"),
            body.into_bytes(),
        ));
        // In meta only overflow is refused: 1e-400 and long integers are kept verbatim.
        if n < 2 {
            let body = minimal_with(&format!(r#","meta":{{"n":{num}}}"#));
            cases.push(Case::post(
                format!("huge meta number #{n}"),
                body.into_bytes(),
            ));
        }
    }
    // Duplicate keys.
    for (n, body) in [
        r#"{"trace_version":"1","trace_version":"2","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}]}"#,
        r#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"i":1,"type":"t","content":"c"}]}"#,
        r#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"k":1,"k":2}}"#,
        r#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"a":{"k":1,"\u006b":2}}}"#,
        r#"{"steps":[],"steps":[{"i":0,"type":"t","content":"c"}],"trace_version":"1","prompt":"p","final_answer":"a"}"#,
    ]
    .iter()
    .enumerate()
    {
        cases.push(Case::post(format!("duplicate keys #{n}"), body.as_bytes().to_vec()));
    }
    cases
}

/// What the seed accepted and we refuse on purpose (README, "Deliberate differences"), and documents built to exhaust a parser.
fn differences(_: &mut Context) -> Vec<Case> {
    let mut cases = Vec::new();
    // The seed accepted these; we refuse them on purpose (README, "Deliberate differences").
    for (n, raw) in [
        r#""meta":{"n":1e400}"#,
        r#""meta":{"n":-1.8e308}"#,
        r#""meta":{"n":[1,2,1e999999]}"#,
        r#""meta":{"s":"\ud800"}"#,
        r#""meta":{"\udfff":1}"#,
        r#""meta":{"k":1,"k":2}"#,
    ]
    .iter()
    .enumerate()
    {
        let doc = minimal_with(&format!(",{raw}"));
        cases.push(Case::post(
            format!("deliberate difference #{n}: {raw}"),
            doc.into_bytes(),
        ));
    }
    let lone = r#"{"trace_version":"1","prompt":"a\ud83d","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}]}"#;
    cases.push(Case::post(
        "lone high surrogate in prompt",
        lone.as_bytes().to_vec(),
    ));
    // Deep nesting inside meta (100,000 levels), arrays and objects.
    let deep_arrays = minimal_with(&format!(
        r#","meta":{{"x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    cases.push(Case::post(
        "meta nested 100,000 levels (arrays)",
        deep_arrays.into_bytes(),
    ));
    let deep_objects = minimal_with(&format!(
        r#","meta":{}1{}"#,
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    ));
    cases.push(Case::post(
        "meta nested 100,000 levels (objects)",
        deep_objects.into_bytes(),
    ));
    cases.push(Case::post(
        "body nested 100,000 levels",
        "[".repeat(100_000).into_bytes(),
    ));
    // Invalid UTF-8 and lone surrogates.
    for (n, bad) in [
        &b"\xff"[..],
        b"\xc3\x28",
        b"\xe2\x82",
        b"\xf0\x28\x8c\x28",
        b"\xed\xa0\x80",
    ]
    .iter()
    .enumerate()
    {
        let mut body = br#"{"trace_version":"1","prompt":""#.to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(
            br#"","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}]}"#,
        );
        cases.push(Case::post(format!("invalid UTF-8 #{n}"), body));
    }
    for (n, esc) in [
        "\\ud800",
        "\\udfff",
        "\\udc00\\ud800",
        "\\ud83e",
        "\\ud83ex",
    ]
    .iter()
    .enumerate()
    {
        let body = format!(
            r#"{{"trace_version":"1","prompt":"p{esc}","final_answer":"a","steps":[{{"i":0,"type":"t","content":"c"}}],"meta":{{"k":"{esc}"}}}}"#
        );
        cases.push(Case::post(
            format!("lone surrogate #{n}"),
            body.into_bytes(),
        ));
    }
    cases
}

/// Everything around the body: content types, compression, sizes, headers.
fn transport(cx: &mut Context) -> Vec<Case> {
    let good = &cx.good;
    let limit = cx.limit;
    let mut cases = Vec::new();
    // Wrong and missing content types.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/xml"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        Some("json"),
    ] {
        let mut c = Case::post(format!("content type {ct:?}"), good.clone());
        c.content_type = ct;
        cases.push(c);
    }
    // Compression: bombs, broken streams, unsupported encodings.
    let bomb = format!(
        "{{\"trace_version\":\"1\",\"prompt\":\"{}\"}}",
        "a".repeat(64 << 20)
    );
    let mut c = Case::post("gzip bomb (64 MiB)", gzip(bomb.as_bytes()));
    c.headers.push(("content-encoding", "gzip".into()));
    cases.push(c);
    let mut c = Case::post(
        "zstd bomb (64 MiB)",
        zstd::encode_all(bomb.as_bytes(), 19).unwrap(),
    );
    c.headers.push(("content-encoding", "zstd".into()));
    cases.push(c);
    let mut c = Case::batch(
        "gzip bomb on the batch endpoint",
        gzip(format!("[{}]", "0,".repeat(40 << 20) + "0").as_bytes()),
    );
    c.headers.push(("content-encoding", "gzip".into()));
    cases.push(c);
    for (encoding, body) in [
        ("gzip", b"not gzip at all".to_vec()),
        ("zstd", b"not zstd either".to_vec()),
        ("gzip", gzip(b"{\"prompt\":")[..10].to_vec()),
    ] {
        let mut c = Case::post(format!("broken {encoding} stream"), body);
        c.headers.push(("content-encoding", encoding.into()));
        cases.push(c);
    }
    for encoding in ["br", "deflate", "compress", "gzip, zstd"] {
        let mut c = Case::post(format!("unsupported encoding {encoding}"), good.clone());
        c.headers.push(("content-encoding", encoding.into()));
        cases.push(c);
    }
    // Over the size limit: declared, and chunked.
    let big = serde_json::to_vec(&json!({"trace_version": "1", "prompt": "x".repeat(limit + 10), "final_answer": "a", "steps": [{"i": 0, "type": "t", "content": "c"}]})).unwrap();
    cases.push(Case::post(
        "over the limit with Content-Length",
        big.clone(),
    ));
    let mut c = Case::post("over the limit, chunked", big.clone());
    c.chunked = true;
    cases.push(c);
    let mut c = Case::batch("batch over the limit, chunked", vec![b' '; 40 << 20]);
    c.chunked = true;
    cases.push(c);
    // Bad headers.
    for key in ["".to_owned(), "k".repeat(256), "naïve-key".to_owned()] {
        let mut c = Case::post(
            format!("bad Idempotency-Key ({} chars)", key.chars().count()),
            good.clone(),
        );
        c.headers.push(("idempotency-key", key));
        cases.push(c);
    }
    // Repeated header lines mean their joined value: stacked codings are 415, and a repeated
    // Content-Type or Idempotency-Key is ambiguous (400). (Once, only the first line counted.)
    let gz = gzip(good);
    for (name, headers, body) in [
        (
            "Content-Encoding gzip then br",
            vec![("content-encoding", "gzip"), ("content-encoding", "br")],
            gz.clone(),
        ),
        (
            "Content-Encoding gzip then gzip",
            vec![("content-encoding", "gzip"), ("content-encoding", "gzip")],
            gz.clone(),
        ),
        (
            "Content-Type twice",
            vec![("content-type", "application/json")],
            good.clone(),
        ),
        (
            "Idempotency-Key twice",
            vec![("idempotency-key", "a"), ("idempotency-key", "b")],
            good.clone(),
        ),
    ] {
        let mut c = Case::post(format!("repeated header: {name}"), body);
        c.headers = headers
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect();
        cases.push(c);
    }
    cases
}

/// Malformed batches.
fn batches(cx: &mut Context) -> Vec<Case> {
    let good = &cx.good;
    let mut cases = Vec::new();
    // Batches.
    let one = String::from_utf8(good.clone()).unwrap();
    for (label, body, ct) in [
        ("empty batch", "[]".to_owned(), "application/json"),
        ("batch that is an object", one.clone(), "application/json"),
        ("batch of numbers", "[1,2,3]".to_owned(), "application/json"),
        (
            "batch with one bad item",
            format!("[{one},{{\"prompt\":\"\"}}]"),
            "application/json",
        ),
        (
            "1,001 items",
            format!("[{}]", vec![one.as_str(); 1001].join(",")),
            "application/json",
        ),
        (
            "ndjson with a bad line",
            format!("{one}\n{{oops\n{one}"),
            "application/x-ndjson",
        ),
        ("empty ndjson", "\n\n".to_owned(), "application/x-ndjson"),
        (
            "truncated batch",
            format!("[{one},{}", &one[..20]),
            "application/json",
        ),
        ("batch as text/csv", format!("[{one}]"), "text/csv"),
    ] {
        let mut c = Case::batch(label, body.into_bytes());
        c.content_type = Some(ct);
        cases.push(c);
    }
    cases
}

/// Read parameters, ids, unknown routes and wrong methods.
fn reads(_: &mut Context) -> Vec<Case> {
    let mut cases = Vec::new();
    // Query parameters and ids.
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-5",
        "limit=1e3",
        "offset=-1",
        "offset=x",
        "cursor=garbage",
        "cursor=djE6eDp5",
        "created_after=yesterday",
        "created_before=2026-13-01",
        &("trace_version=".to_owned() + &"v".repeat(65)),
    ]
    .iter()
    .map(|s| s.to_string())
    {
        cases.push(Case::get(format!("list ?{q}"), format!("/api/traces?{q}")));
    }
    for id in ["not-a-uuid", "123", "01a2-zz", &"a".repeat(500), "%00"] {
        cases.push(Case::get(
            format!("get id {id:.20}"),
            format!("/api/traces/{id}"),
        ));
        let mut c = Case::get(format!("delete id {id:.20}"), format!("/api/traces/{id}"));
        c.method = "DELETE";
        cases.push(c);
    }
    cases.push(Case::get(
        "wait_ms too large",
        format!("/api/traces/{}?wait_ms=99999999", uuid::Uuid::new_v4()),
    ));
    cases.push(Case::get(
        "wait_ms negative",
        format!("/api/traces/{}?wait_ms=-1", uuid::Uuid::new_v4()),
    ));
    // Read parameters PostgreSQL cannot represent: refused with 422 before any query (they were
    // answered 503 "database unavailable" once).
    let forged = |micros: i128| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("v1:{micros}:{}", uuid::Uuid::nil()))
    };
    for query in [
        "created_after=-5000-01-01".to_owned(),
        "created_before=-4713-11-23".to_owned(),
        "created_after=-262000-06-30T12:00:00".to_owned(),
        format!("cursor={}", forged(-210_866_803_200_000_001)),
        format!("cursor={}", forged(i64::MIN as i128)),
        format!("cursor={}", forged(i64::MAX as i128)),
        format!("cursor={}", forged(i64::MAX as i128 + 1)),
        "limit=9223372036854775808".to_owned(),
        "offset=-9223372036854775808".to_owned(),
        "offset=99999999999999999999".to_owned(),
    ] {
        cases.push(Case::get(
            format!("read parameter {query:.40}"),
            format!("/api/traces?{query}"),
        ));
    }
    // Unknown routes and wrong methods: JSON 404 and 405 (they had empty bodies once).
    let some_id = uuid::Uuid::new_v4();
    for (method, path) in [
        ("GET", "/api/nope".to_owned()),
        ("GET", "/api/traces/a/b".to_owned()),
        ("PUT", "/api/traces".to_owned()),
        ("DELETE", "/api/traces/batch".to_owned()),
        ("PATCH", format!("/api/traces/{some_id}")),
        ("POST", format!("/api/traces/{some_id}")),
    ] {
        let mut c = Case::get(format!("route {method} {path:.30}"), path);
        c.method = method;
        cases.push(c);
    }
    cases
}

/// Real traces with random byte edits that break them.
fn mutations(cx: &mut Context) -> Vec<Case> {
    let rng = &mut cx.rng;
    let dataset = &cx.dataset;
    let mut cases = Vec::new();
    // Mutations of real traces: random byte edits that break them.
    let mut n = 0;
    while n < 40 {
        let mut doc = serde_json::to_vec(&dataset[rng.random_range(0..dataset.len())]).unwrap();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..doc.len());
            let alphabet = b"{}[]\":,\\0a\x00\xff";
            doc[at] = alphabet[rng.random_range(0..alphabet.len())];
        }
        if tunix_schemas::Trace::parse_json(&doc).is_err() {
            cases.push(Case::post(format!("mutated trace #{n}"), doc));
            n += 1;
        }
    }
    cases
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(f64::NAN)
        / 1024.0
}

#[tokio::test(flavor = "multi_thread")]
async fn every_malformed_request_gets_a_4xx_and_the_server_stays_healthy() {
    let limit = 64 * 1024;
    let stack = Stack::start(StackOptions {
        api_env: vec![
            ("TRACE_MAX_BYTES".into(), limit.to_string()),
            ("BATCH_MAX_BYTES".into(), (1 << 20).to_string()),
            ("BODY_READ_TIMEOUT_MS".into(), "2000".into()),
        ],
        ..StackOptions::default()
    })
    .await;
    let pid = stack.api.pid().unwrap();
    let rss_before = rss_mb(pid);
    let categories = corpus(2026, limit);
    for (category, cases) in &categories {
        assert!(!cases.is_empty(), "category {category} has requests");
    }
    let sizes: Vec<(&str, usize)> = categories.iter().map(|(c, v)| (*c, v.len())).collect();
    let cases: Vec<Case> = categories.into_iter().flat_map(|(_, v)| v).collect();
    assert!(
        cases.len() >= 200,
        "the corpus has {} requests",
        cases.len()
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut by_status: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut rss_peak = rss_before;
    for case in &cases {
        let status =
            a_malformed_request_gets_a_4xx_with_a_useful_detail(&client, &stack, case).await;
        *by_status.entry(status).or_default() += 1;
        rss_peak = rss_peak.max(rss_mb(pid));
    }
    a_body_that_stalls_halfway_gets_408_after_the_read_timeout(&stack).await;
    *by_status.entry(408).or_default() += 1;

    let rss_after = rss_mb(pid);
    eprintln!(
        "bad input: {} requests {sizes:?}, by status {by_status:?}; ingest-api RSS {rss_before:.0} MB before, {rss_peak:.0} MB peak, {rss_after:.0} MB after",
        cases.len() + 1
    );
    assert!(!by_status.keys().any(|s| *s >= 500), "zero 5xx");
    assert!(rss_peak < 256.0, "RSS bounded: peak {rss_peak:.0} MB");
    the_server_is_healthy_afterwards_and_stored_nothing_from_the_corpus(&stack).await;
}

/// Sends `case`; its answer is a 4xx with a JSON body whose `detail` is useful (a non-empty
/// message, or items that each have a `loc` and a message). Returns the status.
async fn a_malformed_request_gets_a_4xx_with_a_useful_detail(
    client: &reqwest::Client,
    stack: &Stack,
    case: &Case,
) -> u16 {
    let mut req = client.request(case.method.parse().unwrap(), stack.url(&case.path));
    if let Some(ct) = case.content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in &case.headers {
        req = req.header(*k, v.as_str());
    }
    if !case.body.is_empty() || case.method == "POST" {
        req = if case.chunked {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                case.body.chunks(8192).map(|c| Ok(c.to_vec())).collect();
            req.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        } else {
            req.body(case.body.clone())
        };
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: no answer: {e}", case.name));
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert!(
        (400..500).contains(&status),
        "{}: expected a 4xx, got {status}: {body}",
        case.name
    );
    let detail: Value = serde_json::from_str(&body)
        .unwrap_or_else(|_| panic!("{}: JSON error body, got {body:?}", case.name));
    let useful = match &detail["detail"] {
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => {
            !items.is_empty()
                && items.iter().all(|i| {
                    i["loc"].is_array() && i["msg"].as_str().is_some_and(|m| !m.is_empty())
                })
        }
        _ => false,
    };
    assert!(useful, "{}: a useful detail, got {body}", case.name);
    status
}

/// A body that stalls halfway (slowloris) gets 408 once BODY_READ_TIMEOUT_MS passes.
async fn a_body_that_stalls_halfway_gets_408_after_the_read_timeout(stack: &Stack) {
    let mut stream = tokio::net::TcpStream::connect(&stack.api_addr)
        .await
        .unwrap();
    let head = format!(
        "POST /api/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"prompt\": \"half",
        stack.api_addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "stalled body: {answer}");
    assert!(answer.contains("detail"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited for the timeout"
    );
}

/// Healthy afterwards: liveness, readiness, and a valid trace is accepted and stored, the only
/// one.
async fn the_server_is_healthy_afterwards_and_stored_nothing_from_the_corpus(stack: &Stack) {
    assert_eq!(stack.get("/healthz").await.0, 200);
    assert_eq!(stack.get("/readyz").await.0, 200);
    let (status, ack) = stack.post(&valid()).await;
    assert_eq!(status, 202);
    let (status, _) = stack
        .get(&format!(
            "/api/traces/{}?wait_ms=10000",
            ack["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        stack.stored().await.len(),
        1,
        "nothing from the corpus was stored"
    );
}
