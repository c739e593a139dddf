//! `GET /api/pipeline` over the real pipeline: the topic's end, each consumer's lag, dead
//! letters and bulk deletions, as the UI's operations view reads them.

use serde_json::{json, Value};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{dataset, eventually, CONVERGE};

fn consumer<'a>(status: &'a Value, service: &str) -> &'a Value {
    status["consumers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["service"] == service))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_status_reports_the_topic_lag_dead_letters_and_deletions() {
    let stack = Stack::start(StackOptions::default()).await;
    let api = stack.client();
    let data = dataset();
    for (n, t) in data.iter().take(6).enumerate() {
        let mut t = t.clone();
        t["meta"] = json!({"run": if n < 2 { "doomed" } else { "kept" }});
        assert_eq!(stack.post(&t).await.0, 202);
    }
    stack.wait_converged(6, CONVERGE).await;

    // Caught up: both consumers at the topic's end, nothing dead-lettered.
    let status = eventually(CONVERGE, "both consumers caught up", || async {
        let (code, s) = stack.get("/api/pipeline").await;
        assert_eq!(code, 200, "{s}");
        (consumer(&s, "writer")["lag"] == 0 && consumer(&s, "projector")["lag"] == 0).then_some(s)
    })
    .await;
    assert_eq!(
        (status["broker"].as_str(), status["database"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert!(
        status["topic"]["end_offsets"].as_i64().unwrap() >= 6,
        "{status}"
    );
    assert_eq!(
        status["topic"]["partitions"],
        stack.topic.settings.partitions
    );
    assert_eq!(status["dead_letters"]["records"], 0, "{status}");
    assert!(status["newest_listed_at"].is_string(), "{status}");
    assert!(consumer(&status, "writer")["positions_updated_at"].is_string());

    // A poison record: counted in the topic's end, then in the dead letters, where the writer
    // and the projector each put it once.
    let end = status["topic"]["end_offsets"].as_i64().unwrap();
    tunix_testkit::produce_raw(&stack.topic, 0, "poison", b"not avro").await;
    eventually(
        CONVERGE,
        "the poison record is counted as a dead letter",
        || async {
            let (_, s) = stack.get("/api/pipeline").await;
            (s["dead_letters"]["records"] == 2 && s["topic"]["end_offsets"].as_i64() > Some(end))
                .then_some(())
        },
    )
    .await;

    // A bulk deletion shows with its progress.
    let filter = json!({"meta.run": "doomed"});
    let (code, plan) = api
        .post(
            "/api/deletions",
            &json!({"filter": filter, "dry_run": true}),
        )
        .await;
    assert_eq!(code, 200, "{plan}");
    let (code, op) = api
        .post(
            "/api/deletions",
            &json!({"filter": filter, "token": plan["token"]}),
        )
        .await;
    assert_eq!(code, 202, "{op}");
    let listed = eventually(CONVERGE, "the deletion is listed as done", || async {
        let (_, s) = stack.get("/api/pipeline").await;
        s["deletions"]
            .as_array()?
            .iter()
            .find(|d| d["id"] == op["id"] && d["state"] == "done")
            .cloned()
    })
    .await;
    assert_eq!(
        (&listed["matched"], &listed["deleted"]),
        (&json!(2), &json!(2)),
        "{listed}"
    );
}
