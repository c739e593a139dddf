//! The ingest rules promise that every trace they accept is storable. PostgreSQL itself is the
//! oracle here: every generated body the validator accepts is stored by the writer's real
//! statement and the list view's real statement, on a real database, and read back equal: the
//! payload byte for byte (every string and number as sent, NUL and numbers beyond `numeric`
//! included), `trace_version` and the prompt preview through the `pg_text` escape.
//!
//! CI runs 256 cases; run longer with
//! `PROPTEST_CASES=20000 ./infra/test.sh -E 'binary(storage_oracle)'`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rdkafka::message::OwnedMessage;
use rdkafka::Timestamp;
use tunix_pipeline::consumer::Record;
use tunix_projector::view::{self, Summary};
use tunix_schemas::{pg_text, Trace, TraceEvent, TraceSubmitted};
use tunix_testkit::TestDb;

fn record(event: TraceEvent) -> Record {
    Record {
        event,
        message: OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 0, None),
    }
}

/// Stores `trace` with both read models' statements inside a transaction that is rolled back,
/// and checks what comes back.
async fn store_and_read_back(db: &TestDb, trace: Trace) -> Result<(), TestCaseError> {
    let submitted = TraceSubmitted {
        id: tunix_schemas::ids::new_trace_id(),
        created_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
        trace: trace.clone(),
        idempotency_key: None,
    };
    let mut tx = db.pool.begin().await.expect("begin");

    let upserted = tunix_writer::store::upsert(&mut tx, &[&submitted], &[])
        .await
        .map_err(|e| TestCaseError::fail(format!("the writer's INSERT refused it: {e}")))?;
    prop_assert_eq!(upserted.inserted, 1);
    let (created_at, version, payload) = tunix_writer::store::read(&mut tx, submitted.id)
        .await
        .expect("read back")
        .expect("row exists");
    prop_assert_eq!(created_at, submitted.created_at);
    prop_assert_eq!(version.as_str(), trace.trace_version());
    prop_assert_eq!(&payload, &trace.to_json(), "payload text as sent");
    let reparsed = Trace::parse_json(payload.as_bytes())
        .map_err(|e| TestCaseError::fail(format!("stored payload does not re-validate: {e}")))?;
    prop_assert_eq!(&reparsed, &trace);

    let records = [record(TraceEvent::Submitted(submitted.clone()))];
    view::apply_to(&mut tx, "trace_list_v1", &records, false)
        .await
        .map_err(|e| TestCaseError::fail(format!("the list view's INSERT refused it: {e}")))?;
    let (v, preview, steps, bytes): (String, String, i32, i32) = sqlx::query_as(
        "SELECT trace_version, prompt_preview, step_count, payload_bytes FROM trace_list_v1 WHERE id = $1",
    )
    .bind(submitted.id)
    .fetch_one(&mut *tx)
    .await
    .expect("list row");
    let summary = Summary::of(&trace);
    let (v, preview) = (pg_text::decode(&v), pg_text::decode(&preview));
    prop_assert_eq!(v.as_ref(), trace.trace_version());
    prop_assert_eq!(preview.as_ref(), summary.prompt_preview.as_str());
    prop_assert_eq!(steps, summary.step_count);
    prop_assert_eq!(bytes as usize, payload.len());

    // The list filter finds it by its exact trace_version, NUL and all.
    let found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM trace_list_v1 WHERE trace_version = $1")
            .bind(pg_text::encode(trace.trace_version()).as_ref())
            .fetch_one(&mut *tx)
            .await
            .expect("filter");
    prop_assert_eq!(found, 1);
    tx.rollback().await.expect("rollback");
    Ok(())
}

#[test]
fn every_trace_the_validator_accepts_is_stored_and_read_back_as_sent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let accepted = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    let result = runner.run(
        &tunix_testkit::arb::trace_body(),
        |body| match Trace::parse_json(body.as_bytes()) {
            Ok(trace) => {
                accepted.set(accepted.get() + 1);
                rt.block_on(store_and_read_back(&db, trace))
            }
            Err(_) => {
                refused.set(refused.get() + 1);
                Ok(())
            }
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator aims at the edges but must mostly produce valid traces, or the oracle
    // would test little.
    let (accepted, refused) = (accepted.get(), refused.get());
    assert!(
        accepted > refused,
        "accepted {accepted}, refused {refused}: the generator is off"
    );
}

/// The literals that broke the promise before, pinned: each is accepted and stored as sent.
#[test]
fn the_regressions_are_stored_as_sent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = TestDb::new().await;
        for meta in [
            r#"{"zero":0e-99999}"#,
            r#"{"tiny":1e-400,"huge_exp":0e99999999999}"#,
            r#"{"nul":"a\u0000b","k\u0000":[1,"\u0000"]}"#,
            r#"{"big":123456789012345678901234567890,"spelled":1E+2,"neg0":-0.0}"#,
        ] {
            let body = format!(
                r#"{{"trace_version":"v\u0000","prompt":"p\u0000","final_answer":"\u0000","steps":[{{"i":0,"type":"t","content":"c"}}],"meta":{meta}}}"#
            );
            let trace = Trace::parse_json(body.as_bytes())
                .unwrap_or_else(|e| panic!("{meta} is accepted: {e}"));
            assert_eq!(trace.meta().unwrap().as_str(), meta);
            store_and_read_back(&db, trace)
                .await
                .unwrap_or_else(|e| panic!("{meta}: {e}"));
        }
    });
}
