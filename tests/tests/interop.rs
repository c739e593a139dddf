//! The topic's format, checked with tools nobody on this project wrote: events written by the real
//! ingest-api are consumed with Python's confluent-kafka and decoded with fastavro, which finds
//! each record's schema by the fingerprint *it* computes from the `.avsc` files (the Avro
//! specification's CRC-64-AVRO of the Parsing Canonical Form). `infra/test.sh` installs both from
//! PyPI into a venv (`tests/python/requirements.txt`) and exports `TUNIX_TEST_PYTHON`.

use std::collections::HashMap;
use std::process::Command;

use serde_json::{json, Value};
use tunix_e2e::{Stack, StackOptions};
use tunix_testkit::{python, run_ok};

fn read_events(args: &[&str]) -> String {
    let root = tunix_testkit::repo_root();
    let out = run_ok(
        Command::new(python())
            .arg(root.join("tests/python/read_events.py"))
            .arg(args[0])
            .arg(root.join("schemas/avro"))
            .args(&args[1..]),
        &format!("read_events.py {args:?}"),
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn hex(fp: &[u8]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn fastavro_computes_the_fingerprints_we_write() {
    let theirs: HashMap<String, String> =
        serde_json::from_str(&read_events(&["fingerprints"])).unwrap();
    let ours: HashMap<String, String> = tunix_schemas::schema_fingerprints()
        .into_iter()
        .map(|(file, fp)| (file.to_owned(), hex(&fp)))
        .collect();
    assert_eq!(theirs, ours);
}

/// What the scenario sent: two traces with keys, one as raw text, and a delete of the first.
struct Sent {
    /// The two JSON bodies.
    bodies: [Value; 2],
    /// The three acknowledgements (the two bodies', then the raw trace's).
    acks: Vec<Value>,
    /// The deleted trace's id.
    deleted: String,
    /// The delete's acknowledgement.
    delete_ack: Value,
}

#[tokio::test(flavor = "multi_thread")]
async fn events_written_by_ingest_api_decode_with_fastavro() {
    // The single-object encoding (EVENT_ENCODING=single-object); the Confluent framing, the
    // default, is read with Confluent's own client in tests/schema_registry.rs.
    let stack = Stack::start(StackOptions {
        api_env: vec![("EVENT_ENCODING".to_owned(), "single-object".to_owned())],
        ..StackOptions::default()
    })
    .await;
    let sent = traces_sent_as_json_and_raw_text_and_a_delete(&stack).await;
    let brokers = stack.topic.settings.brokers.clone();
    let topic = stack.topic.name().to_owned();
    let out =
        tokio::task::spawn_blocking(move || read_events(&["consume", &brokers, &topic, "6", "60"]))
            .await
            .unwrap();
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Three submissions; the delete's audit record, deletion and tombstone.
    assert_eq!(records.len(), 6, "{out}");
    every_record_has_its_schemas_fingerprint_and_the_delete_is_audited(&records, &out, &sent);
    submissions_decode_to_what_was_sent(&records, &out, &sent);
    the_deletion_decodes_with_its_instant(&records, &sent);
}

async fn traces_sent_as_json_and_raw_text_and_a_delete(stack: &Stack) -> Sent {
    let api = stack.client();
    let bodies = [
        json!({"trace_version": "2.0-β", "prompt": "CJK 推理, emoji 🧠, RTL שלום, \"quotes\" \\ \n",
               "final_answer": "👍", "steps": [{"i": 7, "type": "思考", "content": "e\u{301}"}, {"i": 2, "type": "t", "content": "x"}],
               "meta": {"run": 17, "tags": ["a", "b"], "nested": {"x": [1.5, null]}}}),
        json!({"trace_version": "v\u{0}", "prompt": "nul \u{0} inside", "final_answer": "a",
               "steps": [{"i": 0, "type": "t", "content": "c"}]}),
    ];
    let mut acks = Vec::new();
    for body in &bodies {
        let key = format!("interop-{}", acks.len());
        let (status, ack) = api.post_keyed("/api/traces", body, &key).await;
        assert_eq!(status, 202);
        acks.push(ack);
    }
    // A trace with meta numbers beyond PostgreSQL's numeric, sent as raw text.
    let raw = r#"{"trace_version":"1","prompt":"p","final_answer":"a","steps":[{"i":0,"type":"t","content":"c"}],"meta":{"z":0e-99999}}"#;
    let resp = stack
        .http
        .post(stack.url("/api/traces"))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    acks.push(resp.json::<Value>().await.unwrap());
    let deleted = acks[0]["id"].as_str().unwrap().to_owned();
    let (status, delete_ack) = api.delete(&format!("/api/traces/{deleted}")).await;
    assert_eq!(status, 202);
    Sent {
        bodies,
        acks,
        deleted,
        delete_ack,
    }
}

/// One tombstone, under the deleted trace's key; the delete's audit record; every other record
/// carries the fingerprint fastavro computes for its schema file.
fn every_record_has_its_schemas_fingerprint_and_the_delete_is_audited(
    records: &[Value],
    out: &str,
    sent: &Sent,
) {
    let deleted = &sent.deleted;
    let spec: HashMap<&str, String> = tunix_schemas::schema_fingerprints()
        .into_iter()
        .map(|(f, fp)| (f, hex(&fp)))
        .collect();
    let nulls: Vec<&Value> = records.iter().filter(|r| r["tombstone"] == true).collect();
    assert_eq!(nulls.len(), 1, "{out}");
    assert_eq!(
        nulls[0]["key"],
        deleted.as_str(),
        "the deletion's tombstone"
    );
    let audit = records
        .iter()
        .find(|r| r["file"] == "erasure_requested.v1.avsc")
        .expect("the delete's audit record");
    assert_eq!(audit["value"]["trace_id"], deleted.as_str());
    assert_eq!(audit["value"]["action"], "delete");
    assert_eq!(audit["value"]["requested_by"], "anonymous");
    for r in records.iter().filter(|r| r["tombstone"] != true) {
        assert_eq!(
            r["fingerprint"].as_str().unwrap(),
            spec[r["file"].as_str().unwrap()]
        );
    }
}

/// The three submissions decode to the fields sent, with `created_at` as acknowledged and the raw
/// trace's meta text as sent.
fn submissions_decode_to_what_was_sent(records: &[Value], out: &str, sent: &Sent) {
    let submitted: Vec<&Value> = records
        .iter()
        .filter(|r| r["file"] == "trace_submitted.v2.avsc")
        .collect();
    assert_eq!(submitted.len(), 3, "{out}");
    for (body, ack) in sent.bodies.iter().zip(&sent.acks) {
        let r = submitted
            .iter()
            .find(|r| r["key"] == ack["id"])
            .unwrap_or_else(|| panic!("{ack} on the topic"));
        let v = &r["value"];
        assert_eq!(v["id"], ack["id"]);
        for field in ["trace_version", "prompt", "final_answer", "steps"] {
            assert_eq!(v[field], body[field], "{field}");
        }
        let meta: Value = serde_json::from_str(v["meta"].as_str().unwrap_or("null")).unwrap();
        assert_eq!(meta, body.get("meta").cloned().unwrap_or(Value::Null));
        // timestamp-micros, as fastavro reads the logical type.
        let created = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            created,
            chrono::DateTime::parse_from_rfc3339(ack["created_at"].as_str().unwrap()).unwrap()
        );
    }
    let edge = submitted
        .iter()
        .find(|r| r["key"] == sent.acks[2]["id"])
        .unwrap();
    assert_eq!(
        edge["value"]["meta"], r#"{"z":0e-99999}"#,
        "meta text as sent"
    );
}

/// The delete event decodes under the trace's key with the acknowledged `deleted_at`.
fn the_deletion_decodes_with_its_instant(records: &[Value], sent: &Sent) {
    let deleted = &sent.deleted;
    let tombstone = records
        .iter()
        .find(|r| r["file"] == "trace_deleted.v1.avsc")
        .expect("the delete event");
    assert_eq!(tombstone["key"], deleted.as_str());
    assert_eq!(tombstone["value"]["id"], deleted.as_str());
    let at =
        chrono::DateTime::parse_from_rfc3339(tombstone["value"]["deleted_at"].as_str().unwrap())
            .unwrap();
    assert_eq!(
        at,
        chrono::DateTime::parse_from_rfc3339(sent.delete_ack["deleted_at"].as_str().unwrap())
            .unwrap()
    );
}
