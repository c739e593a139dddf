//! The writer's statements on `traces`, usable inside any open transaction (the consumer core's
//! batch transaction, or a test's).
//!
//! The payload column is `json` (migration `20261129000001`): it keeps the text exactly as the
//! trace serializes, so `GET` returns every string and number as submitted, NUL and numbers beyond
//! PostgreSQL's `numeric` included. `trace_version` is copied into a `text` column through
//! [`tunix_schemas::pg_text`], which escapes NUL instead of failing.

use sqlx::PgConnection;
use tunix_schemas::{pg_text, TraceSubmitted};
use uuid::Uuid;

/// Inserts the submissions whose id has no row yet (`ON CONFLICT (id) DO NOTHING`); returns how
/// many rows were created.
pub async fn insert(
    conn: &mut PgConnection,
    submissions: &[&TraceSubmitted],
) -> Result<u64, sqlx::Error> {
    let n = submissions.len();
    let mut ids = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for s in submissions {
        ids.push(s.id);
        created.push(s.created_at);
        versions.push(pg_text::encode(s.trace.trace_version()).into_owned());
        payloads.push(s.trace.to_json());
    }
    let result = sqlx::query!(
        "INSERT INTO traces (id, created_at, trace_version, payload)
         SELECT id, created_at, trace_version, payload::json
         FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[])
              AS t(id, created_at, trace_version, payload)
         ON CONFLICT (id) DO NOTHING",
        &ids,
        &created,
        &versions as &[String],
        &payloads
    )
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

/// Of `submissions` (which were just inserted or found existing), the ids whose stored payload
/// differs from the submitted one: an `Idempotency-Key` reused with a different body. The first
/// submission stays stored; this only reports the conflict.
pub async fn conflicting(
    conn: &mut PgConnection,
    submissions: &[&TraceSubmitted],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = submissions.iter().map(|s| s.id).collect();
    let payloads: Vec<String> = submissions.iter().map(|s| s.trace.to_json()).collect();
    sqlx::query_scalar!(
        r#"SELECT t.id AS "id!" FROM traces t
         JOIN unnest($1::uuid[], $2::text[]) AS n(id, payload) ON t.id = n.id
         WHERE t.payload::text <> n.payload"#,
        &ids,
        &payloads
    )
    .fetch_all(&mut *conn)
    .await
}

/// Deletes the rows of `ids` and records the ids in `trace_deletions` (exports count a
/// dataset's deleted members from it); returns how many rows existed.
pub async fn delete(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!("DELETE FROM traces WHERE id = ANY($1)", ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO trace_deletions (id, deleted_at) SELECT unnest($1::uuid[]), now()
         ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at",
        ids
    )
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

/// One stored trace as `GET /api/traces/{id}` reads it: created_at, decoded trace_version and
/// the payload text.
pub async fn read(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, String, String)>, sqlx::Error> {
    let row: Option<(chrono::DateTime<chrono::Utc>, String, String)> =
        sqlx::query_as("SELECT created_at, trace_version, payload::text FROM traces WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(c, v, p)| (c, pg_text::decode(&v).into_owned(), p)))
}
