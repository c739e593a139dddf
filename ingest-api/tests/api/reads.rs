//! Read endpoints against the real Postgres.

use std::time::{Duration, Instant};

use tunix_testkit::{TestDb, TestTopic};

/// The read API gives up on a query after `QUERY_TIMEOUT` (503); its connections carry the same
/// `statement_timeout`, so Postgres stops the query too instead of running it to the end (a
/// deep offset page on ten million rows kept Postgres busy for minutes after its 503).
#[tokio::test(flavor = "multi_thread")]
async fn read_queries_are_cancelled_in_postgres_at_the_read_limit() {
    let topic = TestTopic::new(1).await;
    let db = TestDb::new().await;
    let cfg =
        tunix_ingest_api::IngestConfig::for_tests(&topic.settings.brokers, topic.name(), &db.url);
    let state = tunix_ingest_api::AppState::new(cfg).expect("state");
    let limit: String = sqlx::query_scalar("SELECT current_setting('statement_timeout')")
        .fetch_one(&state.pool)
        .await
        .unwrap();
    assert_eq!(
        limit,
        format!("{}s", tunix_ingest_api::http::db::QUERY_TIMEOUT.as_secs()),
        "ingest-api's connections carry the read limit"
    );
    // And Postgres enforces it: a statement past the limit is cancelled (SQLSTATE 57014), which
    // the read API maps to 503 like any other database trouble.
    let started = Instant::now();
    let err = sqlx::query("SELECT pg_sleep(30)")
        .execute(&state.pool)
        .await
        .expect_err("cancelled by statement_timeout");
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "{err}");
    assert!(
        tunix_pipeline::db::is_transient(&err),
        "answers 503, not 500"
    );
}
