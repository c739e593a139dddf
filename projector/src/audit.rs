//! The audit log: every `ErasureRequested` event as a row of `audit_log`, listed by
//! `GET /api/audit`. Not versioned with the list view (like datasets): a rebuild does not touch
//! it, and re-applying an event changes nothing.

use sqlx::PgConnection;
use tunix_pipeline::consumer::Record;
use tunix_schemas::TraceEvent;

/// Stores the audit events among `records`; returns how many there were.
pub async fn apply(conn: &mut PgConnection, records: &[Record]) -> Result<u64, sqlx::Error> {
    let mut applied = 0;
    for record in records {
        let TraceEvent::ErasureRequested(e) = &record.event else {
            continue;
        };
        // jsonb holds no NUL: a filter with one (ingest-api refuses them; another producer
        // might not) is kept as its escaped text rather than failing the batch.
        let filter: Option<serde_json::Value> = e.filter.as_deref().map(|f| {
            serde_json::from_str(f)
                .ok()
                .filter(|_| !f.contains("\\u0000"))
                .unwrap_or_else(|| serde_json::Value::String(f.to_owned()))
        });
        let action = tunix_schemas::pg_text::encode(&e.action);
        let requested_by = tunix_schemas::pg_text::encode(&e.requested_by);
        sqlx::query!(
            "INSERT INTO audit_log (id, action, requested_by, requested_at, trace_id, filter,
                                    created_before, count, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
            e.id,
            action.as_ref(),
            requested_by.as_ref(),
            e.requested_at,
            e.trace_id,
            filter,
            e.created_before,
            e.count,
            e.reason
                .as_deref()
                .map(|r| tunix_schemas::pg_text::encode(r).into_owned()),
        )
        .execute(&mut *conn)
        .await?;
        applied += 1;
    }
    Ok(applied)
}
