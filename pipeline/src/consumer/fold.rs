//! Folding a batch of events into set-based changes, per trace id in log order.
//!
//! Shared by every read model keyed by trace id: a submission after a tombstone re-creates the
//! trace, a tombstone after a submission removes it, and the first submission of an id wins over
//! later ones (`ON CONFLICT DO NOTHING`). Replaying the topic from any offset therefore yields the
//! same final state.

use std::collections::HashMap;

use tunix_schemas::{TraceEvent, TraceSubmitted};
use uuid::Uuid;

use super::Record;

/// What a batch does to the table, folded per id in log order.
#[derive(Debug, Default, PartialEq)]
pub struct Plan<'a> {
    /// Ids to delete first (every id with a tombstone in the batch).
    pub delete: Vec<Uuid>,
    /// Submissions to insert afterwards: per id, the first submission after its last tombstone.
    pub insert: Vec<&'a TraceSubmitted>,
    /// Submissions that cannot create a row (a second submission of an id in the same batch).
    pub in_batch_duplicates: u64,
    /// Those of the in-batch duplicates whose trace differs from the submission kept for their
    /// id: the same Idempotency-Key reused with a different body.
    pub in_batch_conflicts: Vec<&'a TraceSubmitted>,
}

/// Folds a batch (in offset order per partition; one id always maps to one partition) into one
/// delete set and one insert set.
pub fn fold(records: &[Record]) -> Plan<'_> {
    // Per id: index into `insert` of its pending submission, if any.
    let mut pending: HashMap<Uuid, Option<usize>> = HashMap::new();
    let mut plan = Plan::default();
    let mut slots: Vec<Option<&TraceSubmitted>> = Vec::new();
    for record in records {
        match &record.event {
            TraceEvent::Submitted(s) => match pending.get(&s.id) {
                Some(Some(kept)) => {
                    plan.in_batch_duplicates += 1;
                    if slots[*kept].is_some_and(|k| k.trace != s.trace) {
                        plan.in_batch_conflicts.push(s);
                    }
                }
                _ => {
                    pending.insert(s.id, Some(slots.len()));
                    slots.push(Some(s));
                }
            },
            TraceEvent::Deleted(d) => {
                if let Some(Some(slot)) = pending.insert(d.id, None) {
                    slots[slot] = None;
                }
                if !plan.delete.contains(&d.id) {
                    plan.delete.push(d.id);
                }
            }
            // Scores and datasets are other read models' concern (the projector's).
            TraceEvent::ScoreRecorded(_)
            | TraceEvent::ScoreRetracted(_)
            | TraceEvent::DatasetMembers(_)
            | TraceEvent::DatasetCreated(_)
            | TraceEvent::DatasetDeleted(_) => {}
        }
    }
    plan.insert = slots.into_iter().flatten().collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::OwnedMessage;
    use rdkafka::Timestamp;
    use tunix_schemas::TraceDeleted;

    fn rec(event: TraceEvent, offset: i64) -> Record {
        Record {
            event,
            message: OwnedMessage::new(
                None,
                None,
                "t".into(),
                Timestamp::NotAvailable,
                0,
                offset,
                None,
            ),
        }
    }

    fn sub(id: Uuid, prompt: &str) -> TraceEvent {
        let trace = tunix_schemas::Trace::parse_json(
            format!(r#"{{"trace_version":"1","prompt":"{prompt}","final_answer":"a","steps":[{{"i":0,"type":"t","content":"c"}}]}}"#).as_bytes(),
        )
        .unwrap();
        TraceEvent::Submitted(TraceSubmitted {
            id,
            created_at: chrono::Utc::now(),
            trace,
            idempotency_key: None,
        })
    }

    fn del(id: Uuid) -> TraceEvent {
        TraceEvent::Deleted(TraceDeleted {
            id,
            deleted_at: chrono::Utc::now(),
            reason: None,
        })
    }

    fn prompts(plan: &Plan<'_>) -> Vec<String> {
        plan.insert
            .iter()
            .map(|s| s.trace.prompt().to_owned())
            .collect()
    }

    #[test]
    fn log_order_decides_per_id() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let records = vec![
            rec(sub(a, "a1"), 0),
            rec(sub(b, "b1"), 1),
            rec(del(a), 2), // a: submitted then deleted -> gone
            rec(del(c), 3), // c: deleted then re-submitted -> present as c2
            rec(sub(c, "c2"), 4),
            rec(sub(b, "b2"), 5), // b: second submission loses to the first
        ];
        let plan = fold(&records);
        assert_eq!(plan.delete, vec![a, c]);
        assert_eq!(prompts(&plan), vec!["b1", "c2"]);
        assert_eq!(plan.in_batch_duplicates, 1);
        assert_eq!(plan.in_batch_conflicts.len(), 1, "b2 differs from b1");
    }

    #[test]
    fn an_identical_redelivery_is_a_duplicate_not_a_conflict() {
        let a = Uuid::new_v4();
        let first = sub(a, "same");
        let records = vec![rec(first.clone(), 0), rec(first, 1)];
        let plan = fold(&records);
        assert_eq!(plan.in_batch_duplicates, 1);
        assert!(plan.in_batch_conflicts.is_empty());
    }

    #[test]
    fn submission_after_delete_after_submission_wins() {
        let a = Uuid::new_v4();
        let records = vec![rec(sub(a, "x"), 0), rec(del(a), 1), rec(sub(a, "y"), 2)];
        let plan = fold(&records);
        assert_eq!(plan.delete, vec![a]);
        assert_eq!(prompts(&plan), vec!["y"]);
    }
}
