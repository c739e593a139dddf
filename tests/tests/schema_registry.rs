//! The Confluent Schema Registry wire format, checked with clients nobody here wrote: Python's
//! confluent-kafka `SchemaRegistryClient` + `AvroDeserializer` read what ingest-api wrote through
//! ingest-api's built-in registry and through an external one; the consumers pause (not
//! dead-letter) while a registry is unreachable; unknown ids go to the DLQ; and a topic that moved
//! between encodings and registries replays from offset 0 into a fresh database.
//!
//! The external registry is a real server, Apicurio Registry (testkit's [`ApicurioRegistry`],
//! fetched from Maven Central by `infra/test.sh`), through its Confluent-compatible API
//! (`/apis/ccompat/v7`). Where its answers differ from Confluent Schema Registry's, the tests say
//! so; docs/CONSUMERS.md ("Tested against Apicurio Registry") lists every difference.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};
use tunix_e2e::{kv, Stack, StackOptions};
use tunix_schemas::{EventKind, ShippedSchema, BUILTIN_ID_RANGE};
use tunix_testkit::{consume_all, eventually, produce_raw, python, Api, ApicurioRegistry};

const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
const READ_KEY: &str = "read-key-0123456789abcdef";

/// Runs `tests/python/read_with_registry.py`; returns (exit success, stdout records, stderr).
async fn read_with_registry(
    stack: &Stack,
    registry_url: &str,
    user_info: Option<&str>,
    count: usize,
) -> (bool, Vec<Value>, String) {
    let script = tunix_testkit::repo_root().join("tests/python/read_with_registry.py");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script)
        .arg(&stack.topic.settings.brokers)
        .arg(stack.topic.name())
        .arg(registry_url)
        .arg(count.to_string())
        .arg("30");
    if let Some(u) = user_info {
        cmd.env("REGISTRY_USER_INFO", u);
    }
    let out = cmd.output().await.expect("run read_with_registry.py");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (
        out.status.success(),
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until GET /api/traces/{id} answers 200 (the writer stored it) and returns the body.
async fn stored(stack: &Stack, id: &str, key: Option<&str>) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("trace {id} stored"),
        || async {
            let mut req = stack.http.get(stack.url(&format!("/api/traces/{id}")));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.ok()?;
            (resp.status() == 200).then_some(())?;
            resp.json::<Value>().await.ok()
        },
    )
    .await
}

fn by_key(records: &[Value]) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for r in records {
        out.entry(r["key"].as_str().unwrap().to_owned())
            .or_default()
            .push(r.clone());
    }
    out
}

/// What the built-in registry scenario sent through the API.
struct Sent {
    /// The first trace's body.
    body: Value,
    /// Its id (scored `correct` = 0.75).
    id: String,
    /// The second trace's id (deleted).
    other: String,
    /// The first trace as GET answers it.
    got: Value,
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_clients_read_every_event_through_the_builtin_registry() {
    let stack = Stack::start(StackOptions {
        api_env: vec![kv("API_KEYS", format!("{ADMIN_KEY}:admin,{READ_KEY}:read"))],
        ..StackOptions::default()
    })
    .await;
    let sent = two_traces_a_score_and_a_delete_through_the_api(&stack).await;
    let base = format!("http://{}/api/registry", stack.api_addr);
    the_registry_endpoints_take_the_read_key_as_basic_auth_password(&stack, &base).await;
    confluent_kafkas_deserializer_gets_every_field_back(&stack, &base, &sent).await;

    // A wrong key: the client gets the registry's 401, not data.
    let (ok, _, stderr) =
        read_with_registry(&stack, &base, Some("tunix:wrong-key-0123456789"), 1).await;
    assert!(!ok);
    assert!(
        stderr.contains("401") || stderr.to_lowercase().contains("unauthorized"),
        "{stderr}"
    );
}

/// Two traces posted with the admin key and stored; the first scored, the second deleted.
async fn two_traces_a_score_and_a_delete_through_the_api(stack: &Stack) -> Sent {
    let admin: Api = stack.client().with_key(ADMIN_KEY);
    let body = json!({
        "trace_version": "2.0-β", "prompt": "CJK 推理, emoji 🧠, RTL שלום, NUL \u{0} \"q\" \\",
        "final_answer": "👍", "steps": [{"i": 7, "type": "思考", "content": "e\u{301}"}],
        "meta": {"run": 17, "nested": {"x": [1.5, null]}, "tags": ["a"]}
    });
    let (status, ack) = admin.post("/api/traces", &body).await;
    assert_eq!(status, 202, "{ack}");
    let id = ack["id"].as_str().unwrap().to_owned();
    let (status, other) = admin
        .post(
            "/api/traces",
            &json!({
            "trace_version": "1", "prompt": "p", "final_answer": "a",
            "steps": [{"i": 0, "type": "t", "content": "c"}]}),
        )
        .await;
    assert_eq!(status, 202);
    let other = other["id"].as_str().unwrap().to_owned();
    // The writer decodes Confluent frames with the built-in ids: both become readable.
    let got = stored(stack, &id, Some(ADMIN_KEY)).await;
    stored(stack, &other, Some(ADMIN_KEY)).await;
    let (status, _) = admin
        .post(
            &format!("/api/traces/{id}/scores"),
            &json!({"name": "correct", "value": 0.75, "source": "grader ✓"}),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = admin.delete(&format!("/api/traces/{other}")).await;
    assert!(status == 202 || status == 200, "delete: {status}");
    Sent {
        body,
        id,
        other,
        got,
    }
}

/// The registry endpoints: read scope as the basic-auth password; 401 without.
async fn the_registry_endpoints_take_the_read_key_as_basic_auth_password(
    stack: &Stack,
    base: &str,
) {
    let registry_get = |path: String| {
        let req = stack
            .http
            .get(format!("{base}{path}"))
            .basic_auth("anyone", Some(READ_KEY));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let topic = stack.topic.name();
    let subjects: Vec<String> = EventKind::ALL.iter().map(|k| k.subject(topic)).collect();
    assert_eq!(registry_get("/subjects".into()).await, json!(subjects));
    let unauthenticated = stack
        .http
        .get(format!("{base}/subjects"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let submitted_subject = EventKind::Submitted.subject(topic);
    let latest = registry_get(format!("/subjects/{submitted_subject}/versions/latest")).await;
    assert_eq!(latest["id"], 1_000_000_002);
    assert_eq!(latest["version"], 2);
}

/// confluent-kafka's AvroDeserializer, through our registry, gets back every field of every
/// event: both traces, the score, and the delete's audit record, deletion and tombstone.
async fn confluent_kafkas_deserializer_gets_every_field_back(
    stack: &Stack,
    base: &str,
    sent: &Sent,
) {
    let Sent {
        body,
        id,
        other,
        got,
    } = sent;
    let user_info = format!("tunix:{READ_KEY}");
    let (ok, records, stderr) = read_with_registry(stack, base, Some(&user_info), 6).await;
    assert!(ok, "read_with_registry.py failed: {stderr}");
    assert_eq!(
        records.len(),
        6,
        "2 traces, a score, and the delete's audit record, deletion and tombstone: {records:?}"
    );
    let audit = records
        .iter()
        .find(|r| r["schema_id"] == 1_000_000_009)
        .expect("the audit record, read through the registry");
    assert_eq!(audit["value"]["trace_id"], other.as_str());
    assert!(audit["value"]["requested_by"]
        .as_str()
        .unwrap()
        .starts_with("key-"));
    let keys = by_key(&records);
    let submitted = &keys[id][0];
    assert_eq!(
        submitted["schema_id"],
        ShippedSchema::current(EventKind::Submitted)
            .file()
            .builtin_id
    );
    let v = &submitted["value"];
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["prompt"], body["prompt"], "unicode and NUL intact");
    assert_eq!(v["final_answer"], "👍");
    assert_eq!(v["trace_version"], "2.0-β");
    assert_eq!(
        v["steps"],
        json!([{"i": 7, "type": "思考", "content": "e\u{301}"}])
    );
    let meta: Value = serde_json::from_str(v["meta"].as_str().unwrap()).unwrap();
    assert_eq!(meta, body["meta"], "meta travels as its JSON text");
    let created: chrono::DateTime<chrono::Utc> = v["created_at"].as_str().unwrap().parse().unwrap();
    let served: chrono::DateTime<chrono::Utc> =
        got["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(created, served, "timestamp-micros read as the same instant");
    let score = &keys[&format!("{id}/score/correct")][0];
    assert_eq!(score["schema_id"], 1_000_000_004);
    assert_eq!(score["value"]["value"], 0.75);
    assert_eq!(score["value"]["source"], "grader ✓");
    assert_eq!(score["value"]["trace_id"], id.as_str());
    let deletion = keys[other]
        .iter()
        .find(|r| r["schema_id"] == 1_000_000_003)
        .expect("the deletion");
    assert_eq!(deletion["value"]["id"], other.as_str());
    assert!(deletion["value"]["deleted_at"].as_str().is_some());
    assert!(
        keys[other].iter().any(|r| r["tombstone"] == true),
        "the deletion is followed by a tombstone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_registry_gets_our_schemas_and_serves_every_reader() {
    let registry = ApicurioRegistry::start(1, Some("sr-user:sr-secret")).await;
    let stack = Stack::start(StackOptions {
        service_env: registry.env(),
        ..StackOptions::default()
    })
    .await;
    // Every shipped schema is registered under its TopicRecordNameStrategy subject.
    let topic = stack.topic.name();
    let (_, subjects) = registry.get("/subjects").await;
    // Sorted here: Confluent lists subjects sorted, Apicurio in an order of its own.
    let mut subjects: Vec<String> = serde_json::from_value(subjects).unwrap();
    subjects.sort();
    let mut expected: Vec<String> = EventKind::ALL.iter().map(|k| k.subject(topic)).collect();
    expected.sort();
    assert_eq!(subjects, expected);
    let (_, versions) = registry
        .get(&format!(
            "/subjects/{}/versions",
            EventKind::Submitted.subject(topic)
        ))
        .await;
    assert_eq!(versions, json!([1, 2]), "both TraceSubmitted versions");

    let (status, ack) = stack
        .post(
            &json!({"trace_version": "1", "prompt": "Ünïcödé 東京", "final_answer": "a",
                       "steps": [{"i": 0, "type": "t", "content": "c"}], "meta": {"k": "v"}}),
        )
        .await;
    assert_eq!(status, 202);
    let id = ack["id"].as_str().unwrap().to_owned();
    stored(&stack, &id, None).await;

    // Framed with the registry's ids, not the built-in ones.
    let raw = consume_all(
        &stack.topic.settings.brokers,
        topic,
        1,
        Duration::from_secs(20),
    );
    let value = raw[0].payload().unwrap();
    assert_eq!(value[0], 0);
    let framed = i32::from_be_bytes(value[1..5].try_into().unwrap());
    assert!(
        !BUILTIN_ID_RANGE.contains(&framed) && framed >= 1,
        "{framed}"
    );
    let (_, schema) = registry.get(&format!("/schemas/ids/{framed}")).await;
    assert_eq!(
        ShippedSchema::from_schema_text(schema["schema"].as_str().unwrap()),
        Some(ShippedSchema::current(EventKind::Submitted))
    );
    // The ids are remembered, for readers after a move.
    let remembered: i64 = sqlx::query_scalar("SELECT count(*) FROM schema_registry_ids")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(remembered, tunix_schemas::SCHEMA_FILES.len() as i64);

    // Python's client reads through the external registry...
    let (ok, records, stderr) =
        read_with_registry(&stack, &registry.url, registry.user_info.as_deref(), 1).await;
    assert!(ok, "{stderr}");
    assert_eq!(records[0]["schema_id"], framed);
    assert_eq!(records[0]["value"]["prompt"], "Ünïcödé 東京");
    // ...and through the built-in one, which serves the ids the external registry assigned.
    let base = format!("http://{}/api/registry", stack.api_addr);
    let (ok, records, stderr) = read_with_registry(&stack, &base, None, 1).await;
    assert!(ok, "{stderr}");
    assert_eq!(records[0]["value"]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_pauses_the_consumers_and_nothing_is_dead_lettered() {
    let mut registry = ApicurioRegistry::start(1, None).await;
    let mut stack = Stack::start(StackOptions {
        service_env: registry.env(),
        ..StackOptions::default()
    })
    .await;
    // A third-party producer (confluent-kafka's AvroSerializer) writes a trace through the
    // registry: Confluent framing with the registry's id and no tunix header, so the writer must
    // ask the registry. It has not seen the id, and it is not remembered (as for a writer on
    // another database). The projector is stopped too: it would resolve the id through the
    // registry while it is still up and remember it in Postgres, where the writer would then find
    // it without the registry (a race this test lost now and then).
    stack.writer.kill();
    stack.projector.kill();
    sqlx::query("DELETE FROM schema_registry_ids")
        .execute(&stack.db.pool)
        .await
        .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let value = json!({"id": id, "created_at": 1_764_000_000_000_001i64, "trace_version": "1",
        "prompt": "from a foreign producer", "final_answer": "a",
        "steps": [{"i": 0, "type": "t", "content": "c"}], "meta": null, "idempotency_key": null});
    let out = tokio::process::Command::new(python())
        .arg(tunix_testkit::repo_root().join("tests/python/produce_with_registry.py"))
        .arg(&stack.topic.settings.brokers)
        .arg(stack.topic.name())
        .arg(&registry.url)
        .arg(tunix_testkit::repo_root().join("schemas/avro/trace_submitted.v2.avsc"))
        .arg(&id)
        .arg(value.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Apicurio compares schemas by text: confluent-kafka registers the schema re-serialized, so it
    // gets an id (and a subject version) of its own, where Confluent would answer ingest-api's.
    // Either way the writer has never seen it.
    let framed: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        framed < 100,
        "the registry's id, not a built-in one: {framed}"
    );
    // SIGKILL: the registry is gone, as in a crash or a network outage.
    registry.kill();
    stack.writer.restart();
    let readyz = format!("http://{}/readyz", stack.writer_ops);
    let report = eventually(
        Duration::from_secs(30),
        "writer not ready: schema registry",
        || async {
            let resp = stack.http.get(&readyz).send().await.ok()?;
            let status = resp.status();
            let body = resp.text().await.ok()?;
            (status == 503 && body.contains("schema_registry")).then_some(body)
        },
    )
    .await;
    assert!(report.contains("unavailable"), "{report}");
    let (status, _) = stack.get(&format!("/api/traces/{id}")).await;
    assert_eq!(status, 404, "not stored while the registry is down");
    let metrics = stack.scrape(&stack.writer_ops).await.unwrap_or_default();
    assert_eq!(
        tunix_e2e::metric_sum(&metrics, "tunix_writer_dlq_total").unwrap_or(0.0),
        0.0,
        "an outage is not a reason to dead-letter"
    );

    // Back on the same port, with its data (an H2 file written at every commit).
    registry.restart().await;
    stored(&stack, &id, None).await;
    stack.wait_ready(&stack.writer_ops.clone()).await;
    let metrics = stack.scrape(&stack.writer_ops).await.unwrap_or_default();
    assert_eq!(
        tunix_e2e::metric_sum(&metrics, "tunix_writer_dlq_total").unwrap_or(0.0),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_schema_ids_go_to_the_dead_letter_topic() {
    let stack = Stack::start(StackOptions::default()).await;
    // A valid datum behind ids nobody assigned: an external-looking one and a reserved one.
    let event = tunix_testkit::submitted(tunix_testkit::dataset_traces().remove(0));
    let datum = event.encode()[10..].to_vec();
    for id in [77i32, 1_000_099_999] {
        let mut value = vec![0u8];
        value.extend_from_slice(&id.to_be_bytes());
        value.extend_from_slice(&datum);
        produce_raw(&stack.topic, 0, &format!("unknown-{id}"), &value).await;
    }
    let (status, ack) = stack
        .post(
            &json!({"trace_version": "1", "prompt": "after the poison", "final_answer": "a",
                       "steps": [{"i": 0, "type": "t", "content": "c"}]}),
        )
        .await;
    assert_eq!(status, 202);
    stored(&stack, ack["id"].as_str().unwrap(), None).await;
    let dlq = consume_all(
        &stack.topic.settings.brokers,
        &stack.topic.settings.dlq_topic,
        4,
        Duration::from_secs(30),
    );
    let reasons: Vec<(String, String)> = dlq
        .iter()
        .map(|m| {
            let key = String::from_utf8_lossy(m.key().unwrap()).into_owned();
            let reason = m
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "dlq.error.reason")
                        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                })
                .unwrap_or_default();
            (key, reason)
        })
        .collect();
    for id in ["unknown-77", "unknown-1000099999"] {
        let found: Vec<_> = reasons.iter().filter(|(k, _)| k == id).collect();
        assert!(!found.is_empty(), "{id} dead-lettered: {reasons:?}");
        assert!(
            found.iter().all(|(_, r)| r == "unknown_schema"),
            "{reasons:?}"
        );
    }
}

/// Posts one trace and returns its id.
async fn post_one(stack: &Stack, prompt: &str) -> String {
    let (status, ack) = stack
        .post(
            &json!({"trace_version": "1", "prompt": prompt, "final_answer": "a",
                       "steps": [{"i": 0, "type": "t", "content": "c"}]}),
        )
        .await;
    assert_eq!(status, 202, "{ack}");
    ack["id"].as_str().unwrap().to_owned()
}

/// Restarts the three services with `set` applied to their environment (`None` removes).
async fn reconfigure(stack: &mut Stack, set: &[(&str, Option<&str>)]) {
    for service in [&mut stack.api, &mut stack.writer, &mut stack.projector] {
        service.terminate(Duration::from_secs(10));
        for (k, v) in set {
            service.set_env(k, *v);
        }
        service.restart();
    }
    for addr in [
        stack.api_addr.clone(),
        stack.writer_ops.clone(),
        stack.projector_ops.clone(),
    ] {
        stack.wait_ready(&addr).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_moved_between_encodings_and_registries_replays_into_a_fresh_database() {
    let mut registry = ApicurioRegistry::start(1, Some("mover:secret")).await;
    let mut stack = Stack::start(StackOptions {
        api_env: vec![kv("EVENT_ENCODING", "single-object")],
        ..StackOptions::default()
    })
    .await;
    let mut ids = vec![post_one(&stack, "single-object").await];
    // Confluent framing, built-in ids.
    reconfigure(&mut stack, &[("EVENT_ENCODING", None)]).await;
    ids.push(post_one(&stack, "built-in ids").await);
    // An external registry.
    let env = registry.env();
    let set: Vec<(&str, Option<&str>)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    reconfigure(&mut stack, &set).await;
    ids.push(post_one(&stack, "external ids").await);
    // And back to the built-in registry; the external one is gone for good.
    let unset: Vec<(&str, Option<&str>)> = env.iter().map(|(k, _)| (k.as_str(), None)).collect();
    reconfigure(&mut stack, &unset).await;
    registry.kill();
    ids.push(post_one(&stack, "built-in again").await);
    for id in &ids {
        stored(&stack, id, None).await;
    }

    // The topic holds all three framings, in that order.
    let raw = consume_all(
        &stack.topic.settings.brokers,
        stack.topic.name(),
        4,
        Duration::from_secs(20),
    );
    let frame_of = |id: &str| {
        let m = raw
            .iter()
            .find(|m| m.key() == Some(id.as_bytes()))
            .expect("record on the topic");
        let v = m.payload().unwrap();
        if v[0] == 0xC3 {
            "single-object".to_owned()
        } else {
            let sid = i32::from_be_bytes(v[1..5].try_into().unwrap());
            if BUILTIN_ID_RANGE.contains(&sid) {
                "built-in".to_owned()
            } else {
                "external".to_owned()
            }
        }
    };
    let frames: Vec<String> = ids.iter().map(|id| frame_of(id)).collect();
    assert_eq!(
        frames,
        ["single-object", "built-in", "external", "built-in"]
    );

    // Replays from offset 0 into an empty database, with the external registry gone: every
    // trace present in the writer's table and the projector's list.
    let fresh = tunix_testkit::TestDb::new().await;
    let writer = tunix_testkit::Service::start(
        "writer-replay",
        tunix_testkit::binary("tunix-writer"),
        vec![
            kv("KAFKA_BROKERS", &stack.topic.settings.brokers),
            kv("KAFKA_TOPIC", stack.topic.name()),
            kv("DATABASE_URL", &fresh.url),
            kv(
                "WRITER_OPS_ADDR",
                format!("127.0.0.1:{}", tunix_testkit::free_port()),
            ),
            kv("WRITER_GROUP_ID", tunix_testkit::unique("replay")),
        ],
    );
    eventually(
        Duration::from_secs(60),
        "replayed writer stores all four",
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM traces")
                .fetch_one(&fresh.pool)
                .await
                .ok()?;
            (n == 4).then_some(())
        },
    )
    .await;
    drop(writer);
    let progress = stack.rebuild_into(&fresh.url).await;
    let active: i32 =
        sqlx::query_scalar("SELECT active_version FROM projection_state WHERE name = 'trace_list'")
            .fetch_one(&fresh.pool)
            .await
            .unwrap();
    let listed: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM trace_list_v{active}"))
        .fetch_one(&fresh.pool)
        .await
        .unwrap();
    assert_eq!(listed, 4, "projector rebuild lists all four: {progress}");
}

/// Starts ingest-api against `registry_url` and returns its exit status and output; it must not
/// keep running.
async fn ingest_api_against(registry_url: &str, extra: &[(&str, &str)]) -> (bool, String) {
    let db = tunix_testkit::TestDb::new().await;
    let mut env: Vec<(String, String)> = vec![
        kv("KAFKA_BROKERS", tunix_testkit::kafka_brokers()),
        kv("KAFKA_TOPIC", tunix_testkit::unique("unregistered")),
        kv("DATABASE_URL", &db.url),
        kv(
            "API_ADDR",
            format!("127.0.0.1:{}", tunix_testkit::free_port()),
        ),
        kv("SCHEMA_REGISTRY_URL", registry_url),
        kv("SCHEMA_REGISTRY_TIMEOUT_MS", "1000"),
    ];
    env.extend(extra.iter().map(|(k, v)| kv(k, *v)));
    tunix_testkit::run_to_exit(
        tunix_testkit::binary("tunix-ingest-api"),
        &env,
        Duration::from_secs(60),
        "ingest-api gives up instead of serving without its registry",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_failure_stops_start_up_with_a_clear_error() {
    // Nobody listening.
    let url = format!("http://127.0.0.1:{}", tunix_testkit::free_port());
    let (ok, text) = ingest_api_against(&url, &[]).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("cannot register the event schemas in SCHEMA_REGISTRY_URL")
            && text.contains("unavailable"),
        "{text}"
    );
    // Wrong credentials: refused at once, with the registry's status.
    let registry = ApicurioRegistry::start(1, Some("user:right")).await;
    let (ok, text) = ingest_api_against(
        &registry.url,
        &[
            ("SCHEMA_REGISTRY_USERNAME", "user"),
            ("SCHEMA_REGISTRY_PASSWORD", "wrong"),
        ],
    )
    .await;
    assert!(!ok, "{text}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(
        !text.contains("wrong"),
        "the password is never printed: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tunix_admin_registers_and_lists_the_schemas() {
    // Ids from 500 on (Apicurio has no setting for it: testkit imports a dummy artifact with id
    // 499 first), far from the registry's usual first ids.
    let registry = ApicurioRegistry::start(500, Some("ops:pw")).await;
    let db = tunix_testkit::TestDb::new().await;
    let topic = tunix_testkit::unique("admin-topic");
    let admin = |args: &[&str]| {
        let mut cmd = std::process::Command::new(tunix_testkit::binary("tunix-admin"));
        cmd.args(args)
            .env("DATABASE_URL", &db.url)
            .env("KAFKA_BROKERS", tunix_testkit::kafka_brokers())
            .env("KAFKA_TOPIC", &topic);
        for (k, v) in registry.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run tunix-admin");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let printed = admin(&["schemas", "register"]);
    assert!(printed.contains("9 schemas registered in"), "{printed}");
    let subject = EventKind::Submitted.subject(&topic);
    let (_, latest) = registry
        .get(&format!("/subjects/{subject}/versions/latest"))
        .await;
    let id = latest["id"].as_i64().unwrap();
    assert!((500..509).contains(&id), "{latest}");
    assert!(
        printed
            .lines()
            .any(|l| l.contains(&subject) && l.contains(&id.to_string())),
        "{printed}"
    );
    let listed = admin(&["schemas", "list"]);
    for file in tunix_schemas::SCHEMA_FILES {
        assert!(
            listed
                .lines()
                .any(|l| l.contains(file.file) && l.contains(&file.builtin_id.to_string())),
            "{listed}"
        );
    }
    assert!(
        listed.contains(&format!("{id:>10} trace_submitted.v2.avsc")),
        "the registered ids are remembered: {listed}"
    );
}
