//! Scores in the read model: `trace_scores_vN`, the latest score per (trace, name).
//!
//! A batch is folded per trace in log order (all of a trace's events share its partition):
//!
//! - a deletion of the trace removes every score recorded before it;
//! - per (trace, name), the last event after the trace's last deletion decides: a recording
//!   upserts the row, a retraction removes it;
//! - a score of a trace recorded as deleted (`trace_deletions`) is *ignored* and counted
//!   (`tunix_projector_scores_ignored_total`); the live sink also queues its key's tombstone.
//!   Scores of a trace not (yet) in the list view are kept: on a compacted topic a score can
//!   precede its trace's surviving submission (a retried submission replaced the first), and
//!   the read paths only show scores of listed traces.
//!
//! Replaying the topic from any offset therefore yields the same table.

use std::collections::HashMap;

use sqlx::PgConnection;
use tunix_pipeline::consumer::Record;
use tunix_schemas::{pg_text, ScoreRecorded, Tombstone, TraceEvent};
use uuid::Uuid;

/// What a batch does to the scores table.
#[derive(Debug, Default, PartialEq)]
pub struct ScorePlan<'a> {
    /// Scores to upsert: the last recording per (trace, name) after the trace's last deletion.
    pub upsert: Vec<&'a ScoreRecorded>,
    /// (trace, name) pairs whose last event is a retraction.
    pub retract: Vec<(Uuid, &'a str)>,
}

/// Folds a batch's score events (see the module docs).
pub fn fold_scores(records: &[Record]) -> ScorePlan<'_> {
    let mut last_delete: HashMap<Uuid, usize> = HashMap::new();
    // Per (trace, name): the position of its last event and the recording, if it is one.
    let mut last: HashMap<(Uuid, &str), (usize, Option<&ScoreRecorded>)> = HashMap::new();
    let mut order: Vec<(Uuid, &str)> = Vec::new();
    for (n, record) in records.iter().enumerate() {
        let (key, value) = match &record.event {
            TraceEvent::Deleted(d) => {
                last_delete.insert(d.id, n);
                continue;
            }
            TraceEvent::ScoreRecorded(s) => ((s.trace_id, s.name.as_str()), Some(s)),
            TraceEvent::ScoreRetracted(r) => ((r.trace_id, r.name.as_str()), None),
            _ => continue,
        };
        if last.insert(key, (n, value)).is_none() {
            order.push(key);
        }
    }
    let mut plan = ScorePlan::default();
    for key in order {
        let (n, value) = last[&key];
        if last_delete.get(&key.0).is_some_and(|d| *d > n) {
            continue; // deleted after it: gone with the trace
        }
        match value {
            Some(score) => plan.upsert.push(score),
            None => plan.retract.push(key),
        }
    }
    plan
}

/// Removes every score of `traces` (their trace was deleted).
pub async fn delete_for(
    conn: &mut PgConnection,
    table: &str,
    traces: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("DELETE FROM {table} WHERE trace_id = ANY($1)"))
        .bind(traces)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The tombstones owed for the batch's score records (not tombstones themselves) whose trace is
/// recorded as deleted: a score that raced its trace's deletion, or preceded it in the batch.
pub async fn tombstones_for_deleted(
    conn: &mut PgConnection,
    records: &[Record],
) -> Result<Vec<Tombstone>, sqlx::Error> {
    let scored: Vec<(Uuid, &str)> = records
        .iter()
        .filter(|r| !r.is_tombstone())
        .filter_map(|r| match &r.event {
            TraceEvent::ScoreRecorded(s) => Some((s.trace_id, s.name.as_str())),
            TraceEvent::ScoreRetracted(s) => Some((s.trace_id, s.name.as_str())),
            _ => None,
        })
        .collect();
    if scored.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<Uuid> = scored.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let deleted = tunix_pipeline::erasure::deleted_among(conn, &ids).await?;
    Ok(scored
        .into_iter()
        .filter(|(id, _)| deleted.contains(id))
        .map(|(id, name)| Tombstone::score(id, name))
        .collect())
}

/// Applies a score plan to `table` (`trace_scores_vN`). Returns (scores applied, scores ignored
/// because their trace is deleted).
pub async fn apply(
    conn: &mut PgConnection,
    table: &str,
    plan: &ScorePlan<'_>,
) -> Result<(u64, u64), sqlx::Error> {
    let mut applied = 0;
    if !plan.retract.is_empty() {
        let ids: Vec<Uuid> = plan.retract.iter().map(|(id, _)| *id).collect();
        let names: Vec<String> = plan
            .retract
            .iter()
            .map(|(_, n)| pg_text::encode(n).into_owned())
            .collect();
        let result = sqlx::query(&format!(
            "DELETE FROM {table} s USING unnest($1::uuid[], $2::text[]) AS r(trace_id, name)
             WHERE s.trace_id = r.trace_id AND s.name = r.name"
        ))
        .bind(&ids)
        .bind(&names)
        .execute(&mut *conn)
        .await?;
        applied += result.rows_affected();
    }
    let mut ignored = 0;
    if !plan.upsert.is_empty() {
        let n = plan.upsert.len();
        let (mut ids, mut names, mut values) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut sources, mut comments, mut times) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for s in &plan.upsert {
            ids.push(s.trace_id);
            names.push(pg_text::encode(&s.name).into_owned());
            values.push(s.value);
            sources.push(s.source.as_deref().map(|v| pg_text::encode(v).into_owned()));
            comments.push(
                s.comment
                    .as_deref()
                    .map(|v| pg_text::encode(v).into_owned()),
            );
            times.push(s.recorded_at);
        }
        let result = sqlx::query(&format!(
            "INSERT INTO {table} (trace_id, name, value, source, comment, recorded_at)
             SELECT u.* FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::timestamptz[])
                  AS u(trace_id, name, value, source, comment, recorded_at)
             WHERE NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = u.trace_id)
             ON CONFLICT (trace_id, name) DO UPDATE
             SET value = excluded.value, source = excluded.source, comment = excluded.comment,
                 recorded_at = excluded.recorded_at"
        ))
        .bind(&ids)
        .bind(&names)
        .bind(&values)
        .bind(&sources)
        .bind(&comments)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
        applied += result.rows_affected();
        ignored = n as u64 - result.rows_affected();
    }
    Ok((applied, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::OwnedMessage;
    use rdkafka::Timestamp;
    use tunix_schemas::{ScoreRetracted, TraceDeleted};

    fn rec(event: TraceEvent) -> Record {
        Record {
            event,
            message: OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 0, None),
        }
    }

    fn score(id: Uuid, name: &str, value: f64) -> Record {
        rec(TraceEvent::ScoreRecorded(ScoreRecorded {
            trace_id: id,
            name: name.into(),
            value,
            source: None,
            comment: None,
            recorded_at: chrono::Utc::now(),
        }))
    }

    fn retract(id: Uuid, name: &str) -> Record {
        rec(TraceEvent::ScoreRetracted(ScoreRetracted {
            trace_id: id,
            name: name.into(),
            retracted_at: chrono::Utc::now(),
        }))
    }

    fn delete(id: Uuid) -> Record {
        rec(TraceEvent::Deleted(TraceDeleted {
            id,
            deleted_at: chrono::Utc::now(),
            reason: None,
        }))
    }

    fn upserts(plan: &ScorePlan<'_>) -> Vec<(Uuid, String, f64)> {
        plan.upsert
            .iter()
            .map(|s| (s.trace_id, s.name.clone(), s.value))
            .collect()
    }

    #[test]
    fn the_last_event_per_trace_and_name_wins() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let records = vec![
            score(a, "q", 0.1),
            score(a, "q", 0.9), // replaces 0.1
            score(a, "c", 1.0),
            retract(a, "c"), // c retracted
            score(b, "q", 0.5),
            retract(b, "x"),
        ];
        let plan = fold_scores(&records);
        assert_eq!(
            upserts(&plan),
            vec![(a, "q".into(), 0.9), (b, "q".into(), 0.5)]
        );
        assert_eq!(plan.retract, vec![(a, "c"), (b, "x")]);
    }

    #[test]
    fn a_deletion_takes_earlier_scores_with_it() {
        let a = Uuid::new_v4();
        let records = vec![score(a, "q", 0.1), delete(a), score(a, "c", 1.0)];
        let plan = fold_scores(&records);
        // q was recorded before the delete: gone. c after it: kept (applied only if the trace
        // exists again by then, which the SQL checks).
        assert_eq!(upserts(&plan), vec![(a, "c".into(), 1.0)]);
        assert!(plan.retract.is_empty());
    }
}
