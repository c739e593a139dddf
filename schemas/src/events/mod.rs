//! The events on the `traces` topic and their Avro encoding.
//!
//! Owns [`TraceEvent`]: its Kafka keys, partitions and dispatch to the kinds. Every `.avsc` ever
//! shipped stays a *writer* schema, resolved to the current *reader* schema of its kind, so events
//! of older producers keep decoding (see `schemas/README.md`). The rest lives in:
//!
//! - `catalogue`: the shipped schema files, their fingerprints and built-in registry ids;
//! - `framing`: Confluent (`00` + schema id) and single-object (`C3 01` + fingerprint) frames;
//! - `codec`: the Avro datum machinery and the value helpers the kinds decode with;
//! - one file per kind (or family): its structs, wire struct, encoding, decoding and key helper.
//!
//! A new kind is a new file (implementing `codec::EventCodec`) and `.avsc`, an entry in the
//! catalogue, and a variant here with its arms in `TraceEvent`'s matches.

mod catalogue;
mod codec;
mod datasets;
mod erasure_requested;
mod framing;
mod scores;
mod trace_deleted;
mod trace_submitted;

use apache_avro::types::Value;
use uuid::Uuid;

use codec::EventCodec;

pub use catalogue::{
    current_schema, legacy_schema_fingerprints, schema_fingerprints, EventKind, SchemaFile,
    ShippedSchema, BUILTIN_ID_RANGE, SCHEMA_FILES,
};
pub use codec::{from_micros, to_micros, truncate_to_micros, DecodeError};
pub use datasets::{
    dataset_key, DatasetCreated, DatasetDeleted, DatasetMember, DatasetMembers, FrozenScore,
};
pub use erasure_requested::{erasure_key, ErasureRequested};
pub use framing::{
    confluent_schema_id, schema_from_fingerprint_header, Encoder, Framing, CONFLUENT_HEADER_LEN,
    CONFLUENT_MAGIC, FINGERPRINT_HEADER, HEADER_LEN, SINGLE_OBJECT_MAGIC,
};
pub use scores::{score_key, ScoreRecorded, ScoreRetracted};
pub use trace_deleted::TraceDeleted;
pub use trace_submitted::{partition_for, TraceSubmitted};

/// Any event on the `traces` topic.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceEvent {
    /// See [`TraceSubmitted`].
    Submitted(TraceSubmitted),
    /// See [`TraceDeleted`].
    Deleted(TraceDeleted),
    /// See [`ScoreRecorded`].
    ScoreRecorded(ScoreRecorded),
    /// See [`ScoreRetracted`].
    ScoreRetracted(ScoreRetracted),
    /// See [`DatasetMembers`].
    DatasetMembers(DatasetMembers),
    /// See [`DatasetCreated`].
    DatasetCreated(DatasetCreated),
    /// See [`DatasetDeleted`].
    DatasetDeleted(DatasetDeleted),
    /// See [`ErasureRequested`].
    ErasureRequested(ErasureRequested),
}

/// CRC-32 (IEEE) of `key` modulo `partitions`: librdkafka's default for that key.
pub fn key_partition(key: &str, partitions: i32) -> i32 {
    (crc32fast::hash(key.as_bytes()) % partitions.max(1) as u32) as i32
}

impl TraceEvent {
    /// The trace this event is about; for dataset events, the build id.
    pub fn id(&self) -> Uuid {
        match self {
            TraceEvent::Submitted(e) => e.id,
            TraceEvent::Deleted(e) => e.id,
            TraceEvent::ScoreRecorded(e) => e.trace_id,
            TraceEvent::ScoreRetracted(e) => e.trace_id,
            TraceEvent::DatasetMembers(e) => e.build_id,
            TraceEvent::DatasetCreated(e) => e.build_id,
            TraceEvent::DatasetDeleted(e) => e.build_id,
            TraceEvent::ErasureRequested(e) => e.id,
        }
    }

    /// The partition among `partitions`: the trace's ([`partition_for`]) for trace and score
    /// events; for dataset events, that of the dataset's key ([`dataset_key`]), shared by all of
    /// them so its chunks precede the event that seals them.
    pub fn partition(&self, partitions: i32) -> i32 {
        match self {
            TraceEvent::DatasetMembers(e) => {
                key_partition(&dataset_key(&e.name, &e.version), partitions)
            }
            TraceEvent::DatasetCreated(e) => {
                key_partition(&dataset_key(&e.name, &e.version), partitions)
            }
            TraceEvent::DatasetDeleted(e) => {
                key_partition(&dataset_key(&e.name, &e.version), partitions)
            }
            TraceEvent::ErasureRequested(e) => key_partition(&erasure_key(&e.id), partitions),
            _ => partition_for(&self.id(), partitions),
        }
    }

    /// The Kafka key: the trace id for submissions and deletions; `<trace id>/score/<name>` for
    /// scores, so that under compaction a score never replaces the submission it belongs to.
    pub fn key(&self) -> String {
        match self {
            TraceEvent::Submitted(_) | TraceEvent::Deleted(_) => self.id().to_string(),
            TraceEvent::ScoreRecorded(e) => score_key(&e.trace_id, &e.name),
            TraceEvent::ScoreRetracted(e) => score_key(&e.trace_id, &e.name),
            TraceEvent::DatasetMembers(e) => {
                format!("{}/members/{}", dataset_key(&e.name, &e.version), e.chunk)
            }
            TraceEvent::DatasetCreated(e) => dataset_key(&e.name, &e.version),
            TraceEvent::DatasetDeleted(e) => dataset_key(&e.name, &e.version),
            TraceEvent::ErasureRequested(e) => erasure_key(&e.id),
        }
    }

    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            TraceEvent::Submitted(_) => EventKind::Submitted,
            TraceEvent::Deleted(_) => EventKind::Deleted,
            TraceEvent::ScoreRecorded(_) => EventKind::ScoreRecorded,
            TraceEvent::ScoreRetracted(_) => EventKind::ScoreRetracted,
            TraceEvent::DatasetMembers(_) => EventKind::DatasetMembers,
            TraceEvent::DatasetCreated(_) => EventKind::DatasetCreated,
            TraceEvent::DatasetDeleted(_) => EventKind::DatasetDeleted,
            TraceEvent::ErasureRequested(_) => EventKind::ErasureRequested,
        }
    }

    /// Encodes with the current schema of the event's kind, single-object framed (see
    /// [`Encoder`] for the Confluent framing).
    pub fn encode(&self) -> Vec<u8> {
        Encoder::single_object().encode(self)
    }

    /// Decodes an event written with any shipped schema version, in either framing; Confluent
    /// schema ids resolve through the built-in registry only (see [`TraceEvent::decode_with`]).
    pub fn decode(bytes: &[u8]) -> Result<TraceEvent, DecodeError> {
        Self::decode_with(bytes, |_| None)
    }

    /// Decodes like [`TraceEvent::decode`]; a Confluent schema id outside the built-in range is
    /// resolved by `external` (an external registry's ids, cached by the caller).
    pub fn decode_with(
        bytes: &[u8],
        external: impl Fn(i32) -> Option<ShippedSchema>,
    ) -> Result<TraceEvent, DecodeError> {
        let (writer, datum) = framing::unframe(bytes, external)?;
        let value = codec::read_datum(writer, datum)?;
        Self::from_value(writer.file().kind, value)
    }

    /// The kind's half of the Avro encoding, which [`codec::write_datum`] writes with.
    fn codec(&self) -> &dyn EventCodec {
        match self {
            TraceEvent::Submitted(e) => e,
            TraceEvent::Deleted(e) => e,
            TraceEvent::ScoreRecorded(e) => e,
            TraceEvent::ScoreRetracted(e) => e,
            TraceEvent::DatasetMembers(e) => e,
            TraceEvent::DatasetCreated(e) => e,
            TraceEvent::DatasetDeleted(e) => e,
            TraceEvent::ErasureRequested(e) => e,
        }
    }

    /// The event of `kind` in a decoded datum (already resolved to the kind's reader schema).
    fn from_value(kind: EventKind, value: Value) -> Result<TraceEvent, DecodeError> {
        match kind {
            EventKind::Submitted => TraceSubmitted::from_value(value).map(TraceEvent::Submitted),
            EventKind::Deleted => TraceDeleted::from_value(value).map(TraceEvent::Deleted),
            EventKind::ScoreRecorded => {
                ScoreRecorded::from_value(value).map(TraceEvent::ScoreRecorded)
            }
            EventKind::ScoreRetracted => {
                ScoreRetracted::from_value(value).map(TraceEvent::ScoreRetracted)
            }
            EventKind::DatasetMembers => {
                DatasetMembers::from_value(value).map(TraceEvent::DatasetMembers)
            }
            EventKind::DatasetCreated => {
                DatasetCreated::from_value(value).map(TraceEvent::DatasetCreated)
            }
            EventKind::DatasetDeleted => {
                DatasetDeleted::from_value(value).map(TraceEvent::DatasetDeleted)
            }
            EventKind::ErasureRequested => {
                ErasureRequested::from_value(value).map(TraceEvent::ErasureRequested)
            }
        }
    }
}
