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

/// What [`upsert`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Upserted {
    /// Rows created.
    pub inserted: u64,
    /// Submissions whose id had a row: replaced by this later submission (compaction's rule) or
    /// identical to it.
    pub existing: u64,
    /// Submissions dropped because their id is recorded as deleted.
    pub deleted: u64,
    /// Ids whose stored payload differed from the submission that replaced it: an
    /// `Idempotency-Key` reused with a different body.
    pub differing: Vec<Uuid>,
}

/// Stores each submission as its id's row, replacing an existing row (the last submission of an
/// id wins, as under compaction), except for ids recorded in `trace_deletions`. `firsts`, when
/// given, holds per submission the earlier submission of its id in the same batch, if any: the
/// stored row is compared with that one, so that a change is reported once.
pub async fn upsert(
    conn: &mut PgConnection,
    submissions: &[&TraceSubmitted],
    firsts: &[Option<&TraceSubmitted>],
) -> Result<Upserted, sqlx::Error> {
    let n = submissions.len();
    let mut ids = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut compare: Vec<Option<String>> = Vec::with_capacity(n);
    for (i, s) in submissions.iter().enumerate() {
        ids.push(s.id);
        created.push(s.created_at);
        versions.push(pg_text::encode(s.trace.trace_version()).into_owned());
        payloads.push(s.trace.to_json());
        compare.push(firsts.get(i).copied().flatten().map(|f| f.trace.to_json()));
    }
    // One statement: `old` sees the table before the upsert (CTEs share one snapshot).
    let row = sqlx::query!(
        r#"WITH n AS (
             SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])
                  AS t(id, created_at, trace_version, payload, first_payload)
             WHERE NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = t.id)
           ),
           old AS (
             SELECT t.id, t.payload::text <> COALESCE(n.first_payload, n.payload) AS differs
             FROM traces t JOIN n ON t.id = n.id
           ),
           up AS (
             INSERT INTO traces (id, created_at, trace_version, payload)
             SELECT id, created_at, trace_version, payload::json FROM n
             ON CONFLICT (id) DO UPDATE
             SET created_at = excluded.created_at, trace_version = excluded.trace_version,
                 payload = excluded.payload
             WHERE traces.created_at <> excluded.created_at
                OR traces.payload::text <> excluded.payload::text
             RETURNING 1
           )
           SELECT (SELECT count(*) FROM n) AS "kept!",
                  (SELECT count(*) FROM old) AS "existing!",
                  ARRAY(SELECT id FROM old WHERE differs) AS "differing!",
                  (SELECT count(*) FROM up) AS "written!""#,
        &ids,
        &created,
        &versions as &[String],
        &payloads,
        &compare as &[Option<String>]
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Upserted {
        inserted: (row.kept - row.existing) as u64,
        existing: row.existing as u64,
        deleted: n as u64 - row.kept as u64,
        differing: row.differing,
    })
}

/// Records `ids` in `trace_deletions` (they stay deleted; exports count a dataset's deleted
/// members from it) and deletes their rows; returns how many rows existed.
pub async fn delete(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    tunix_pipeline::erasure::record_deletions(conn, ids).await?;
    let result = sqlx::query!("DELETE FROM traces WHERE id = ANY($1)", ids)
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
    let row = sqlx::query!(
        r#"SELECT created_at, trace_version, payload::text AS "payload!" FROM traces WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| {
        let version = pg_text::decode(&r.trace_version).into_owned();
        (r.created_at, version, r.payload)
    }))
}
