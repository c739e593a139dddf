//! The read API over the real pipeline: ingest-api → broker → writer and projector → Postgres,
//! every service a separate process.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{dataset, eventually, PgCluster, CONVERGE};
use uuid::Uuid;

type Row = (Uuid, chrono::DateTime<chrono::Utc>, String);
type Predicate = Box<dyn Fn(&Row) -> bool>;

async fn post_n(stack: &Stack, n: usize) -> Vec<String> {
    let data = dataset();
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = stack.post(&data[i % data.len()]).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

fn ids_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_list_and_get_cases() {
    let stack = Stack::start(StackOptions::default()).await;

    // An empty list.
    let (status, page) = stack.get("/api/traces").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"], json!([]));
    assert_eq!(page["pagination"]["next_offset"], Value::Null);
    assert_eq!(page["pagination"]["limit"], 20);

    // Three items, newest first, no payload.
    let first = post_n(&stack, 3).await;
    stack.wait_converged(3, CONVERGE).await;
    let (_, page) = stack.get("/api/traces").await;
    let mut expected = first.clone();
    expected.reverse();
    assert_eq!(ids_of(&page), expected, "newest first");
    for item in page["data"].as_array().unwrap() {
        assert!(
            item.get("payload").is_none(),
            "the list never includes the payload"
        );
        for field in ["id", "created_at", "trace_version"] {
            assert!(item.get(field).is_some(), "{field}");
        }
    }
    assert_eq!(page["pagination"]["next_offset"], Value::Null);

    // 25 items paged by 10.
    let more = post_n(&stack, 22).await;
    stack.wait_converged(25, CONVERGE).await;
    let mut all: Vec<String> = first.into_iter().chain(more).collect();
    all.reverse();
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let (status, page) = stack
            .get(&format!("/api/traces?limit=10&offset={offset}"))
            .await;
        assert_eq!(status, 200);
        seen.extend(ids_of(&page));
        pages += 1;
        match page["pagination"]["next_offset"].as_i64() {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all, "25 items in three pages, newest first");

    // Invalid paging parameters: 422 naming the parameter.
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (status, body) = stack.get(&format!("/api/traces?{query}")).await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", param]), "{body}");
    }
    // An offset past the end: empty data, next_offset null.
    let (status, page) = stack.get("/api/traces?offset=1000").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"], json!([]));
    assert_eq!(page["pagination"]["next_offset"], Value::Null);

    // Get by id: 200 with payload, 404, 422.
    let (status, body) = stack.get(&format!("/api/traces/{}", all[0])).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], all[0].as_str());
    assert!(body["payload"]["steps"].is_array());
    let (status, body) = stack.get(&format!("/api/traces/{}", Uuid::new_v4())).await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().unwrap().contains("not found"));
    let (status, body) = stack.get("/api/traces/not-a-uuid").await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["path", "id"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn read_your_writes_with_wait_ms() {
    let stack = Stack::start(StackOptions::default()).await;
    let data = dataset();
    for body in &data[..20] {
        let (status, ack) = stack.post(body).await;
        assert_eq!(status, 202);
        let (status, got) = stack
            .get(&format!(
                "/api/traces/{}?wait_ms=10000",
                ack["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 200, "readable within the wait");
        assert_eq!(got["payload"]["prompt"], body["prompt"]);
    }
    let (status, _) = stack
        .get(&format!("/api/traces/{}?wait_ms=200", Uuid::new_v4()))
        .await;
    assert_eq!(
        status, 404,
        "an unknown id still answers 404 after the wait"
    );
    let (status, body) = stack
        .get(&format!("/api/traces/{}?wait_ms=999999", Uuid::new_v4()))
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_walk_sees_every_id_once_in_order_while_inserts_continue() {
    let stack = Stack::start(StackOptions::default()).await;
    let initial = post_n(&stack, 300).await;
    stack.wait_converged(300, CONVERGE).await;

    // Keep inserting while walking.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(tunix_bench::load::run({
        let mut spec = stack.load(2, tunix_bench::load::Stop::Token(stop.clone()));
        spec.rate = Some(50.0);
        spec
    }));
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/traces?limit=25&cursor={c}"),
            None => "/api/traces?limit=25".to_owned(),
        };
        let (status, page) = stack.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for item in page["data"].as_array().unwrap() {
            seen.push((
                item["created_at"].as_str().unwrap().to_owned(),
                item["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let report = load.await.unwrap();
    assert!(report.accepted > 0, "inserts happened during the walk");

    let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    let unique: HashSet<&String> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no id twice");
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let ka = (
            chrono::DateTime::parse_from_rfc3339(&a.0).unwrap(),
            a.1.parse::<Uuid>().unwrap(),
        );
        let kb = (
            chrono::DateTime::parse_from_rfc3339(&b.0).unwrap(),
            b.1.parse::<Uuid>().unwrap(),
        );
        assert!(ka > kb, "strictly newest first: {a:?} then {b:?}");
    }
    for id in &initial {
        assert!(
            unique.contains(id),
            "every id present when the walk began is seen"
        );
    }
}

/// List rows carry `tags` and `model` from `meta`, on every paging path (the newest page, a
/// filtered one, a cursor page).
#[tokio::test(flavor = "multi_thread")]
async fn list_rows_carry_tags_and_model_from_meta() {
    let stack = Stack::start(StackOptions::default()).await;
    let base = dataset()[0].clone();
    let long = "x".repeat(300);
    let cases = [
        // (meta, expected tags, expected model)
        (
            json!({"tags": ["math", 7, long, "nul\u{0}inside", "β"], "model": "plain"}),
            json!(["math", "nul\u{0}inside", "β"]),
            json!("plain"),
        ),
        (
            json!({"model": "plain", "gen_ai": {"response": {"model": "resp"}, "request": {"model": "req"}}}),
            json!([]),
            json!("req"),
        ),
        (
            json!({"model": "plain", "gen_ai": {"response": {"model": "resp"}}}),
            json!([]),
            json!("resp"),
        ),
        (
            json!({"model": 3, "tags": "solo"}),
            json!(["solo"]),
            Value::Null,
        ),
        (Value::Null, json!([]), Value::Null),
    ];
    let mut expected = Vec::new();
    for (meta, tags, model) in &cases {
        let mut body = base.clone();
        body["meta"] = meta.clone();
        body["trace_version"] = json!("tags-and-model");
        let (status, ack) = stack.post(&body).await;
        assert_eq!(status, 202, "{ack}");
        expected.push((ack["id"].as_str().unwrap().to_owned(), tags, model));
    }
    stack.wait_converged(cases.len(), CONVERGE).await;
    expected.reverse();
    for query in ["", "?trace_version=tags-and-model", "?tag=math&limit=1"] {
        let (status, page) = stack.get(&format!("/api/traces{query}")).await;
        assert_eq!(status, 200, "{page}");
        for row in page["data"].as_array().unwrap() {
            let (_, tags, model) = expected
                .iter()
                .find(|(id, _, _)| row["id"] == *id)
                .expect("a posted trace");
            assert_eq!(
                (&row["tags"], &row["model"]),
                (*tags, *model),
                "{query}: {row}"
            );
        }
    }
    let (_, first) = stack.get("/api/traces?limit=2").await;
    let cursor = first["pagination"]["next_cursor"].as_str().unwrap();
    let (_, next) = stack
        .get(&format!("/api/traces?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(next["data"][0]["model"], json!("resp"), "{next}");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_match_a_brute_force_query() {
    let stack = Stack::start(StackOptions::default()).await;
    let data = dataset();
    let versions = ["1.0", "2.0", "exp-β"];
    let mut marks = Vec::new();
    for i in 0..120 {
        let mut body = data[i].clone();
        body["trace_version"] = json!(versions[i % 3]);
        let (status, ack) = stack.post(&body).await;
        assert_eq!(status, 202);
        if i % 30 == 0 {
            marks.push(ack["created_at"].as_str().unwrap().to_owned());
        }
    }
    stack.wait_converged(120, CONVERGE).await;
    let rows: Vec<Row> = sqlx::query_as("SELECT id, created_at, trace_version FROM traces")
        .fetch_all(&stack.db.pool)
        .await
        .unwrap();

    let after = &marks[1];
    let before = &marks[3];
    let cases: Vec<(String, Predicate)> = vec![
        ("trace_version=2.0".into(), Box::new(|r| r.2 == "2.0")),
        (
            "trace_version=exp-%CE%B2".into(),
            Box::new(|r| r.2 == "exp-β"),
        ),
        (
            format!("created_after={after}"),
            Box::new({
                let t = chrono::DateTime::parse_from_rfc3339(after).unwrap();
                move |r| r.1 >= t
            }),
        ),
        (
            format!("created_before={before}"),
            Box::new({
                let t = chrono::DateTime::parse_from_rfc3339(before).unwrap();
                move |r| r.1 < t
            }),
        ),
        (
            format!("trace_version=1.0&created_after={after}&created_before={before}"),
            Box::new({
                let (a, b) = (
                    chrono::DateTime::parse_from_rfc3339(after).unwrap(),
                    chrono::DateTime::parse_from_rfc3339(before).unwrap(),
                );
                move |r| r.2 == "1.0" && r.1 >= a && r.1 < b
            }),
        ),
        ("trace_version=none".into(), Box::new(|_| false)),
    ];
    for (query, pred) in cases {
        let mut expected: Vec<(chrono::DateTime<chrono::Utc>, Uuid)> = rows
            .iter()
            .filter(|r| pred(r))
            .map(|r| (r.1, r.0))
            .collect();
        expected.sort_by(|a, b| b.cmp(a));
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id.to_string()).collect();
        for mode in ["cursor", "offset"] {
            let mut got = Vec::new();
            let mut next = String::new();
            loop {
                let (status, page) = stack
                    .get(&format!("/api/traces?limit=7&{query}{next}"))
                    .await;
                assert_eq!(status, 200, "{query}: {page}");
                got.extend(ids_of(&page));
                let p = &page["pagination"];
                match (mode, p["next_cursor"].as_str(), p["next_offset"].as_i64()) {
                    ("cursor", Some(c), _) => next = format!("&cursor={c}"),
                    ("offset", _, Some(o)) => next = format!("&offset={o}"),
                    _ => break,
                }
            }
            assert_eq!(got, expected, "{query} ({mode} paging)");
        }
    }
    for (query, param) in [
        ("created_after=last-tuesday", "created_after"),
        ("created_before=2026-13-40", "created_before"),
    ] {
        let (status, body) = stack.get(&format!("/api/traces?{query}")).await;
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["loc"], json!(["query", param]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_disappear_from_both_models() {
    let stack = Stack::start(StackOptions::default()).await;
    let ids = post_n(&stack, 10).await;
    stack.wait_converged(10, CONVERGE).await;
    for id in &ids[..3] {
        let (status, _) = stack.client().delete(&format!("/api/traces/{id}")).await;
        assert_eq!(status, 202);
    }
    stack.wait_converged(7, CONVERGE).await;
    eventually(CONVERGE, "deleted from traces", || async {
        (stack.stored().await.len() == 7).then_some(())
    })
    .await;
    for id in &ids[..3] {
        let (status, _) = stack.get(&format!("/api/traces/{id}")).await;
        assert_eq!(status, 404);
    }
    let (_, page) = stack.get("/api/traces?limit=100").await;
    let listed: HashSet<String> = ids_of(&page).into_iter().collect();
    assert_eq!(listed, ids[3..].iter().cloned().collect());
}

async fn view_rows(
    stack: &Stack,
) -> Vec<(
    Uuid,
    chrono::DateTime<chrono::Utc>,
    String,
    i32,
    String,
    i32,
)> {
    sqlx::query_as(
        "SELECT id, created_at, trace_version, step_count, prompt_preview, payload_bytes FROM trace_list ORDER BY id",
    )
    .fetch_all(&stack.db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_yields_an_identical_view_and_switches_reads() {
    let stack = Stack::start(StackOptions::default()).await;
    let ids = post_n(&stack, 200).await;
    for id in &ids[..20] {
        stack.client().delete(&format!("/api/traces/{id}")).await;
    }
    stack.wait_converged(180, CONVERGE).await;
    let before = view_rows(&stack).await;

    let stderr = stack.rebuild_into(&stack.db.url).await;
    assert!(
        stderr.contains("ev/s") && stderr.contains("lag") && stderr.contains("ETA"),
        "progress output:\n{stderr}"
    );
    let version: i32 =
        sqlx::query_scalar("SELECT active_version FROM projection_state WHERE name = 'trace_list'")
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(version, 2);
    assert_eq!(
        view_rows(&stack).await,
        before,
        "the rebuilt view is identical"
    );

    // The running projector keeps the new version current.
    post_n(&stack, 5).await;
    stack.wait_converged(185, CONVERGE).await;
    let (status, page) = stack.get("/api/traces?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(ids_of(&page).len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_answer_503_while_postgres_is_down() {
    let stack = Stack::start(StackOptions {
        private_postgres: true,
        ..StackOptions::default()
    })
    .await;
    let ids = post_n(&stack, 3).await;
    stack.wait_converged(3, CONVERGE).await;
    stack.db.pool.close().await;
    let pg: &PgCluster = stack.postgres.as_ref().unwrap();
    pg.stop();
    for path in ["/api/traces".to_owned(), format!("/api/traces/{}", ids[0])] {
        let resp = stack.http.get(stack.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        assert!(resp.headers().get("retry-after").is_some());
    }
    // Ingestion does not need Postgres.
    let (status, _) = stack.post(&dataset()[0]).await;
    assert_eq!(status, 202);
    pg.start_again();
    eventually(CONVERGE, "reads back after Postgres returns", || async {
        (stack.get("/api/traces").await.0 == 200).then_some(())
    })
    .await;
}
