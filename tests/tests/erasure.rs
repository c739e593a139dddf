//! Erasure that erases, over the real pipeline (the "Governance" issue).
//!
//! Compaction is Apache Kafka's own log cleaner, on a test topic whose segments close after
//! 100 ms and are cleaned as soon as anything in them is dirty. Once it has run, a reader from
//! offset 0 finds nothing of a deleted trace (only tombstones under its keys), the dead-letter
//! topic neither, and the compacted topic replayed into a fresh database through a second stack
//! gives every live trace back byte-identical, with its scores, datasets and audit records.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use serde_json::{json, Value};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::consume_all;
use tunix_testkit::eventually;
use uuid::Uuid;

const CONVERGE: Duration = Duration::from_secs(90);

fn traces() -> Vec<Value> {
    tunix_testkit::dataset().into_iter().take(30).collect()
}

async fn post(stack: &Stack, trace: &Value, key: &str) -> (u16, Value) {
    let resp = stack
        .http
        .post(stack.url("/api/traces"))
        .header("Idempotency-Key", key)
        .json(trace)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn send(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = stack.http.request(method, stack.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

fn key_text(r: &OwnedMessage) -> String {
    String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()
}

/// (created_at, trace_version, payload) per stored trace.
async fn stored(pool: &sqlx::PgPool) -> BTreeMap<Uuid, (String, String, String)> {
    let rows: Vec<(Uuid, String, String, String)> =
        sqlx::query_as("SELECT id, created_at::text, trace_version, payload::text FROM traces")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, c, v, p)| (id, (c, v, p)))
        .collect()
}

async fn scores(pool: &sqlx::PgPool) -> BTreeMap<(Uuid, String), (f64, Option<String>)> {
    let rows: Vec<(Uuid, String, f64, Option<String>)> =
        sqlx::query_as("SELECT trace_id, name, value, comment FROM trace_scores")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(t, n, v, c)| ((t, n), (v, c)))
        .collect()
}

async fn count_where(pool: &sqlx::PgPool, sql: &str, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar(sql)
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_topic_keeps_live_traces_and_nothing_of_deleted_ones() {
    let stack = Stack::start(StackOptions {
        compacted: true,
        // Segments close 100 ms after their first record and are cleaned at once: the cleaner
        // never touches the active segment, so this is what lets it run within a test.
        topic_configs: vec![
            ("segment.ms".into(), "100".into()),
            ("min.cleanable.dirty.ratio".into(), "0.01".into()),
        ],
        ..StackOptions::default()
    })
    .await;
    let all = traces();
    let mut ids = Vec::new();
    for (n, t) in all.iter().enumerate() {
        let (status, body) = post(&stack, t, &format!("erasure-{n}")).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    // A retry with the same key and another body: the last submission is the one kept.
    let (status, body) = post(&stack, &all[20], "erasure-0").await;
    assert_eq!(
        (status, body["id"].as_str()),
        (202, Some(ids[0].to_string().as_str()))
    );
    stack.wait_converged(ids.len(), CONVERGE).await;
    // Scores: on live traces, on doomed ones, and one retracted.
    for (i, id) in ids.iter().enumerate().take(10) {
        let (s, _) = send(
            &stack,
            reqwest::Method::POST,
            &format!("/api/traces/{id}/scores"),
            Some(json!({"name": "quality", "value": i as f64 / 10.0, "comment": format!("secret-comment-{i}")})),
        )
        .await;
        assert_eq!(s, 202);
    }
    let (s, _) = send(
        &stack,
        reqwest::Method::POST,
        &format!("/api/traces/{}/scores", ids[6]),
        Some(json!({"name": "correct", "value": 1})),
    )
    .await;
    assert_eq!(s, 202);
    let (s, _) = send(
        &stack,
        reqwest::Method::DELETE,
        &format!("/api/traces/{}/scores/correct", ids[6]),
        None,
    )
    .await;
    assert_eq!(s, 202);
    // A dataset of everything, frozen before the deletes.
    let (s, ds) = send(
        &stack,
        reqwest::Method::POST,
        "/api/datasets",
        Some(json!({"name": "erasure", "version": "1"})),
    )
    .await;
    assert!(s == 201 || s == 202, "{ds}");
    // A poison record keyed by a doomed trace: its dead letter holds that trace's content.
    let doomed: Vec<Uuid> = vec![ids[1], ids[2], ids[3], ids[7]];
    let doomed_prompt = all[1]["prompt"].as_str().unwrap().to_owned();
    tunix_testkit::produce_raw(
        &stack.topic,
        tunix_schemas::partition_for(&ids[1], stack.topic.settings.partitions),
        &ids[1].to_string(),
        format!("not avro: {doomed_prompt}").as_bytes(),
    )
    .await;
    eventually(CONVERGE, "the poison record is dead-lettered", || async {
        let dead = consume_all(
            &stack.topic.settings.brokers,
            &stack.topic.settings.dlq_topic,
            1,
            Duration::from_secs(2),
        );
        (!dead.is_empty()).then_some(())
    })
    .await;

    for id in &doomed {
        let (s, body) = send(
            &stack,
            reqwest::Method::DELETE,
            &format!("/api/traces/{id}"),
            None,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        assert!(body["audit_id"].is_string(), "{body}");
        // Gone at once, whatever the consumers' lag.
        assert_eq!(stack.get(&format!("/api/traces/{id}")).await.0, 404);
    }
    // A delayed retry of a deleted trace's keyed POST cannot bring it back.
    let (s, body) = post(&stack, &all[1], "erasure-1").await;
    assert_eq!(s, 410, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("deleted"),
        "{body}"
    );

    let live: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !doomed.contains(id))
        .collect();
    stack.wait_converged(live.len(), CONVERGE).await;
    eventually(
        CONVERGE,
        "the projector appended every owed tombstone",
        || async {
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM erasure_outbox")
                .fetch_one(&stack.db.pool)
                .await
                .ok()?;
            let audited: i64 =
                sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'delete'")
                    .fetch_one(&stack.db.pool)
                    .await
                    .ok()?;
            (pending == 0 && audited == doomed.len() as i64).then_some(())
        },
    )
    .await;
    let live_stored = stored(&stack.db.pool).await;
    assert_eq!(live_stored.len(), live.len());
    assert!(
        live_stored[&ids[0]].2.contains(
            all[20]["prompt"]
                .as_str()
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        ),
        "the retried submission's body is the stored one"
    );

    // Kafka's log cleaner compacts closed segments only. Keep appending a record that means
    // nothing to the consumers (a dataset key's tombstone) to every partition of both topics, so
    // that the segments holding the deletions close, until a reader from offset 0 finds no
    // deleted content left.
    let brokers = stack.topic.settings.brokers.clone();
    let doomed_text: HashSet<String> = doomed.iter().map(Uuid::to_string).collect();
    let content_of_doomed = |records: &[OwnedMessage]| {
        records
            .iter()
            .filter(|r| {
                r.payload().is_some_and(|v| {
                    let key = key_text(r);
                    doomed_text.iter().any(|d| key.starts_with(d.as_str()))
                        || String::from_utf8_lossy(v).contains(&doomed_prompt)
                })
            })
            .count()
    };
    let before = consume_all(&brokers, stack.topic.name(), 1, Duration::from_secs(3));
    let dead_before = consume_all(
        &brokers,
        &stack.topic.settings.dlq_topic,
        1,
        Duration::from_secs(2),
    );
    assert!(
        content_of_doomed(&before) >= doomed.len() && content_of_doomed(&dead_before) >= 1,
        "before compaction both logs hold the deleted content"
    );
    let (compacted, dead) = eventually(
        Duration::from_secs(120),
        "Kafka's log cleaner compacted the deleted content away",
        || async {
            for p in 0..stack.topic.settings.partitions {
                tunix_testkit::produce_null(&brokers, stack.topic.name(), p, "dataset/roll/1")
                    .await;
            }
            tunix_testkit::produce_null(&brokers, &stack.topic.settings.dlq_topic, 0, "roll").await;
            let records = consume_all(&brokers, stack.topic.name(), 1, Duration::from_secs(1));
            let dead = consume_all(
                &brokers,
                &stack.topic.settings.dlq_topic,
                1,
                Duration::from_secs(1),
            );
            (content_of_doomed(&records) == 0 && content_of_doomed(&dead) == 0)
                .then_some((records, dead))
        },
    )
    .await;
    let ours = |records: &[OwnedMessage]| {
        records
            .iter()
            .filter(|r| !["dataset/roll/1", "roll"].contains(&key_text(r).as_str()))
            .count()
    };
    eprintln!(
        "compaction: topic {} -> {} records, dead letters {} -> {} (segment-closing records not counted)",
        ours(&before),
        ours(&compacted),
        ours(&dead_before),
        ours(&dead)
    );
    assert!(
        ours(&compacted) < ours(&before),
        "the cleaner removed records"
    );
    for r in &compacted {
        let key = key_text(r);
        if doomed_text.iter().any(|d| key.starts_with(d.as_str())) {
            assert!(
                r.payload().is_none(),
                "only tombstones remain of a deleted trace: {key}"
            );
        }
        if key == ids[6].to_string() + "/score/correct" {
            assert!(
                r.payload().is_none(),
                "a retracted score leaves a tombstone only"
            );
        }
    }
    for d in &doomed {
        assert!(
            compacted
                .iter()
                .any(|r| key_text(r) == d.to_string() && r.payload().is_none()),
            "the trace key of {d} keeps its tombstone"
        );
    }
    for id in &live {
        assert!(
            compacted
                .iter()
                .any(|r| key_text(r) == id.to_string() && r.payload().is_some()),
            "the live trace {id} keeps its submission"
        );
    }

    // Replay the compacted topic (offset gaps and all) into a fresh database through a second
    // stack.
    let replay = Stack::start(StackOptions {
        service_env: vec![
            ("KAFKA_TOPIC".into(), stack.topic.name().into()),
            ("KAFKA_TOPIC_CLEANUP_POLICY".into(), "compact".into()),
        ],
        ..StackOptions::default()
    })
    .await;
    replay.wait_converged(live.len(), CONVERGE).await;
    eventually(CONVERGE, "the replayed dataset is ready", || async {
        let (s, d) = replay.get("/api/datasets/erasure/1").await;
        (s == 200 && d["state"] == "ready").then_some(())
    })
    .await;
    eventually(CONVERGE, "replayed scores match", || async {
        (scores(&replay.db.pool).await == scores(&stack.db.pool).await).then_some(())
    })
    .await;
    assert_eq!(
        stored(&replay.db.pool).await,
        live_stored,
        "live traces are byte-identical"
    );
    for pool in [&stack.db.pool, &replay.db.pool] {
        for sql in [
            "SELECT count(*) FROM traces WHERE id = ANY($1)",
            "SELECT count(*) FROM trace_list WHERE id = ANY($1)",
            "SELECT count(*) FROM trace_scores WHERE trace_id = ANY($1)",
            "SELECT count(*) FROM dataset_members WHERE trace_id = ANY($1) AND scores::text <> '{}'",
        ] {
            assert_eq!(count_where(pool, sql, &doomed).await, 0, "{sql}");
        }
    }
    for s in [&stack, &replay] {
        let resp = s
            .http
            .get(s.url("/api/datasets/erasure/1/export"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let omitted: i64 = resp.headers()["x-tunix-omitted"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = resp.text().await.unwrap();
        assert_eq!(
            body.lines().count(),
            live.len(),
            "the export omits deleted traces"
        );
        assert_eq!(omitted, doomed.len() as i64);
        for d in &doomed {
            assert!(
                !body.contains(&d.to_string()),
                "an export names a deleted trace"
            );
        }
    }
    // The audit records survive compaction (keys of their own).
    let audits: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'delete'")
        .fetch_one(&replay.db.pool)
        .await
        .unwrap();
    assert_eq!(audits, doomed.len() as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_delete_retention_and_audit() {
    let admin_key = "erasure-admin-key-0123456789";
    let stack = Stack::start(StackOptions {
        api_env: vec![
            ("API_KEYS".into(), format!("{admin_key}:admin")),
            ("RETENTION_DAYS".into(), "30".into()),
            ("RETENTION_SWEEP_INTERVAL_SECONDS".into(), "1".into()),
        ],
        ..StackOptions::default()
    })
    .await;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = stack
            .http
            .request(method, stack.url(path))
            .bearer_auth(admin_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // A bulk delete's dry run for `filter`.
    let dry_run = |filter: Value| {
        call(
            reqwest::Method::POST,
            "/api/deletions",
            Some(json!({"filter": filter, "dry_run": true})),
        )
    };
    // 40 traces of two runs, through the API.
    let all = traces();
    for (n, t) in all.iter().enumerate().take(40.min(all.len())) {
        let mut t = t.clone();
        t["meta"]["run"] = json!(if n % 3 == 0 { "doomed" } else { "kept" });
        let (s, b) = call(reqwest::Method::POST, "/api/traces", Some(t)).await;
        assert_eq!(s, 202, "{b}");
    }
    // Three traces older than the retention period, appended directly (the API stamps now).
    let old: Vec<tunix_schemas::TraceEvent> = all[..3]
        .iter()
        .map(|t| {
            tunix_schemas::TraceEvent::Submitted(tunix_schemas::TraceSubmitted {
                id: Uuid::new_v4(),
                created_at: tunix_schemas::truncate_to_micros(
                    chrono::Utc::now() - chrono::Duration::days(45),
                ),
                trace: tunix_schemas::Trace::parse_json(t.to_string().as_bytes()).unwrap(),
                idempotency_key: None,
            })
        })
        .collect();
    tunix_testkit::produce_events(&stack.topic, &old).await;
    let total = all.len().min(40);
    let doomed = (0..total).filter(|n| n % 3 == 0).count();
    // Retention erases the old ones on its own, through the same path, and audits it.
    eventually(
        CONVERGE,
        "retention sweeps erased the old traces",
        || async {
            let (_, page) = call(reqwest::Method::GET, "/api/audit?action=retention", None).await;
            let swept: i64 = page["data"]
                .as_array()?
                .iter()
                .filter_map(|a| a["count"].as_i64())
                .sum();
            (swept == 3 && stack.stored().await.len() == total).then_some(())
        },
    )
    .await;
    stack.wait_converged(total, CONVERGE).await;
    for e in &old {
        assert_eq!(
            call(
                reqwest::Method::GET,
                &format!("/api/traces/{}", e.id()),
                None
            )
            .await
            .0,
            404
        );
    }

    // A confirmation refuses a count that changed under the dry run's cutoff.
    let kept_filter = json!({"meta.run": "kept"});
    let (_, kept_plan) = dry_run(kept_filter.clone()).await;
    assert_eq!(kept_plan["matched"], total - doomed);
    let (_, page) = call(
        reqwest::Method::GET,
        "/api/traces?meta.run=kept&limit=1",
        None,
    )
    .await;
    let one_kept = page["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        reqwest::Method::DELETE,
        &format!("/api/traces/{one_kept}"),
        None,
    )
    .await;
    assert_eq!(s, 202);
    let (s, body) = call(
        reqwest::Method::POST,
        "/api/deletions",
        Some(json!({"filter": kept_filter, "token": kept_plan["token"]})),
    )
    .await;
    assert_eq!(s, 409, "one fewer trace matches now: {body}");
    assert!(
        body["detail"].as_str().unwrap().contains("match now"),
        "{body}"
    );
    let total = total - 1;
    stack.wait_converged(total, CONVERGE).await;

    // Bulk delete: dry run, a confirmation with another filter refused, then the real run.
    let filter = json!({"meta.run": "doomed"});
    let (s, plan) = dry_run(filter.clone()).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["matched"], doomed);
    let token = plan["token"].clone();
    let (s, body) = call(
        reqwest::Method::POST,
        "/api/deletions",
        Some(json!({"filter": {"meta.run": "kept"}, "token": token})),
    )
    .await;
    assert_eq!(s, 409, "another filter: {body}");
    let (s, body) = call(
        reqwest::Method::POST,
        "/api/deletions",
        Some(json!({"filter": {"meta.nope": 1}})),
    )
    .await;
    assert_eq!(s, 400, "neither dry run nor token: {body}");
    let (s, body) = dry_run(json!({"score.x": "maybe"})).await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body.to_string().contains("score.x"),
        "the error names the parameter: {body}"
    );
    // Filters and reasons are stored as JSON, which holds no NUL: 422 with the field's path.
    let (s, body) = call(
        reqwest::Method::POST,
        "/api/deletions",
        Some(json!({"filter": {"q": "a\u{0}b"}, "reason": "x\u{0}", "dry_run": true})),
    )
    .await;
    assert_eq!(s, 422, "{body}");
    let locs: Vec<String> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"].to_string())
        .collect();
    assert_eq!(
        locs,
        [r#"["body","filter","q"]"#, r#"["body","reason"]"#],
        "{body}"
    );
    let (s, _) = call(reqwest::Method::GET, "/api/audit?action=nope", None).await;
    assert_eq!(s, 422, "an unknown action");
    // A trace that arrives after the dry run is not swept.
    let mut late = all[0].clone();
    late["meta"]["run"] = json!("doomed");
    let (s, late_body) = call(reqwest::Method::POST, "/api/traces", Some(late)).await;
    assert_eq!(s, 202);
    stack.wait_converged(total + 1, CONVERGE).await;
    let (s, op) = call(
        reqwest::Method::POST,
        "/api/deletions",
        Some(json!({"filter": filter, "token": token, "reason": "test"})),
    )
    .await;
    assert_eq!(s, 202, "{op}");
    let (s, _) = call(
        reqwest::Method::POST,
        "/api/deletions",
        Some(json!({"filter": filter, "token": token})),
    )
    .await;
    assert_eq!(s, 410, "a token is used once");
    let op_id = op["id"].as_str().unwrap().to_owned();
    eventually(CONVERGE, "the bulk delete finished", || async {
        let (_, op) = call(
            reqwest::Method::GET,
            &format!("/api/deletions/{op_id}"),
            None,
        )
        .await;
        (op["state"] == "done").then_some(op)
    })
    .await;
    let (_, op) = call(
        reqwest::Method::GET,
        &format!("/api/deletions/{op_id}"),
        None,
    )
    .await;
    assert_eq!(op["deleted"], doomed, "{op}");
    stack.wait_converged(total + 1 - doomed, CONVERGE).await;
    let late_id = late_body["id"].as_str().unwrap();
    assert_eq!(
        call(
            reqwest::Method::GET,
            &format!("/api/traces/{late_id}"),
            None
        )
        .await
        .0,
        200,
        "the late trace survives"
    );

    // The audit names who asked (a key id, never the key) and when.
    let (s, page) = call(reqwest::Method::GET, "/api/audit?action=bulk_delete", None).await;
    assert_eq!(s, 200);
    let entry = &page["data"][0];
    assert_eq!(entry["id"], op["id"]);
    assert_eq!(entry["count"], doomed);
    let who = entry["requested_by"].as_str().unwrap();
    assert!(
        who.starts_with("key-") && !who.contains("0123456789"),
        "{who}"
    );
    assert!(!page.to_string().contains(admin_key));
    let metrics = stack.scrape(&stack.api_addr).await.unwrap();
    assert_eq!(
        tunix_e2e::metric_sum(
            &metrics,
            "tunix_ingest_traces_erased_total{via=\"bulk_delete\"}"
        ),
        Some(doomed as f64)
    );
    // Without the admin scope: 401.
    let resp = stack
        .http
        .get(stack.url("/api/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// A bulk delete resumes after ingest-api is killed in the middle; another is cancelled; and
/// `tunix-admin traces delete` drives one with a dry run, `--yes` and progress.
#[tokio::test(flavor = "multi_thread")]
async fn bulk_deletes_resume_after_a_crash_cancel_and_run_from_the_cli() {
    let key = "erasure-crash-admin-0123456789";
    let mut stack = Stack::start(StackOptions {
        api_env: vec![
            ("API_KEYS".into(), format!("{key}:admin")),
            ("ERASURE_RATE_PER_SECOND".into(), "5".into()),
        ],
        ..StackOptions::default()
    })
    .await;
    let all = traces();
    let mut batch: Vec<Value> = Vec::new();
    for (n, t) in all.iter().enumerate() {
        let mut t = t.clone();
        t["meta"]["run"] = json!(if n < 24 { "crash" } else { "cli" });
        batch.push(t);
    }
    let resp = stack
        .http
        .post(stack.url("/api/traces/batch"))
        .bearer_auth(key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    stack.wait_converged(all.len(), CONVERGE).await;
    let call = |method: reqwest::Method, url: String, body: Option<Value>| {
        let mut req = reqwest::Client::new().request(method, url).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let filter = json!({"meta.run": "crash"});
    let (_, plan) = call(
        reqwest::Method::POST,
        stack.url("/api/deletions"),
        Some(json!({"filter": filter, "dry_run": true})),
    )
    .await;
    assert_eq!(plan["matched"], 24);
    let (s, op) = call(
        reqwest::Method::POST,
        stack.url("/api/deletions"),
        Some(json!({"filter": filter, "token": plan["token"]})),
    )
    .await;
    assert_eq!(s, 202, "{op}");
    let op_url = stack.url(&format!("/api/deletions/{}", op["id"].as_str().unwrap()));
    // At 5 per second, the 24 take about five seconds: kill ingest-api once some are erased.
    eventually(CONVERGE, "the deletion made progress", || async {
        let (_, op) = call(reqwest::Method::GET, op_url.clone(), None).await;
        (op["deleted"].as_i64()? > 0 && op["state"] == "running").then_some(())
    })
    .await;
    stack.api.kill();
    let (state, deleted): (String, i64) =
        sqlx::query_as("SELECT state, deleted FROM erasure_operations WHERE state <> 'planned'")
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(state, "running", "killed in the middle ({deleted} erased)");
    stack.api.restart();
    stack.wait_ready(&stack.api_addr.clone()).await;
    let done = eventually(CONVERGE, "the deletion resumed and finished", || async {
        let (_, op) = call(reqwest::Method::GET, op_url.clone(), None).await;
        (op["state"] == "done").then_some(op)
    })
    .await;
    assert_eq!(done["deleted"], 24, "{done}");
    stack.wait_converged(all.len() - 24, CONVERGE).await;

    // Cancel: a running deletion stops after its current page (at most one page of 5 here).
    let cli_filter = json!({"meta.run": "cli"});
    let (_, plan) = call(
        reqwest::Method::POST,
        stack.url("/api/deletions"),
        Some(json!({"filter": cli_filter, "dry_run": true})),
    )
    .await;
    let (s, op) = call(
        reqwest::Method::POST,
        stack.url("/api/deletions"),
        Some(json!({"filter": cli_filter, "token": plan["token"]})),
    )
    .await;
    assert_eq!(s, 202, "{op}");
    let cancel_url = stack.url(&format!("/api/deletions/{}", op["id"].as_str().unwrap()));
    let (s, cancelled) = call(reqwest::Method::DELETE, cancel_url.clone(), None).await;
    assert_eq!(
        (s, cancelled["state"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    let (s, _) = call(reqwest::Method::DELETE, cancel_url.clone(), None).await;
    assert_eq!(s, 409, "not running any more");
    tokio::time::sleep(Duration::from_secs(2)).await; // a page would be due every second
    let (_, after) = call(reqwest::Method::GET, cancel_url, None).await;
    assert_eq!(after["state"], "cancelled");
    assert!(after["deleted"].as_i64().unwrap() <= 5, "{after}");
    let left = eventually(
        CONVERGE,
        "the cancelled deletion's page applied",
        || async {
            let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_list")
                .fetch_one(&stack.db.pool)
                .await
                .ok()?;
            let deleted: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_deletions")
                .fetch_one(&stack.db.pool)
                .await
                .ok()?;
            (listed + deleted == all.len() as i64).then_some(listed as usize)
        },
    )
    .await;
    assert!(
        left >= all.len() - 24 - 5,
        "a cancelled deletion stops: {left} left"
    );
    stack.wait_converged(left, CONVERGE).await;

    // The CLI: a dry run deletes nothing; --yes deletes with progress.
    let cli = |args: &[&str]| {
        std::process::Command::new(tunix_testkit::binary("tunix-admin"))
            .args(["traces", "delete", "--filter", "meta.run=cli"])
            .args(args)
            .env("TUNIX_API", format!("http://{}", stack.api_addr))
            .env("TUNIX_API_KEY", key)
            .output()
            .expect("run tunix-admin")
    };
    let dry = cli(&[]);
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert!(dry.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} traces match", all.len() - 24)),
        "{stderr}"
    );
    assert!(stderr.contains("dry run"), "{stderr}");
    assert_eq!(
        stack.stored().await.len(),
        all.len() - 24,
        "a dry run deletes nothing"
    );
    let real = cli(&["--yes", "--reason", "cli test"]);
    let stderr = String::from_utf8_lossy(&real.stderr);
    assert!(real.status.success(), "{stderr}");
    assert!(
        stderr.contains('[') && stderr.contains(&format!("{0}/{0}", all.len() - 24)),
        "a progress bar: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&real.stdout)
            .contains(&format!("deleted {} traces", all.len() - 24)),
        "{stderr}"
    );
    stack.wait_converged(0, CONVERGE).await;
}
