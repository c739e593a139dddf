//! **Owns: every polled record is either batched, recognised as stale, or re-fetched; decoding.**
//!
//! A polled message is admitted into the batch only if its partition is ours and its offset is the
//! one we expect next. Earlier offsets are stale deliveries (a fetch issued before a seek) and are
//! dropped. Later offsets are a *gap*, and what a gap means depends on the topic ([`OffsetGaps`]):
//!
//! - **Broker workaround (today's topics).** Our topic's offsets are contiguous (no compaction, no
//!   transaction markers), so a gap means the broker skipped records: Tansu 0.6's memory engine
//!   answers a fetch inside a record batch with the *next* batch. The partition is re-fetched from
//!   further and further back until the expected offset arrives; only a gap that persists from
//!   offset 0 is real (records removed from the log) and is accepted.
//! - **Compacted topics** have legitimate gaps (compaction removes records). With
//!   [`OffsetGaps::Legitimate`] a gap is accepted at once. Which applies is a setting of the
//!   consumer, so a compacted topic can be told apart from a broker that skips.
//!
//! Admitted records are decoded into events. A null value is a Kafka tombstone
//! ([`interpret_tombstone`]): the tombstone of a trace key is that trace's deletion, of a score
//! key that score's retraction; tombstones of dataset and audit keys only move the position. What
//! cannot be decoded (a tombstone without such a key included) becomes [`Poison`] for the
//! dead-letter topic, with the decoder's reason label. A Confluent-framed record whose schema id
//! is not known yet is resolved first ([`Member::resolve_schema`]): an unreachable registry
//! pauses the member (readiness `schema_registry` fails) until it answers; only an id nobody
//! knows is poison (`unknown_schema`).

use std::time::{Duration, Instant};

use rdkafka::message::Headers;
use rdkafka::message::{Message, OwnedMessage};
use tunix_schemas::{
    interpret_tombstone, schema_from_fingerprint_header, DecodeError, ShippedSchema,
    TombstoneMeaning, TraceEvent, FINGERPRINT_HEADER,
};

use crate::registry::SchemaResolver;

use super::batch::Poison;
use super::member::Member;
use super::position::Position;
use super::{Record, Sink};

/// What an offset gap on the topic means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetGaps {
    /// Offsets are contiguous, so a gap means the broker skipped records: re-fetch them.
    #[default]
    BrokerSkipped,
    /// Offsets may be absent for good (a compacted topic): accept gaps.
    Legitimate,
}

/// The decision about one polled offset (pure; see [`admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The partition is not ours (any more).
    NotOwned,
    /// Before our next expected offset: a stale delivery.
    Stale,
    /// The expected offset, or any offset when consuming from the beginning.
    Admit,
    /// A gap accepted as real (records absent from the log); admit the record.
    AcceptGap {
        /// The offset we expected instead.
        expected: i64,
    },
    /// A gap the broker made: seek back to `from` (rewinding `rewind` records) and read again.
    Refetch {
        /// The offset we expected instead.
        expected: i64,
        /// Where to seek.
        from: i64,
        /// How far back from `expected`; grows 4x per attempt.
        rewind: i64,
    },
}

/// First rewind after a gap, in records.
const FIRST_REWIND: i64 = 64;

/// Decides what to do with `offset`, given the partition's next expected position (`None` when
/// the partition is not ours), the rewind already tried for a gap on it, and the gap policy.
pub(super) fn admit(
    next_fetch: Option<Position>,
    offset: i64,
    previous_rewind: Option<i64>,
    gaps: OffsetGaps,
) -> Admission {
    let expected = match next_fetch {
        None => return Admission::NotOwned,
        Some(Position::Beginning) => return Admission::Admit,
        Some(Position::Next(next)) => next,
    };
    if offset < expected {
        return Admission::Stale;
    }
    if offset == expected {
        return Admission::Admit;
    }
    if gaps == OffsetGaps::Legitimate || previous_rewind.is_some_and(|k| k >= expected) {
        return Admission::AcceptGap { expected };
    }
    let rewind = previous_rewind.map_or(FIRST_REWIND, |k| k * 4);
    Admission::Refetch {
        expected,
        from: (expected - rewind).max(0),
        rewind,
    }
}

/// What became of a polled message.
pub(super) enum Intake {
    /// Added to the batch (as a record or as poison).
    Batched,
    /// Stale, or for a partition we no longer own.
    Dropped,
    /// Records are missing before it: re-fetch the partition from `from`.
    Refetch { partition: i32, from: i64 },
}

/// A message after decoding.
enum Decoded {
    /// An event to apply.
    Record(Record),
    /// Not an event: for the dead-letter topic.
    Poison(Poison),
    /// A tombstone with nothing to apply: only the position moves.
    Skip(OwnedMessage),
}

/// Decodes a message's value into a record, or into poison with the reason. External schema ids
/// come from `schemas`' cache (see [`Member::resolve_schema`]).
fn decode(message: OwnedMessage, schemas: &SchemaResolver) -> Decoded {
    let named = named_schema(&message);
    let decoded = match message.payload() {
        None => {
            let at = message
                .timestamp()
                .to_millis()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .unwrap_or_else(chrono::Utc::now);
            match interpret_tombstone(message.key(), at) {
                TombstoneMeaning::Event(event) => Ok(event),
                TombstoneMeaning::Nothing => return Decoded::Skip(message),
                TombstoneMeaning::Unknown => Err((
                    "empty",
                    "record has no value and its key is not one our tombstones use".to_owned(),
                )),
            }
        }
        Some(bytes) => TraceEvent::decode_with(bytes, |id| named.or_else(|| schemas.cached(id)))
            .map_err(|e| (DecodeError::reason(&e), e.to_string())),
    };
    match decoded {
        Ok(event) => Decoded::Record(Record { event, message }),
        Err((reason, error)) => Decoded::Poison(Poison {
            message,
            reason,
            error,
        }),
    }
}

/// The schema a record names in its [`FINGERPRINT_HEADER`], if it carries one we ship.
fn named_schema(message: &OwnedMessage) -> Option<ShippedSchema> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == FINGERPRINT_HEADER)
        .and_then(|h| h.value)
        .and_then(schema_from_fingerprint_header)
}

/// Longest pause between attempts to resolve a schema id while the registry is unavailable.
const MAX_RESOLVE_BACKOFF: Duration = Duration::from_secs(5);

impl<S: Sink> Member<S> {
    /// Makes sure the schema id of `message`'s frame, if it has one we have not resolved, is
    /// resolved or known to be unknown. Retries (pausing this member) while the registry or
    /// Postgres is unavailable, until shutdown.
    pub(super) fn resolve_schema(&self, message: &OwnedMessage) {
        let named = named_schema(message);
        let Some(id) = message
            .payload()
            .and_then(|v| self.schemas.unresolved(v, named))
        else {
            return;
        };
        let mut backoff = Duration::from_millis(100);
        while !self.cancelled() {
            match self.rt.block_on(self.schemas.resolve(id)) {
                Ok(found) => {
                    if self.deps.readiness.check("schema_registry").is_some() {
                        self.deps.readiness.set("schema_registry", true, "ok");
                    }
                    if found.is_none() {
                        tracing::warn!(schema_id = id, "schema id unknown to every registry");
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(schema_id = id, error = %e, "cannot resolve a schema id yet; retrying");
                    self.deps
                        .readiness
                        .set("schema_registry", false, e.to_string());
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_RESOLVE_BACKOFF);
                }
            }
        }
    }

    /// Takes one polled message: drops it, asks for a re-fetch, or decodes it into the batch.
    pub(super) fn intake(&self, message: OwnedMessage) -> Intake {
        let mut ledger = self.ledger();
        let (p, offset) = (message.partition(), message.offset());
        let gaps = self.deps.settings.offset_gaps;
        match admit(
            ledger.next_fetch.get(&p).copied(),
            offset,
            ledger.rewinds.get(&p).copied(),
            gaps,
        ) {
            Admission::NotOwned | Admission::Stale => return Intake::Dropped,
            Admission::Refetch {
                expected,
                from,
                rewind,
            } => {
                ledger.rewinds.insert(p, rewind);
                self.deps.metrics.gap("refetched");
                tracing::warn!(
                    partition = p,
                    expected,
                    got = offset,
                    rewind,
                    "broker skipped records; re-fetching"
                );
                return Intake::Refetch { partition: p, from };
            }
            Admission::AcceptGap { expected } => {
                self.deps.metrics.gap("accepted");
                tracing::warn!(
                    partition = p,
                    expected,
                    got = offset,
                    "records absent from the log; accepting the gap"
                );
            }
            Admission::Admit => {}
        }
        ledger.rewinds.remove(&p);
        ledger.next_fetch.insert(p, Position::Next(offset + 1));
        self.deps.metrics.consumed.increment(1);
        let now = Instant::now();
        match decode(message, &self.schemas) {
            Decoded::Record(record) => ledger.batch.push(record, now),
            Decoded::Poison(poison) => ledger.batch.push_poison(poison, now),
            Decoded::Skip(m) => ledger.batch.push_skipped(m.partition(), m.offset(), now),
        }
        Intake::Batched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::batch::tests::message;

    const SKIPS: OffsetGaps = OffsetGaps::BrokerSkipped;

    #[test]
    fn ownership_staleness_and_the_expected_offset() {
        assert_eq!(admit(None, 5, None, SKIPS), Admission::NotOwned);
        assert_eq!(
            admit(Some(Position::Beginning), 5, None, SKIPS),
            Admission::Admit
        );
        assert_eq!(
            admit(Some(Position::Next(5)), 5, None, SKIPS),
            Admission::Admit
        );
        assert_eq!(
            admit(Some(Position::Next(5)), 4, None, SKIPS),
            Admission::Stale
        );
        assert_eq!(
            admit(Some(Position::Next(5)), 0, Some(64), SKIPS),
            Admission::Stale
        );
    }

    #[test]
    fn a_skipping_broker_is_re_read_from_further_back_until_the_gap_is_proven() {
        let next = Some(Position::Next(1000));
        assert_eq!(
            admit(next, 1010, None, SKIPS),
            Admission::Refetch {
                expected: 1000,
                from: 936,
                rewind: 64
            }
        );
        assert_eq!(
            admit(next, 1010, Some(64), SKIPS),
            Admission::Refetch {
                expected: 1000,
                from: 744,
                rewind: 256
            }
        );
        assert_eq!(
            admit(next, 1010, Some(256), SKIPS),
            Admission::Refetch {
                expected: 1000,
                from: 0,
                rewind: 1024
            }
        );
        // Re-read from offset 0 and still missing: the records are gone; accept.
        assert_eq!(
            admit(next, 1010, Some(1024), SKIPS),
            Admission::AcceptGap { expected: 1000 }
        );
        // Small expected offsets rewind to 0 at once.
        assert_eq!(
            admit(Some(Position::Next(10)), 12, None, SKIPS),
            Admission::Refetch {
                expected: 10,
                from: 0,
                rewind: 64
            }
        );
    }

    #[test]
    fn a_compacted_topic_accepts_gaps_at_once() {
        let compacted = OffsetGaps::Legitimate;
        assert_eq!(
            admit(Some(Position::Next(1000)), 1010, None, compacted),
            Admission::AcceptGap { expected: 1000 }
        );
        assert_eq!(
            admit(Some(Position::Next(1000)), 999, None, compacted),
            Admission::Stale
        );
    }

    #[tokio::test]
    async fn undecodable_values_become_poison_with_their_reason() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let schemas = SchemaResolver::new(None, pool);
        let poison = |m| match decode(m, &schemas) {
            Decoded::Poison(p) => p,
            Decoded::Record(_) | Decoded::Skip(_) => panic!("decoded"),
        };
        assert_eq!(poison(message(0, 1, None)).reason, "empty");
        let garbage = poison(message(0, 2, Some(b"{\"json\":1}".to_vec())));
        assert_eq!(garbage.reason, "bad_magic");
        assert_eq!(garbage.message.offset(), 2, "the original is kept");
        // A Confluent frame with an id no registry resolved.
        let unknown = poison(message(0, 3, Some(vec![0, 0, 0, 0, 42, 2])));
        assert_eq!(unknown.reason, "unknown_schema");
        assert!(unknown.error.contains("schema id 42"), "{}", unknown.error);
    }

    #[tokio::test]
    async fn tombstones_are_deletions_retractions_or_nothing() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let schemas = SchemaResolver::new(None, pool);
        let id = uuid::Uuid::new_v4();
        let keyed = |key: String| {
            OwnedMessage::new(
                None,
                Some(key.into_bytes()),
                "t".into(),
                rdkafka::Timestamp::CreateTime(1_700_000_000_000),
                0,
                7,
                None,
            )
        };
        match decode(keyed(id.to_string()), &schemas) {
            Decoded::Record(r) => match r.event {
                TraceEvent::Deleted(d) => {
                    assert_eq!(d.id, id);
                    assert_eq!(d.deleted_at.timestamp_millis(), 1_700_000_000_000);
                }
                other => panic!("{other:?}"),
            },
            _ => panic!("a trace key's tombstone is a deletion"),
        }
        match decode(keyed(format!("{id}/score/correct")), &schemas) {
            Decoded::Record(r) => assert!(matches!(r.event, TraceEvent::ScoreRetracted(_))),
            _ => panic!("a score key's tombstone is a retraction"),
        }
        match decode(keyed("dataset/d/1".into()), &schemas) {
            Decoded::Skip(m) => assert_eq!(m.offset(), 7),
            _ => panic!("a dataset key's tombstone has nothing to apply"),
        }
        match decode(keyed("whatever".into()), &schemas) {
            Decoded::Poison(p) => assert_eq!(p.reason, "empty"),
            _ => panic!("an unknown key's tombstone is poison"),
        }
    }
}
