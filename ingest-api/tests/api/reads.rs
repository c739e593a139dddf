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

/// The hot reads' connections (`http::read_connections`): they carry the read pool's settings,
/// at most `size` are open, and one whose read was abandoned mid-query is closed, never handed to
/// the next read in an unknown state.
#[tokio::test(flavor = "multi_thread")]
async fn read_connections_are_bounded_and_never_reused_after_an_abandoned_read() {
    use tunix_ingest_api::http::read_connections::ReadConnections;

    let topic = TestTopic::new(1).await;
    let db = TestDb::new().await;
    let cfg =
        tunix_ingest_api::IngestConfig::for_tests(&topic.settings.brokers, topic.name(), &db.url);
    let state = tunix_ingest_api::AppState::new(cfg).expect("state");
    let reads = ReadConnections::new(state.pool.connect_options(), 1);

    // The same settings as the pool: the read limit and no JIT.
    let mut conn = reads.acquire().await.expect("connect");
    let (limit, jit): (String, String) =
        sqlx::query_as("SELECT current_setting('statement_timeout'), current_setting('jit')")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        limit,
        format!("{}s", tunix_ingest_api::http::db::QUERY_TIMEOUT.as_secs())
    );
    assert_eq!(jit, "off");
    let first_backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();

    // Bounded: while the only connection is out, the next acquire waits.
    let waiting = tokio::time::timeout(Duration::from_millis(300), reads.acquire()).await;
    assert!(
        waiting.is_err(),
        "a second connection was opened beyond the size"
    );
    conn.release();

    // Released after a complete read: the same session serves the next read.
    let mut conn = reads.acquire().await.expect("idle connection");
    let again: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(again, first_backend, "a released connection is reused");

    // Abandoned mid-query (a request dropped, or the read limit): the connection is closed.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        sqlx::query("SELECT pg_sleep(30)").execute(&mut *conn),
    )
    .await;
    assert!(abandoned.is_err(), "the sleep cannot have finished");
    drop(conn);
    let mut conn = tokio::time::timeout(Duration::from_secs(10), reads.acquire())
        .await
        .expect("the size is free again once the abandoned connection is gone")
        .expect("a new connection");
    let next: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_ne!(
        next, first_backend,
        "an abandoned connection was handed out again"
    );
    conn.release();

    // The abandoned session ends in Postgres too: its statement stops at the read limit at the
    // latest, and the backend then finds its client gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(first_backend)
                .fetch_one(&state.pool)
                .await
                .unwrap();
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backend {first_backend} still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
