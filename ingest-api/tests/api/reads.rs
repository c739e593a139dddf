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
/// at most `size` sessions exist, a released one is reused, and one whose read was abandoned
/// mid-query holds its place until its statement ended, then serves (or is replaced) and the
/// next read gets a correct answer.
#[tokio::test(flavor = "multi_thread")]
async fn read_connections_are_bounded_and_settle_an_abandoned_read_before_reuse() {
    use tunix_ingest_api::http::read_connections::ReadConnections;

    let topic = TestTopic::new(1).await;
    let db = TestDb::new().await;
    let cfg =
        tunix_ingest_api::IngestConfig::for_tests(&topic.settings.brokers, topic.name(), &db.url);
    let state = tunix_ingest_api::AppState::new(cfg).expect("state");
    let reads = ReadConnections::new(state.pool.connect_options(), 1, Duration::from_millis(300));

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

    // Bounded: while the only connection is out, the next acquire waits, then gives up.
    let waiting = reads.acquire().await;
    assert!(
        matches!(waiting, Err(sqlx::Error::PoolTimedOut)),
        "a second session was opened beyond the size"
    );
    conn.release();

    // Released after a complete read: the same session serves the next read.
    let mut conn = reads.acquire().await.expect("idle connection");
    let again: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(again, first_backend, "a released connection is reused");

    // Abandoned mid-query (a request dropped, or the read limit): it still counts against the
    // size until the statement ended (at the latest at the read limit), then serves again.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        sqlx::query("SELECT pg_sleep(30)").execute(&mut *conn),
    )
    .await;
    assert!(abandoned.is_err(), "the sleep cannot have finished");
    drop(conn);
    assert!(
        matches!(reads.acquire().await, Err(sqlx::Error::PoolTimedOut)),
        "the abandoned connection's slot was given away while its statement ran"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match reads.acquire().await {
            Ok(conn) => break conn,
            Err(sqlx::Error::PoolTimedOut) if Instant::now() < deadline => continue,
            Err(e) => panic!("no connection after the abandoned read settled: {e}"),
        }
    };
    let (backend, answer): (i32, i32) = sqlx::query_as("SELECT pg_backend_pid(), 41 + 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        answer, 42,
        "the connection answers the new read, not the old one"
    );
    if backend != first_backend {
        // The abandoned statement ended in an error (the read limit), so its connection was
        // closed rather than reused: its session must be gone, never two at once for long.
        let deadline = Instant::now() + Duration::from_secs(10);
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
                "the abandoned session {first_backend} outlived its connection"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    conn.release();
}
