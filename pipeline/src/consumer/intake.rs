//! **Owns: every polled record is either batched or recognised as stale; offset gaps; decoding.**
//!
//! A polled message is admitted into the batch only if its partition is ours and its offset is the
//! one we expect next. Earlier offsets are stale deliveries (a fetch issued before a seek) and are
//! dropped. A later offset is a *gap*: records the log no longer holds, removed by compaction
//! (`KAFKA_TOPIC_CLEANUP_POLICY=compact`, the erasure design) or by retention. Kafka never skips a
//! record it holds, so the gap is accepted, counted (`<svc>_gaps_total{outcome="accepted"}`) and
//! logged. (Until December 2026 a gap was re-fetched from further back, for a broker that did skip
//! records, Tansu 0.6's memory engine; no supported broker needs that.)
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

/// The decision about one polled offset (pure; see [`admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The partition is not ours (any more).
    NotOwned,
    /// Before our next expected offset: a stale delivery.
    Stale,
    /// The expected offset, or any offset when consuming from the beginning.
    Admit,
    /// Past the expected offset: the records between are absent from the log; admit the record.
    AcceptGap {
        /// The offset we expected instead.
        expected: i64,
    },
}

/// Decides what to do with `offset`, given the partition's next expected position (`None` when
/// the partition is not ours).
pub(super) fn admit(next_fetch: Option<Position>, offset: i64) -> Admission {
    let expected = match next_fetch {
        None => return Admission::NotOwned,
        Some(Position::Beginning) => return Admission::Admit,
        Some(Position::Next(next)) => next,
    };
    match offset.cmp(&expected) {
        std::cmp::Ordering::Less => Admission::Stale,
        std::cmp::Ordering::Equal => Admission::Admit,
        std::cmp::Ordering::Greater => Admission::AcceptGap { expected },
    }
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

    /// Takes one polled message: drops it, or decodes it into the batch.
    pub(super) fn intake(&self, message: OwnedMessage) {
        let mut ledger = self.ledger();
        let (p, offset) = (message.partition(), message.offset());
        match admit(ledger.next_fetch.get(&p).copied(), offset) {
            Admission::NotOwned | Admission::Stale => return,
            Admission::AcceptGap { expected } => {
                self.deps.metrics.gap("accepted");
                tracing::warn!(
                    partition = p,
                    expected,
                    got = offset,
                    "records absent from the log (compaction or retention); accepting the gap"
                );
            }
            Admission::Admit => {}
        }
        ledger.next_fetch.insert(p, Position::Next(offset + 1));
        self.deps.metrics.consumed.increment(1);
        let now = Instant::now();
        match decode(message, &self.schemas) {
            Decoded::Record(record) => ledger.batch.push(record, now),
            Decoded::Poison(poison) => ledger.batch.push_poison(poison, now),
            Decoded::Skip(m) => ledger.batch.push_skipped(m.partition(), m.offset(), now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::batch::tests::message;

    #[test]
    fn ownership_staleness_gaps_and_the_expected_offset() {
        assert_eq!(admit(None, 5), Admission::NotOwned);
        assert_eq!(admit(Some(Position::Beginning), 5), Admission::Admit);
        assert_eq!(admit(Some(Position::Next(5)), 5), Admission::Admit);
        assert_eq!(admit(Some(Position::Next(5)), 4), Admission::Stale);
        assert_eq!(admit(Some(Position::Next(5)), 0), Admission::Stale);
        assert_eq!(
            admit(Some(Position::Next(1000)), 1010),
            Admission::AcceptGap { expected: 1000 }
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
