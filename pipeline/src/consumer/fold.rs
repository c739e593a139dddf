//! Folding a batch of events into set-based changes, per trace id in log order.
//!
//! Shared by every read model keyed by trace id. The rules agree with Kafka's compaction (the
//! last record of a key wins), so the table built from a compacted topic equals the one built
//! from the full log:
//!
//! - per id, the **last** submission wins: a retry with the same `Idempotency-Key` but another
//!   body (or another `created_at`) replaces the earlier one, as compaction would;
//! - a deletion removes the trace, and **a deleted trace stays deleted**: the sinks record the
//!   deletion (`trace_deletions`) before inserting, and never insert an id recorded there, so a
//!   submission that lands after the deletion (a delayed retry racing the `DELETE`) is dropped.
//!   The projector then appends a tombstone for it, so compaction drops it too.
//!
//! Replaying the topic from any offset therefore yields the same final state.

use std::collections::HashMap;

use tunix_schemas::{TraceEvent, TraceSubmitted};
use uuid::Uuid;

use super::Record;

/// What a batch does to the table, folded per id in log order.
#[derive(Debug, Default, PartialEq)]
pub struct Plan<'a> {
    /// Ids to delete (and record as deleted) first: every id with a deletion in the batch.
    pub delete: Vec<Uuid>,
    /// Submissions to upsert afterwards: per id, its last submission in the batch. Those of
    /// deleted ids are dropped by the statement (see the module docs).
    pub insert: Vec<&'a TraceSubmitted>,
    /// Aligned with `insert`: the id's first submission in the batch when that is an earlier
    /// one (the one to compare with the stored row, to count conflicts once per change).
    pub first: Vec<Option<&'a TraceSubmitted>>,
    /// Submissions superseded within the batch by a later submission or deletion of their id.
    pub in_batch_duplicates: u64,
    /// The submissions whose trace differs from the one of their id just before them in the
    /// batch: the same Idempotency-Key reused with a different body.
    pub in_batch_conflicts: Vec<&'a TraceSubmitted>,
}

/// Folds a batch (in offset order per partition; one id always maps to one partition) into one
/// delete set and one upsert set.
pub fn fold(records: &[Record]) -> Plan<'_> {
    // Per id: index into `slots` of its pending submission, if any.
    let mut pending: HashMap<Uuid, usize> = HashMap::new();
    let mut plan = Plan::default();
    // (the pending submission, the first one of its id in the batch if earlier)
    #[allow(clippy::type_complexity)]
    let mut slots: Vec<Option<(&TraceSubmitted, Option<&TraceSubmitted>)>> = Vec::new();
    for record in records {
        match &record.event {
            TraceEvent::Submitted(s) => {
                let mut first = None;
                if let Some(&kept) = pending.get(&s.id) {
                    let (earlier, earliest) = slots[kept].take().expect("pending slot is filled");
                    plan.in_batch_duplicates += 1;
                    if earlier.trace != s.trace {
                        plan.in_batch_conflicts.push(s);
                    }
                    first = Some(earliest.unwrap_or(earlier));
                }
                pending.insert(s.id, slots.len());
                slots.push(Some((s, first)));
            }
            TraceEvent::Deleted(d) => {
                if let Some(slot) = pending.remove(&d.id) {
                    slots[slot] = None;
                }
                if !plan.delete.contains(&d.id) {
                    plan.delete.push(d.id);
                }
            }
            // Scores, datasets and audit records are other read models' concern.
            TraceEvent::ScoreRecorded(_)
            | TraceEvent::ScoreRetracted(_)
            | TraceEvent::DatasetMembers(_)
            | TraceEvent::DatasetCreated(_)
            | TraceEvent::DatasetDeleted(_)
            | TraceEvent::ErasureRequested(_) => {}
        }
    }
    (plan.insert, plan.first) = slots.into_iter().flatten().unzip();
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
    fn the_last_record_per_id_decides() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let records = vec![
            rec(sub(a, "a1"), 0),
            rec(sub(b, "b1"), 1),
            rec(del(a), 2), // a: submitted then deleted -> gone
            rec(del(c), 3), // c: deleted, then a late submission the statement drops
            rec(sub(c, "c2"), 4),
            rec(sub(b, "b2"), 5), // b: the second submission replaces the first
        ];
        let plan = fold(&records);
        assert_eq!(plan.delete, vec![a, c]);
        assert_eq!(prompts(&plan), vec!["c2", "b2"]);
        assert_eq!(plan.in_batch_duplicates, 1);
        assert_eq!(plan.in_batch_conflicts.len(), 1, "b2 differs from b1");
        assert_eq!(plan.in_batch_conflicts[0].trace.prompt(), "b2");
        let firsts: Vec<Option<&str>> = plan
            .first
            .iter()
            .map(|f| f.map(|s| s.trace.prompt()))
            .collect();
        assert_eq!(
            firsts,
            vec![None, Some("b1")],
            "b2 is compared with the row as b1 found it"
        );
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
    fn a_deletion_supersedes_earlier_submissions_of_its_id() {
        let a = Uuid::new_v4();
        let records = vec![rec(sub(a, "x"), 0), rec(sub(a, "y"), 1), rec(del(a), 2)];
        let plan = fold(&records);
        assert_eq!(plan.delete, vec![a]);
        assert!(plan.insert.is_empty());
        assert_eq!(plan.in_batch_duplicates, 1);
    }
}
