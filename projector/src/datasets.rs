//! Datasets: folds the dataset events into `datasets` and `dataset_members`.
//!
//! These tables are not versioned with the list view (see the datasets migration): the list
//! view's sink and a rebuild's both apply the same events to them, idempotently, so a rebuild
//! changes no dataset. Events are applied one by one in log order (a dataset's events share a
//! partition): member chunks, then the `DatasetCreated` that marks the build ready, then perhaps
//! a `DatasetDeleted` that removes the members and keeps the row, so the name is never reused.

use serde_json::{Map, Value};
use sqlx::PgConnection;
use tunix_pipeline::consumer::Record;
use tunix_schemas::{DatasetCreated, DatasetDeleted, DatasetMembers, TraceEvent};
use uuid::Uuid;

/// A member's frozen scores as the json object exports carry: `{name: {value, source,
/// recorded_at}}`.
pub fn scores_json(scores: &[tunix_schemas::FrozenScore]) -> String {
    let mut out = Map::new();
    for s in scores {
        let mut v = Map::new();
        v.insert("value".into(), Value::from(s.value));
        v.insert(
            "source".into(),
            s.source.clone().map(Value::String).unwrap_or(Value::Null),
        );
        v.insert(
            "recorded_at".into(),
            Value::String(
                s.recorded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
        );
        out.insert(s.name.clone(), Value::Object(v));
    }
    Value::Object(out).to_string()
}

/// Applies the dataset events among `records`; returns how many there were.
pub async fn apply(conn: &mut PgConnection, records: &[Record]) -> Result<u64, sqlx::Error> {
    let mut applied = 0;
    for record in records {
        match &record.event {
            TraceEvent::DatasetMembers(m) => members(conn, m).await?,
            TraceEvent::DatasetCreated(c) => created(conn, c).await?,
            TraceEvent::DatasetDeleted(d) => deleted(conn, d).await?,
            _ => continue,
        }
        applied += 1;
    }
    Ok(applied)
}

/// Stores a chunk of members. A member already deleted keeps its id (exports count it as
/// omitted) but not its frozen scores; `view::apply_to` clears them for later deletions.
async fn members(conn: &mut PgConnection, m: &DatasetMembers) -> Result<(), sqlx::Error> {
    let n = m.members.len();
    let positions: Vec<i64> = (0..n as i64).map(|i| m.first_position + i).collect();
    let ids: Vec<Uuid> = m.members.iter().map(|x| x.trace_id).collect();
    let evals: Vec<bool> = m.members.iter().map(|x| x.eval).collect();
    let scores: Vec<String> = m.members.iter().map(|x| scores_json(&x.scores)).collect();
    sqlx::query!(
        "INSERT INTO dataset_members (build_id, position, trace_id, eval, scores)
         SELECT $1, u.position, u.trace_id, u.eval,
                CASE WHEN EXISTS (SELECT 1 FROM trace_deletions t WHERE t.id = u.trace_id)
                     THEN '{}'::json ELSE u.scores::json END
         FROM unnest($2::bigint[], $3::uuid[], $4::bool[], $5::text[]) AS u(position, trace_id, eval, scores)
         WHERE NOT EXISTS (SELECT 1 FROM datasets d WHERE d.build_id = $1 AND d.state = 'deleted')
         ON CONFLICT (build_id, position) DO NOTHING",
        m.build_id,
        &positions,
        &ids,
        &evals,
        &scores
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn created(conn: &mut PgConnection, c: &DatasetCreated) -> Result<(), sqlx::Error> {
    // The claim ingest-api made for this build becomes ready; replayed into an empty database,
    // the row is created from the event alone.
    let updated = sqlx::query!(
        "UPDATE datasets SET state = 'ready', definition = $4, member_count = $5, eval_count = $6,
                digest = $7, created_at = $8
         WHERE name = $1 AND version = $2 AND build_id = $3 AND state = 'building'",
        c.name,
        c.version,
        c.build_id,
        c.definition,
        c.member_count,
        c.eval_count,
        c.digest,
        c.created_at
    )
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query!(
            "INSERT INTO datasets (name, version, key, build_id, definition, state, member_count,
                                   eval_count, digest, created_at)
             VALUES ($1, $2, $3, $4, $5, 'ready', $6, $7, $8, $9)
             ON CONFLICT DO NOTHING",
            c.name,
            c.version,
            tunix_schemas::dataset::dataset_key_text(&c.name, &c.version),
            c.build_id,
            c.definition,
            c.member_count,
            c.eval_count,
            c.digest,
            c.created_at
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn deleted(conn: &mut PgConnection, d: &DatasetDeleted) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO datasets (name, version, key, build_id, definition, state, deleted_at)
         VALUES ($1, $2, $3, $4, '', 'deleted', $5)
         ON CONFLICT (name, version) DO UPDATE SET state = 'deleted', deleted_at = excluded.deleted_at",
        d.name,
        d.version,
        tunix_schemas::dataset::dataset_key_text(&d.name, &d.version),
        d.build_id,
        d.deleted_at
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "DELETE FROM dataset_members WHERE build_id = $1",
        d.build_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Datasets keep their deleted members' ids (exports count them as omitted), not the scores
/// frozen with them: called when traces are deleted.
pub async fn forget_scores_of(conn: &mut PgConnection, traces: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dataset_members SET scores = '{}'::json
         WHERE trace_id = ANY($1) AND scores::text <> '{}'",
        traces
    )
    .execute(conn)
    .await?;
    Ok(())
}
