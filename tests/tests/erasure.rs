//! Erasure that erases, over the real pipeline (the "Governance" issue).
//!
//! Compaction is Apache Kafka's own log cleaner, on a test topic whose segments close after
//! 100 ms and are cleaned as soon as anything in them is dirty. Once it has run, a reader from
//! offset 0 finds nothing of a deleted trace (only tombstones under its keys), the dead-letter
//! topic neither, and the compacted topic replayed into a fresh database through a second stack
//! gives every live trace back byte-identical, with its scores, datasets and audit records.
//!
//! Each test is one stack (starting one is the expensive part) and a sequence of named steps.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use serde_json::{json, Value};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{consume_all, eventually, Api, CONVERGE};
use uuid::Uuid;

fn traces() -> Vec<Value> {
    tunix_testkit::dataset().into_iter().take(30).collect()
}

fn key_text(r: &OwnedMessage) -> String {
    String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()
}

/// Whether `records` hold one under `key` that is a tombstone (`tombstone`) or carries a value.
fn has_record(records: &[OwnedMessage], key: &str, tombstone: bool) -> bool {
    records
        .iter()
        .any(|r| key_text(r) == key && r.payload().is_none() == tombstone)
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

// ---------------------------------------------------------------------------------------------
// A compacted topic keeps live traces and nothing of deleted ones.
// ---------------------------------------------------------------------------------------------

/// The compaction scenario's traces: 30 posted with Idempotency-Keys, four of them deleted.
struct Erasure {
    /// The bodies posted: `all[n]` under the key `erasure-{n}`.
    all: Vec<Value>,
    /// The acknowledged ids, in posting order.
    ids: Vec<Uuid>,
    /// The deleted traces.
    doomed: Vec<Uuid>,
    /// The others.
    live: Vec<Uuid>,
    /// The prompt of `all[1]` (deleted), which the poison record carries too.
    doomed_prompt: String,
}

/// The segment-closing records the compaction step appends, not counted as ours.
const ROLL_KEYS: [&str; 2] = ["dataset/roll/1", "roll"];

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
    let api = stack.client();
    let all = traces();
    let ids = keyed_posts_keep_the_last_submission(&stack, &all).await;
    scores_land_on_live_and_doomed_traces_and_one_is_retracted(&api, &ids).await;
    a_dataset_is_frozen_before_the_deletes(&api).await;
    let doomed: Vec<Uuid> = vec![ids[1], ids[2], ids[3], ids[7]];
    let live: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !doomed.contains(id))
        .collect();
    let e = Erasure {
        doomed_prompt: all[1]["prompt"].as_str().unwrap().to_owned(),
        all,
        ids,
        doomed,
        live,
    };
    a_poison_record_keyed_by_a_doomed_trace_is_dead_lettered(&stack, &e).await;
    // Read before the deletes: until a tombstone follows them, no cleaner may drop the doomed
    // records, so this is the one moment both logs certainly hold them.
    let before = logs_before_the_deletes(&stack, &e);
    deleted_traces_are_gone_at_once_and_a_keyed_retry_cannot_revive_them(&stack, &e).await;
    let live_stored =
        the_read_models_keep_the_live_traces_and_every_tombstone_is_owed(&stack, &e).await;
    kafkas_cleaner_leaves_only_tombstones_of_the_deleted_traces(&stack, &e, &before).await;

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
    a_replay_gives_every_live_trace_back_byte_identical(&stack, &replay, &e, &live_stored).await;
    neither_database_holds_anything_of_the_deleted_traces(&stack, &replay, &e).await;
    exports_omit_the_deleted_traces_and_audits_survive_compaction(&stack, &replay, &e).await;
}

/// 30 keyed posts, then a retry of the first key with another body: the last submission is the
/// one kept. Returns the ids in posting order.
async fn keyed_posts_keep_the_last_submission(stack: &Stack, all: &[Value]) -> Vec<Uuid> {
    let api = stack.client();
    let mut ids = Vec::new();
    for (n, t) in all.iter().enumerate() {
        let (status, body) = api
            .post_keyed("/api/traces", t, &format!("erasure-{n}"))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    // A retry with the same key and another body: the last submission is the one kept.
    let (status, body) = api.post_keyed("/api/traces", &all[20], "erasure-0").await;
    assert_eq!(
        (status, body["id"].as_str()),
        (202, Some(ids[0].to_string().as_str()))
    );
    stack.wait_converged(ids.len(), CONVERGE).await;
    ids
}

/// Scores: on live traces, on doomed ones, and one retracted.
async fn scores_land_on_live_and_doomed_traces_and_one_is_retracted(api: &Api, ids: &[Uuid]) {
    for (i, id) in ids.iter().enumerate().take(10) {
        let (s, _) = api
            .post(
                &format!("/api/traces/{id}/scores"),
                &json!({"name": "quality", "value": i as f64 / 10.0, "comment": format!("secret-comment-{i}")}),
            )
            .await;
        assert_eq!(s, 202);
    }
    let (s, _) = api
        .post(
            &format!("/api/traces/{}/scores", ids[6]),
            &json!({"name": "correct", "value": 1}),
        )
        .await;
    assert_eq!(s, 202);
    let (s, _) = api
        .delete(&format!("/api/traces/{}/scores/correct", ids[6]))
        .await;
    assert_eq!(s, 202);
}

/// A dataset of everything, frozen before the deletes.
async fn a_dataset_is_frozen_before_the_deletes(api: &Api) {
    let (s, ds) = api
        .post("/api/datasets", &json!({"name": "erasure", "version": "1"}))
        .await;
    assert!(s == 201 || s == 202, "{ds}");
}

/// A poison record keyed by a doomed trace: its dead letter holds that trace's content.
async fn a_poison_record_keyed_by_a_doomed_trace_is_dead_lettered(stack: &Stack, e: &Erasure) {
    tunix_testkit::produce_raw(
        &stack.topic,
        tunix_schemas::partition_for(&e.ids[1], stack.topic.settings.partitions),
        &e.ids[1].to_string(),
        format!("not avro: {}", e.doomed_prompt).as_bytes(),
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
}

/// Each DELETE is audited and the trace is 404 at once, whatever the consumers' lag; a delayed
/// retry of a deleted trace's keyed POST cannot bring it back.
async fn deleted_traces_are_gone_at_once_and_a_keyed_retry_cannot_revive_them(
    stack: &Stack,
    e: &Erasure,
) {
    let api = stack.client();
    for id in &e.doomed {
        let (s, body) = api.delete(&format!("/api/traces/{id}")).await;
        assert_eq!(s, 202, "{body}");
        assert!(body["audit_id"].is_string(), "{body}");
        // Gone at once, whatever the consumers' lag.
        assert_eq!(stack.get(&format!("/api/traces/{id}")).await.0, 404);
    }
    // A delayed retry of a deleted trace's keyed POST cannot bring it back.
    let (s, body) = api.post_keyed("/api/traces", &e.all[1], "erasure-1").await;
    assert_eq!(s, 410, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("deleted"),
        "{body}"
    );
}

/// Both read models converge on the live traces, the projector appends every owed tombstone
/// (empty outbox, one audit record per delete), and the retried submission's body is the stored
/// one. Returns the stored live traces.
async fn the_read_models_keep_the_live_traces_and_every_tombstone_is_owed(
    stack: &Stack,
    e: &Erasure,
) -> BTreeMap<Uuid, (String, String, String)> {
    stack.wait_converged(e.live.len(), CONVERGE).await;
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
            (pending == 0 && audited == e.doomed.len() as i64).then_some(())
        },
    )
    .await;
    let live_stored = stored(&stack.db.pool).await;
    assert_eq!(live_stored.len(), e.live.len());
    assert!(
        live_stored[&e.ids[0]].2.contains(
            e.all[20]["prompt"]
                .as_str()
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        ),
        "the retried submission's body is the stored one"
    );
    live_stored
}

/// Both logs read to their high watermarks before any delete.
struct LogsBeforeDeletes {
    topic: Vec<OwnedMessage>,
    dead_letters: Vec<OwnedMessage>,
}

/// Reads the topic and the dead-letter topic before the deletes and checks that both hold the
/// content about to be deleted.
fn logs_before_the_deletes(stack: &Stack, e: &Erasure) -> LogsBeforeDeletes {
    let brokers = &stack.topic.settings.brokers;
    // Read to the high watermarks; the bound only matters on a box slowed by parallel tests.
    let topic = consume_all(brokers, stack.topic.name(), 1, Duration::from_secs(30));
    let dead_letters = consume_all(
        brokers,
        &stack.topic.settings.dlq_topic,
        1,
        Duration::from_secs(30),
    );
    assert!(
        content_of_doomed(&topic, e) >= e.doomed.len() && content_of_doomed(&dead_letters, e) >= 1,
        "before the deletes both logs hold the content of the traces to delete"
    );
    LogsBeforeDeletes {
        topic,
        dead_letters,
    }
}

/// How many records carry content of a trace to delete: a value under its key (trace, score)
/// or its prompt anywhere (the poison record).
fn content_of_doomed(records: &[OwnedMessage], e: &Erasure) -> usize {
    let doomed_text: Vec<String> = e.doomed.iter().map(Uuid::to_string).collect();
    records
        .iter()
        .filter(|r| {
            r.payload().is_some_and(|v| {
                let key = key_text(r);
                doomed_text.iter().any(|d| key.starts_with(d.as_str()))
                    || String::from_utf8_lossy(v).contains(&e.doomed_prompt)
            })
        })
        .count()
}

/// Kafka's log cleaner compacts closed segments only. Keep appending a record that means nothing
/// to the consumers (a dataset key's tombstone) to every partition of both topics, so that the
/// segments holding the deletions close, until a reader from offset 0 finds no deleted content
/// left; then only tombstones remain under the deleted traces' keys and the retracted score's,
/// and every live trace keeps its submission.
async fn kafkas_cleaner_leaves_only_tombstones_of_the_deleted_traces(
    stack: &Stack,
    e: &Erasure,
    before: &LogsBeforeDeletes,
) {
    let brokers = stack.topic.settings.brokers.clone();
    let dlq = &stack.topic.settings.dlq_topic;
    let doomed_text: HashSet<String> = e.doomed.iter().map(Uuid::to_string).collect();
    let content_of_doomed = |records: &[OwnedMessage]| content_of_doomed(records, e);
    // The first trace was posted twice under one key: the cleaner keeps the last submission only.
    let first = e.ids[0].to_string();
    let under_first =
        |records: &[OwnedMessage]| records.iter().filter(|r| key_text(r) == first).count();
    let (compacted, dead) = eventually(
        Duration::from_secs(120),
        "Kafka's log cleaner compacted the deleted content and the older submission away",
        || async {
            for p in 0..stack.topic.settings.partitions {
                tunix_testkit::produce_null(&brokers, stack.topic.name(), p, ROLL_KEYS[0]).await;
            }
            tunix_testkit::produce_null(&brokers, dlq, 0, ROLL_KEYS[1]).await;
            let records = consume_all(&brokers, stack.topic.name(), 1, Duration::from_secs(1));
            let dead = consume_all(&brokers, dlq, 1, Duration::from_secs(1));
            (content_of_doomed(&records) == 0
                && content_of_doomed(&dead) == 0
                && under_first(&records) == 1)
                .then_some((records, dead))
        },
    )
    .await;
    let ours = |records: &[OwnedMessage]| {
        records
            .iter()
            .filter(|r| !ROLL_KEYS.contains(&key_text(r).as_str()))
            .count()
    };
    eprintln!(
        "compaction: topic {} -> {} records, dead letters {} -> {} (segment-closing records not counted)",
        ours(&before.topic),
        ours(&compacted),
        ours(&before.dead_letters),
        ours(&dead)
    );
    for r in &compacted {
        let key = key_text(r);
        if doomed_text.iter().any(|d| key.starts_with(d.as_str())) {
            assert!(
                r.payload().is_none(),
                "only tombstones remain of a deleted trace: {key}"
            );
        }
        if key == e.ids[6].to_string() + "/score/correct" {
            assert!(
                r.payload().is_none(),
                "a retracted score leaves a tombstone only"
            );
        }
    }
    for d in &e.doomed {
        assert!(
            has_record(&compacted, &d.to_string(), true),
            "the trace key of {d} keeps its tombstone"
        );
    }
    for id in &e.live {
        assert!(
            has_record(&compacted, &id.to_string(), false),
            "the live trace {id} keeps its submission"
        );
    }
}

/// The replay converges on the live traces, the frozen dataset and the scores, and every live
/// trace is byte-identical to the original stack's.
async fn a_replay_gives_every_live_trace_back_byte_identical(
    stack: &Stack,
    replay: &Stack,
    e: &Erasure,
    live_stored: &BTreeMap<Uuid, (String, String, String)>,
) {
    replay.wait_converged(e.live.len(), CONVERGE).await;
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
        &stored(&replay.db.pool).await,
        live_stored,
        "live traces are byte-identical"
    );
}

/// No row of a deleted trace in either database: not stored, not listed, no scores, no scores
/// kept with a dataset member.
async fn neither_database_holds_anything_of_the_deleted_traces(
    stack: &Stack,
    replay: &Stack,
    e: &Erasure,
) {
    for pool in [&stack.db.pool, &replay.db.pool] {
        for sql in [
            "SELECT count(*) FROM traces WHERE id = ANY($1)",
            "SELECT count(*) FROM trace_list WHERE id = ANY($1)",
            "SELECT count(*) FROM trace_scores WHERE trace_id = ANY($1)",
            "SELECT count(*) FROM dataset_members WHERE trace_id = ANY($1) AND scores::text <> '{}'",
        ] {
            assert_eq!(count_where(pool, sql, &e.doomed).await, 0, "{sql}");
        }
    }
}

/// Both stacks' exports of the frozen dataset omit the deleted traces and count them; the
/// replay's audit records survived compaction (keys of their own).
async fn exports_omit_the_deleted_traces_and_audits_survive_compaction(
    stack: &Stack,
    replay: &Stack,
    e: &Erasure,
) {
    for s in [stack, replay] {
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
            e.live.len(),
            "the export omits deleted traces"
        );
        assert_eq!(omitted, e.doomed.len() as i64);
        for d in &e.doomed {
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
    assert_eq!(audits, e.doomed.len() as i64);
}

// ---------------------------------------------------------------------------------------------
// Bulk delete, retention and the audit.
// ---------------------------------------------------------------------------------------------

/// A bulk delete's dry run for `filter`.
async fn dry_run(admin: &Api, filter: Value) -> (u16, Value) {
    admin
        .post(
            "/api/deletions",
            &json!({"filter": filter, "dry_run": true}),
        )
        .await
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
    let admin = stack.client().with_key(admin_key);
    // 40 traces of two runs, through the API.
    let all = traces();
    for (n, t) in all.iter().enumerate().take(40.min(all.len())) {
        let mut t = t.clone();
        t["meta"]["run"] = json!(if n % 3 == 0 { "doomed" } else { "kept" });
        let (s, b) = admin.post("/api/traces", &t).await;
        assert_eq!(s, 202, "{b}");
    }
    let total = all.len().min(40);
    let doomed = (0..total).filter(|n| n % 3 == 0).count();
    retention_sweeps_erase_traces_older_than_the_period(&stack, &admin, &all, total).await;
    let total = a_confirmation_refuses_a_count_that_changed_since_its_dry_run(
        &stack, &admin, total, doomed,
    )
    .await;
    let (filter, token) =
        a_bulk_delete_refuses_other_filters_and_bad_requests(&admin, doomed).await;
    let op = a_bulk_delete_spares_a_trace_that_arrived_after_its_dry_run(
        &stack, &admin, &all[0], &filter, &token, total, doomed,
    )
    .await;
    the_audit_names_who_asked_never_the_key(&stack, &admin, admin_key, &op, doomed).await;
}

/// Three traces older than the retention period, appended directly (the API stamps now):
/// retention erases them on its own, through the same path, and audits it.
async fn retention_sweeps_erase_traces_older_than_the_period(
    stack: &Stack,
    admin: &Api,
    all: &[Value],
    total: usize,
) {
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
    // Retention erases the old ones on its own, through the same path, and audits it.
    eventually(
        CONVERGE,
        "retention sweeps erased the old traces",
        || async {
            let (_, page) = admin.get("/api/audit?action=retention").await;
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
        assert_eq!(admin.get(&format!("/api/traces/{}", e.id())).await.0, 404);
    }
}

/// A confirmation refuses a count that changed under the dry run's cutoff (one matching trace
/// deleted in between). Returns the traces left.
async fn a_confirmation_refuses_a_count_that_changed_since_its_dry_run(
    stack: &Stack,
    admin: &Api,
    total: usize,
    doomed: usize,
) -> usize {
    let kept_filter = json!({"meta.run": "kept"});
    let (_, kept_plan) = dry_run(admin, kept_filter.clone()).await;
    assert_eq!(kept_plan["matched"], total - doomed);
    let (_, page) = admin.get("/api/traces?meta.run=kept&limit=1").await;
    let one_kept = page["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = admin.delete(&format!("/api/traces/{one_kept}")).await;
    assert_eq!(s, 202);
    let (s, body) = admin
        .post(
            "/api/deletions",
            &json!({"filter": kept_filter, "token": kept_plan["token"]}),
        )
        .await;
    assert_eq!(s, 409, "one fewer trace matches now: {body}");
    assert!(
        body["detail"].as_str().unwrap().contains("match now"),
        "{body}"
    );
    let total = total - 1;
    stack.wait_converged(total, CONVERGE).await;
    total
}

/// Bulk delete: the dry run, then a confirmation with another filter refused (409), a request
/// with neither dry run nor token (400), an unknown filter parameter and NUL in filters and
/// reasons (422 with the field's path), an unknown audit action (422). Returns the filter and
/// the dry run's token, still unused.
async fn a_bulk_delete_refuses_other_filters_and_bad_requests(
    admin: &Api,
    doomed: usize,
) -> (Value, Value) {
    let filter = json!({"meta.run": "doomed"});
    let (s, plan) = dry_run(admin, filter.clone()).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["matched"], doomed);
    let token = plan["token"].clone();
    let (s, body) = admin
        .post(
            "/api/deletions",
            &json!({"filter": {"meta.run": "kept"}, "token": token}),
        )
        .await;
    assert_eq!(s, 409, "another filter: {body}");
    let (s, body) = admin
        .post("/api/deletions", &json!({"filter": {"meta.nope": 1}}))
        .await;
    assert_eq!(s, 400, "neither dry run nor token: {body}");
    let (s, body) = dry_run(admin, json!({"score.x": "maybe"})).await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body.to_string().contains("score.x"),
        "the error names the parameter: {body}"
    );
    // Filters and reasons are stored as JSON, which holds no NUL: 422 with the field's path.
    let (s, body) = admin
        .post(
            "/api/deletions",
            &json!({"filter": {"q": "a\u{0}b"}, "reason": "x\u{0}", "dry_run": true}),
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
    let (s, _) = admin.get("/api/audit?action=nope").await;
    assert_eq!(s, 422, "an unknown action");
    (filter, token)
}

/// A trace that arrives after the dry run is not swept: the confirmed bulk delete erases exactly
/// the dry run's matches, its token works once, and the late trace survives. Returns the
/// finished operation.
async fn a_bulk_delete_spares_a_trace_that_arrived_after_its_dry_run(
    stack: &Stack,
    admin: &Api,
    template: &Value,
    filter: &Value,
    token: &Value,
    total: usize,
    doomed: usize,
) -> Value {
    // A trace that arrives after the dry run is not swept.
    let mut late = template.clone();
    late["meta"]["run"] = json!("doomed");
    let (s, late_body) = admin.post("/api/traces", &late).await;
    assert_eq!(s, 202);
    stack.wait_converged(total + 1, CONVERGE).await;
    let (s, op) = admin
        .post(
            "/api/deletions",
            &json!({"filter": filter, "token": token, "reason": "test"}),
        )
        .await;
    assert_eq!(s, 202, "{op}");
    let (s, _) = admin
        .post("/api/deletions", &json!({"filter": filter, "token": token}))
        .await;
    assert_eq!(s, 410, "a token is used once");
    let op_path = format!("/api/deletions/{}", op["id"].as_str().unwrap());
    eventually(CONVERGE, "the bulk delete finished", || async {
        let (_, op) = admin.get(&op_path).await;
        (op["state"] == "done").then_some(op)
    })
    .await;
    let (_, op) = admin.get(&op_path).await;
    assert_eq!(op["deleted"], doomed, "{op}");
    stack.wait_converged(total + 1 - doomed, CONVERGE).await;
    let late_id = late_body["id"].as_str().unwrap();
    assert_eq!(
        admin.get(&format!("/api/traces/{late_id}")).await.0,
        200,
        "the late trace survives"
    );
    op
}

/// The audit names who asked (a key id, never the key) and when; the erasures are counted by
/// route; without the admin scope the audit is 401.
async fn the_audit_names_who_asked_never_the_key(
    stack: &Stack,
    admin: &Api,
    admin_key: &str,
    op: &Value,
    doomed: usize,
) {
    let (s, page) = admin.get("/api/audit?action=bulk_delete").await;
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
    assert_eq!(stack.get("/api/audit").await.0, 401);
}

// ---------------------------------------------------------------------------------------------
// A bulk delete resumes after a crash, another is cancelled, and the CLI drives one.
// ---------------------------------------------------------------------------------------------

/// The traces of the `crash` run (the first 24 posted); the other 6 are the `cli` run's.
const CRASH_RUN: usize = 24;

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
    let admin = stack.client().with_key(key);
    let all = traces();
    let mut batch: Vec<Value> = Vec::new();
    for (n, t) in all.iter().enumerate() {
        let mut t = t.clone();
        t["meta"]["run"] = json!(if n < CRASH_RUN { "crash" } else { "cli" });
        batch.push(t);
    }
    assert_eq!(admin.post("/api/traces/batch", &json!(batch)).await.0, 202);
    stack.wait_converged(all.len(), CONVERGE).await;
    a_bulk_delete_resumes_after_ingest_api_is_killed(&mut stack, &admin, all.len()).await;
    a_cancelled_bulk_delete_stops_after_its_current_page(&stack, &admin, all.len()).await;
    the_cli_dry_runs_then_deletes_with_progress(&stack, key, all.len() - CRASH_RUN).await;
}

/// Plans (dry run) and confirms a bulk delete of `filter`; returns the plan and the operation's
/// path.
async fn confirmed_deletion(admin: &Api, filter: &Value) -> (Value, String) {
    let (_, plan) = dry_run(admin, filter.clone()).await;
    let (s, op) = admin
        .post(
            "/api/deletions",
            &json!({"filter": filter, "token": plan["token"]}),
        )
        .await;
    assert_eq!(s, 202, "{op}");
    let path = format!("/api/deletions/{}", op["id"].as_str().unwrap());
    (plan, path)
}

/// At 5 per second, the 24 of the `crash` run take about five seconds: ingest-api is killed
/// once some are erased, while the operation runs, and after a restart it resumes and finishes.
async fn a_bulk_delete_resumes_after_ingest_api_is_killed(
    stack: &mut Stack,
    admin: &Api,
    total: usize,
) {
    let (plan, op_path) = confirmed_deletion(admin, &json!({"meta.run": "crash"})).await;
    assert_eq!(plan["matched"], CRASH_RUN);
    // At 5 per second, the 24 take about five seconds: kill ingest-api once some are erased.
    eventually(CONVERGE, "the deletion made progress", || async {
        let (_, op) = admin.get(&op_path).await;
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
        let (_, op) = admin.get(&op_path).await;
        (op["state"] == "done").then_some(op)
    })
    .await;
    assert_eq!(done["deleted"], CRASH_RUN, "{done}");
    stack.wait_converged(total - CRASH_RUN, CONVERGE).await;
}

/// Cancel: a running deletion stops after its current page (at most one page of 5 here); a
/// second cancel is 409.
async fn a_cancelled_bulk_delete_stops_after_its_current_page(
    stack: &Stack,
    admin: &Api,
    total: usize,
) {
    let (_, cancel_path) = confirmed_deletion(admin, &json!({"meta.run": "cli"})).await;
    let (s, cancelled) = admin.delete(&cancel_path).await;
    assert_eq!(
        (s, cancelled["state"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    let (s, _) = admin.delete(&cancel_path).await;
    assert_eq!(s, 409, "not running any more");
    // A negative check (no further page runs), so a wait rather than a poll: a page would be
    // due every second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = admin.get(&cancel_path).await;
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
            (listed + deleted == total as i64).then_some(listed as usize)
        },
    )
    .await;
    assert!(
        left >= total - CRASH_RUN - 5,
        "a cancelled deletion stops: {left} left"
    );
    stack.wait_converged(left, CONVERGE).await;
}

/// The CLI: a dry run deletes nothing; `--yes` deletes the `cli` run's traces (`cli_run` of them)
/// with progress.
async fn the_cli_dry_runs_then_deletes_with_progress(stack: &Stack, key: &str, cli_run: usize) {
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
        stderr.contains(&format!("{cli_run} traces match")),
        "{stderr}"
    );
    assert!(stderr.contains("dry run"), "{stderr}");
    assert_eq!(
        stack.stored().await.len(),
        cli_run,
        "a dry run deletes nothing"
    );
    let real = cli(&["--yes", "--reason", "cli test"]);
    let stderr = String::from_utf8_lossy(&real.stderr);
    assert!(real.status.success(), "{stderr}");
    assert!(
        stderr.contains('[') && stderr.contains(&format!("{0}/{0}", cli_run)),
        "a progress bar: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&real.stdout).contains(&format!("deleted {cli_run} traces")),
        "{stderr}"
    );
    stack.wait_converged(0, CONVERGE).await;
}
