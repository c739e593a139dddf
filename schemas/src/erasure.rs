//! Erasure on a compacted topic: Kafka tombstones (null-value records) and what they mean.
//!
//! The topic may run with `cleanup.policy=compact`: the broker then keeps only the last record of
//! each key, and removes a null-value record of a key after `delete.retention.ms`. Our keys are
//! chosen so that this erases exactly what was deleted:
//!
//! | key | records | a tombstone means |
//! |---|---|---|
//! | `<trace id>` | `TraceSubmitted`, `TraceDeleted` | the trace is deleted |
//! | `<trace id>/score/<name>` | `ScoreRecorded`, `ScoreRetracted` | the score is retracted |
//! | `dataset/<name>/<version>[/members/<n>]` | dataset events | nothing to apply |
//! | `erasure/<id>` | `ErasureRequested` (audit) | nothing to apply |
//!
//! A deletion appends `TraceDeleted` and then a tombstone for the trace's key; the projector
//! appends tombstones for every score key of the trace. After compaction nothing of the trace
//! remains but those tombstones, and after `delete.retention.ms` not even they do.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::events::{partition_for, score_key, ScoreRetracted, TraceDeleted, TraceEvent};

/// A null-value record to append: `key`, in the partition of `trace_id`'s events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tombstone {
    /// The record key to erase.
    pub key: String,
    /// The trace the key belongs to (it decides the partition).
    pub trace_id: Uuid,
}

impl Tombstone {
    /// The tombstone of a trace's own key (its submission and deletion).
    pub fn trace(id: Uuid) -> Tombstone {
        Tombstone {
            key: id.to_string(),
            trace_id: id,
        }
    }

    /// The tombstone of one score key of a trace.
    pub fn score(trace_id: Uuid, name: &str) -> Tombstone {
        Tombstone {
            key: score_key(&trace_id, name),
            trace_id,
        }
    }

    /// The partition among `partitions` (that of the trace's events).
    pub fn partition(&self, partitions: i32) -> i32 {
        partition_for(&self.trace_id, partitions)
    }
}

/// What a null-value record of the topic means.
#[derive(Debug, Clone, PartialEq)]
pub enum TombstoneMeaning {
    /// A deletion or a retraction, as the event that has the same effect (no reason, the record's
    /// timestamp as its time).
    Event(TraceEvent),
    /// A tombstone of a key with nothing to apply (datasets, audit records).
    Nothing,
    /// No key, or a key none of our events use.
    Unknown,
}

/// Interprets a tombstone with `key`, appended at `at`.
pub fn interpret_tombstone(key: Option<&[u8]>, at: DateTime<Utc>) -> TombstoneMeaning {
    let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
        return TombstoneMeaning::Unknown;
    };
    if key.starts_with("dataset/") || key.starts_with("erasure/") {
        return TombstoneMeaning::Nothing;
    }
    let (id, rest) = key.split_at(key.len().min(36));
    let Ok(id) = Uuid::try_parse(id) else {
        return TombstoneMeaning::Unknown;
    };
    if rest.is_empty() {
        return TombstoneMeaning::Event(TraceEvent::Deleted(TraceDeleted {
            id,
            deleted_at: at,
            reason: None,
        }));
    }
    match rest.strip_prefix("/score/") {
        Some(name) if !name.is_empty() => {
            TombstoneMeaning::Event(TraceEvent::ScoreRetracted(ScoreRetracted {
                trace_id: id,
                name: name.to_owned(),
                retracted_at: at,
            }))
        }
        _ => TombstoneMeaning::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_the_events_they_erase() {
        let id = Uuid::new_v4();
        let at = Utc::now();
        let t = Tombstone::trace(id);
        match interpret_tombstone(Some(t.key.as_bytes()), at) {
            TombstoneMeaning::Event(TraceEvent::Deleted(d)) => assert_eq!(d.id, id),
            other => panic!("{other:?}"),
        }
        let s = Tombstone::score(id, "correct/ness");
        match interpret_tombstone(Some(s.key.as_bytes()), at) {
            TombstoneMeaning::Event(TraceEvent::ScoreRetracted(r)) => {
                assert_eq!((r.trace_id, r.name.as_str()), (id, "correct/ness"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.partition(6), s.partition(6), "one partition per trace");
        for nothing in ["dataset/a/1", "dataset/a/1/members/0", "erasure/x"] {
            assert_eq!(
                interpret_tombstone(Some(nothing.as_bytes()), at),
                TombstoneMeaning::Nothing
            );
        }
        for unknown in [&b"nope"[..], b"", &[0xff, 0xfe][..]] {
            assert_eq!(
                interpret_tombstone(Some(unknown), at),
                TombstoneMeaning::Unknown
            );
        }
        assert_eq!(interpret_tombstone(None, at), TombstoneMeaning::Unknown);
        let score_no_name = format!("{id}/score/");
        assert_eq!(
            interpret_tombstone(Some(score_no_name.as_bytes()), at),
            TombstoneMeaning::Unknown
        );
    }
}
