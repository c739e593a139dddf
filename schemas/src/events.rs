//! The events on the `traces` topic and their Avro encoding.
//!
//! Two framings, both read forever (see `schemas/README.md`):
//!
//! - **Confluent Schema Registry wire format** (what producers write by default): byte `0x00`,
//!   the 4-byte big-endian schema id, then the Avro binary datum. The id is resolved through a
//!   Schema Registry: ingest-api's built-in one (ids in [`BUILTIN_ID_RANGE`], fixed per shipped
//!   file forever) or an external one (ids it assigned; see `pipeline::registry`).
//! - **Avro single-object encoding**: the two marker bytes `C3 01`, the 8-byte little-endian
//!   CRC-64-AVRO (Rabin) fingerprint of the writer schema's Parsing Canonical Form, then the
//!   datum. Topics written before 2026-12 hold only these; `EVENT_ENCODING=single-object` still
//!   writes them.
//!
//! Until 2026-11 producers framed single-object events with apache-avro's fingerprint, which is
//! taken over a form that keeps `logicalType` attributes and so differs from the specification's
//! for every schema shipped then. Those *legacy* fingerprints stay in the topic forever, so
//! decoding accepts both; encoding writes only the specification's ([`crate::canonical`]).
//!
//! Records carry no Kafka headers: the frame already says what a record is. (The one exception
//! is [`FINGERPRINT_HEADER`], on records framed with an external registry's ids.)
//!
//! Every `.avsc` the repo ever shipped stays registered here as a *writer* schema, so events written
//! by older producers keep decoding; they are resolved to the current *reader* schema of their kind.

use std::io::{Cursor, Read};
use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::trace::{Step, Trace, TraceParts};

/// The marker that starts every Avro single-object encoded value.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
/// Bytes before the Avro datum in a single-object frame: marker plus fingerprint.
pub const HEADER_LEN: usize = 10;
/// The byte that starts every Confluent-framed value.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// Bytes before the Avro datum in a Confluent frame: magic byte plus schema id.
pub const CONFLUENT_HEADER_LEN: usize = 5;
/// The Kafka header that names the writer schema of a record framed with an *external*
/// registry's id: the hex of its specification fingerprint (as in single-object frames). Readers
/// that know our schemas decode such a record without that registry (after a move to another one,
/// or in a replay into an empty database); Confluent clients ignore it. Records with built-in ids
/// or single-object frames carry no headers.
pub const FINGERPRINT_HEADER: &str = "tunix.schema.fingerprint";

/// Schema ids of the built-in registry. Reserved: far above the ids a registry hands out (they
/// count up from 1, or from 100001), so an event framed with a built-in id never means another
/// schema after a move to an external registry. ingest-api refuses a registry that assigns one of
/// them to a different schema.
pub const BUILTIN_ID_RANGE: std::ops::RangeInclusive<i32> = 1_000_000_001..=1_000_099_999;

/// Largest string, byte array or collection length the decoder will allocate for. Events are
/// bounded by the ingest size limit (at most [`crate::MAX_TRACE_BYTES_LIMIT`]), so anything larger
/// is corrupt; refusing it keeps a poison record from exhausting memory.
const MAX_DECODE_ALLOCATION: usize = crate::MAX_TRACE_BYTES_LIMIT + 1024 * 1024;

/// The kind of an event, independent of its schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `ai.tunix.events.TraceSubmitted`.
    Submitted,
    /// `ai.tunix.events.TraceDeleted`.
    Deleted,
    /// `ai.tunix.events.ScoreRecorded`.
    ScoreRecorded,
    /// `ai.tunix.events.ScoreRetracted`.
    ScoreRetracted,
    /// `ai.tunix.events.DatasetMembers`.
    DatasetMembers,
    /// `ai.tunix.events.DatasetCreated`.
    DatasetCreated,
    /// `ai.tunix.events.DatasetDeleted`.
    DatasetDeleted,
    /// `ai.tunix.events.ErasureRequested`.
    ErasureRequested,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Submitted,
        EventKind::Deleted,
        EventKind::ScoreRecorded,
        EventKind::ScoreRetracted,
        EventKind::DatasetMembers,
        EventKind::DatasetCreated,
        EventKind::DatasetDeleted,
        EventKind::ErasureRequested,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The Avro record's full name, which the subject of its schemas ends with.
    pub fn record_name(self) -> &'static str {
        match self {
            EventKind::Submitted => "ai.tunix.events.TraceSubmitted",
            EventKind::Deleted => "ai.tunix.events.TraceDeleted",
            EventKind::ScoreRecorded => "ai.tunix.events.ScoreRecorded",
            EventKind::ScoreRetracted => "ai.tunix.events.ScoreRetracted",
            EventKind::DatasetMembers => "ai.tunix.events.DatasetMembers",
            EventKind::DatasetCreated => "ai.tunix.events.DatasetCreated",
            EventKind::DatasetDeleted => "ai.tunix.events.DatasetDeleted",
            EventKind::ErasureRequested => "ai.tunix.events.ErasureRequested",
        }
    }

    /// The Schema Registry subject of this kind's schemas on `topic`: TopicRecordNameStrategy,
    /// `<topic>-<record full name>` (several event types share the topic; see schemas/README.md).
    pub fn subject(self, topic: &str) -> String {
        format!("{topic}-{}", self.record_name())
    }
}

/// A schema file this crate ships.
#[derive(Debug)]
pub struct SchemaFile {
    /// The file name under `schemas/avro/`.
    pub file: &'static str,
    /// The file's text.
    pub text: &'static str,
    /// What the schema describes.
    pub kind: EventKind,
    /// Its version within the kind; the highest is the one producers write. Also its version
    /// under its subject in the built-in registry.
    pub version: u32,
    /// Its id in the built-in Schema Registry ([`BUILTIN_ID_RANGE`]). Never changes once shipped.
    pub builtin_id: i32,
}

/// Every `.avsc` in `schemas/avro/`, oldest first within each kind. Never remove an entry: old
/// events stay in the topic for as long as its retention allows.
pub const SCHEMA_FILES: &[SchemaFile] = &[
    SchemaFile {
        file: "trace_submitted.v1.avsc",
        text: include_str!("../avro/trace_submitted.v1.avsc"),
        kind: EventKind::Submitted,
        version: 1,
        builtin_id: 1000000001,
    },
    SchemaFile {
        file: "trace_submitted.v2.avsc",
        text: include_str!("../avro/trace_submitted.v2.avsc"),
        kind: EventKind::Submitted,
        version: 2,
        builtin_id: 1000000002,
    },
    SchemaFile {
        file: "trace_deleted.v1.avsc",
        text: include_str!("../avro/trace_deleted.v1.avsc"),
        kind: EventKind::Deleted,
        version: 1,
        builtin_id: 1000000003,
    },
    SchemaFile {
        file: "score_recorded.v1.avsc",
        text: include_str!("../avro/score_recorded.v1.avsc"),
        kind: EventKind::ScoreRecorded,
        version: 1,
        builtin_id: 1000000004,
    },
    SchemaFile {
        file: "score_retracted.v1.avsc",
        text: include_str!("../avro/score_retracted.v1.avsc"),
        kind: EventKind::ScoreRetracted,
        version: 1,
        builtin_id: 1000000005,
    },
    SchemaFile {
        file: "dataset_members.v1.avsc",
        text: include_str!("../avro/dataset_members.v1.avsc"),
        kind: EventKind::DatasetMembers,
        version: 1,
        builtin_id: 1000000006,
    },
    SchemaFile {
        file: "dataset_created.v1.avsc",
        text: include_str!("../avro/dataset_created.v1.avsc"),
        kind: EventKind::DatasetCreated,
        version: 1,
        builtin_id: 1000000007,
    },
    SchemaFile {
        file: "dataset_deleted.v1.avsc",
        text: include_str!("../avro/dataset_deleted.v1.avsc"),
        kind: EventKind::DatasetDeleted,
        version: 1,
        builtin_id: 1000000008,
    },
    SchemaFile {
        file: "erasure_requested.v1.avsc",
        text: include_str!("../avro/erasure_requested.v1.avsc"),
        kind: EventKind::ErasureRequested,
        version: 1,
        builtin_id: 1000000009,
    },
];

struct Registered {
    file: &'static SchemaFile,
    schema: Schema,
    /// The specification's fingerprint (little-endian): what producers write.
    fingerprint: [u8; 8],
    /// apache-avro's fingerprint of the same file, for the files producers framed with it before
    /// 2026-11 ([`LEGACY_FRAMED`]); read only.
    legacy_fingerprint: Option<[u8; 8]>,
}

/// The schema files events were framed with apache-avro's fingerprint for, before 2026-11.
/// Files added later were only ever framed with the specification's.
const LEGACY_FRAMED: [&str; 3] = [
    "trace_submitted.v1.avsc",
    "trace_submitted.v2.avsc",
    "trace_deleted.v1.avsc",
];

struct Registry {
    all: Vec<Registered>,
    /// Per kind (`EventKind::index`): index into `all` of its current (highest-version) schema.
    current: [usize; EventKind::ALL.len()],
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION);
    let all: Vec<Registered> = SCHEMA_FILES
        .iter()
        .map(|file| {
            let schema = Schema::parse_str(file.text)
                .unwrap_or_else(|e| panic!("{} is not a valid Avro schema: {e}", file.file));
            let canonical = crate::canonical::parsing_canonical_form(file.text)
                .unwrap_or_else(|e| panic!("{}: {e}", file.file));
            Registered {
                file,
                fingerprint: crate::canonical::crc64_avro(canonical.as_bytes()).to_le_bytes(),
                legacy_fingerprint: LEGACY_FRAMED
                    .contains(&file.file)
                    .then(|| legacy_fingerprint(&schema)),
                schema,
            }
        })
        .collect();
    let current = |kind: EventKind| {
        all.iter()
            .enumerate()
            .filter(|(_, r)| r.file.kind == kind)
            .max_by_key(|(_, r)| r.file.version)
            .map(|(n, _)| n)
            .expect("every event kind has a schema")
    };
    Registry {
        current: EventKind::ALL.map(current),
        all,
    }
});

/// apache-avro's Rabin fingerprint, over its own canonical form (which keeps `logicalType`).
fn legacy_fingerprint(schema: &Schema) -> [u8; 8] {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

/// The specification's fingerprint (little-endian, as framed on the wire) of every shipped
/// schema file: what producers write today.
pub fn schema_fingerprints() -> Vec<(&'static str, [u8; 8])> {
    REGISTRY
        .all
        .iter()
        .map(|r| (r.file.file, r.fingerprint))
        .collect()
}

/// The legacy fingerprints (apache-avro's, written before 2026-11) of the schema files shipped
/// then; still accepted by [`TraceEvent::decode`].
pub fn legacy_schema_fingerprints() -> Vec<(&'static str, [u8; 8])> {
    REGISTRY
        .all
        .iter()
        .filter_map(|r| Some((r.file.file, r.legacy_fingerprint?)))
        .collect()
}

/// The schema producers write for `kind` today, with its file name and fingerprint.
pub fn current_schema(kind: EventKind) -> (&'static str, &'static Schema, [u8; 8]) {
    let r = &REGISTRY.all[REGISTRY.current[kind.index()]];
    (r.file.file, &r.schema, r.fingerprint)
}

/// One shipped schema file, as a handle: what a registry id or a fingerprint resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShippedSchema(usize);

impl ShippedSchema {
    /// Every shipped schema, in [`SCHEMA_FILES`] order.
    pub fn all() -> impl Iterator<Item = ShippedSchema> {
        (0..REGISTRY.all.len()).map(ShippedSchema)
    }

    /// The schema producers write for `kind` today.
    pub fn current(kind: EventKind) -> ShippedSchema {
        ShippedSchema(REGISTRY.current[kind.index()])
    }

    /// The schema with this built-in registry id.
    pub fn by_builtin_id(id: i32) -> Option<ShippedSchema> {
        REGISTRY
            .all
            .iter()
            .position(|r| r.file.builtin_id == id)
            .map(ShippedSchema)
    }

    /// The schema with this specification fingerprint (little-endian bytes, as framed).
    pub fn by_fingerprint(fingerprint: &[u8]) -> Option<ShippedSchema> {
        REGISTRY
            .all
            .iter()
            .position(|r| r.fingerprint == fingerprint)
            .map(ShippedSchema)
    }

    /// The shipped schema a registry's text denotes: equal Parsing Canonical Forms, so the
    /// registry may reformat or drop docs. `None` for text that is not one of ours.
    pub fn from_schema_text(text: &str) -> Option<ShippedSchema> {
        let canonical = crate::canonical::parsing_canonical_form(text).ok()?;
        Self::by_fingerprint(&crate::canonical::crc64_avro(canonical.as_bytes()).to_le_bytes())
    }

    fn registered(self) -> &'static Registered {
        &REGISTRY.all[self.0]
    }

    /// The file it was shipped as.
    pub fn file(self) -> &'static SchemaFile {
        self.registered().file
    }

    /// The specification fingerprint, little-endian as single-object frames carry it.
    pub fn fingerprint(self) -> [u8; 8] {
        self.registered().fingerprint
    }
}

/// How events are framed on the topic (`EVENT_ENCODING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Confluent Schema Registry wire format (`confluent`), the default.
    #[default]
    Confluent,
    /// Avro single-object encoding (`single-object`), as written before 2026-12.
    SingleObject,
}

impl std::str::FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "confluent" => Ok(Framing::Confluent),
            "single-object" => Ok(Framing::SingleObject),
            other => Err(format!(
                "unknown event encoding {other:?}: use confluent or single-object"
            )),
        }
    }
}

/// Frames events for the topic: single-object, or Confluent with a schema id per kind.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// Per kind: `None` for single-object, else the id of its current schema.
    ids: [Option<i32>; EventKind::ALL.len()],
    /// Whether the ids are an external registry's (records then carry [`FINGERPRINT_HEADER`]).
    external: bool,
}

impl Encoder {
    /// Avro single-object encoding.
    pub fn single_object() -> Encoder {
        Encoder {
            ids: [None; EventKind::ALL.len()],
            external: false,
        }
    }

    /// Confluent framing with the built-in registry's ids.
    pub fn confluent_builtin() -> Encoder {
        Encoder {
            ids: EventKind::ALL.map(|k| Some(ShippedSchema::current(k).file().builtin_id)),
            external: false,
        }
    }

    /// Confluent framing with ids an external registry assigned; `id_of` is asked for the current
    /// schema of every kind.
    pub fn confluent(id_of: impl Fn(ShippedSchema) -> Option<i32>) -> Result<Encoder, String> {
        let mut ids = [None; EventKind::ALL.len()];
        for kind in EventKind::ALL {
            let schema = ShippedSchema::current(kind);
            ids[kind.index()] = Some(
                id_of(schema)
                    .ok_or_else(|| format!("no registry id for {}", schema.file().file))?,
            );
        }
        Ok(Encoder {
            ids,
            external: true,
        })
    }

    /// The [`FINGERPRINT_HEADER`] value a record of `kind` carries, if any (external ids only).
    pub fn fingerprint_header(&self, kind: EventKind) -> Option<String> {
        self.external
            .then(|| hex(&ShippedSchema::current(kind).fingerprint()))
    }

    /// The framing this encoder writes.
    pub fn framing(&self) -> Framing {
        if self.ids[0].is_some() {
            Framing::Confluent
        } else {
            Framing::SingleObject
        }
    }

    /// The schema id written for `kind` (Confluent framing only).
    pub fn schema_id(&self, kind: EventKind) -> Option<i32> {
        self.ids[kind.index()]
    }

    /// Encodes `event` with the current schema of its kind, in this encoder's framing.
    pub fn encode(&self, event: &TraceEvent) -> Vec<u8> {
        let kind = event.kind();
        let mut out = Vec::with_capacity(256);
        match self.ids[kind.index()] {
            Some(id) => {
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&id.to_be_bytes());
            }
            None => {
                out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
                out.extend_from_slice(&ShippedSchema::current(kind).fingerprint());
            }
        }
        event.write_datum(&mut out);
        out
    }
}

/// The shipped schema a [`FINGERPRINT_HEADER`] value names, if any.
pub fn schema_from_fingerprint_header(value: &[u8]) -> Option<ShippedSchema> {
    if value.len() != 16 {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let mut fp = [0u8; 8];
    for (n, byte) in fp.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * n..2 * n + 2)?, 16).ok()?;
    }
    ShippedSchema::by_fingerprint(&fp)
}

/// The schema id of a Confluent-framed value, if it is one.
pub fn confluent_schema_id(bytes: &[u8]) -> Option<i32> {
    match bytes {
        [CONFLUENT_MAGIC, a, b, c, d, ..] => Some(i32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// A trace accepted by ingest-api.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSubmitted {
    /// The trace id; also the Kafka key.
    pub id: Uuid,
    /// Acceptance time, truncated to microseconds (the precision of the event and of Postgres).
    pub created_at: DateTime<Utc>,
    /// The validated trace.
    pub trace: Trace,
    /// The producer's `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
}

/// A tombstone for one trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceDeleted {
    /// The deleted trace's id; also the Kafka key.
    pub id: Uuid,
    /// When the delete was accepted, truncated to microseconds.
    pub deleted_at: DateTime<Utc>,
    /// Free text from the operator.
    pub reason: Option<String>,
}

/// A judgement of one trace; the latest per `(trace_id, name)` wins.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRecorded {
    /// The trace judged.
    pub trace_id: Uuid,
    /// What was judged (validated: see [`crate::score`]).
    pub name: String,
    /// A finite number.
    pub value: f64,
    /// Who or what judged.
    pub source: Option<String>,
    /// Free text.
    pub comment: Option<String>,
    /// When it was accepted, truncated to microseconds.
    pub recorded_at: DateTime<Utc>,
}

/// Withdraws one score of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreRetracted {
    /// The trace.
    pub trace_id: Uuid,
    /// The score's name.
    pub name: String,
    /// When it was accepted, truncated to microseconds.
    pub retracted_at: DateTime<Utc>,
}

/// A score of a dataset member as of the dataset's creation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrozenScore {
    /// The score's name.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Who or what judged.
    pub source: Option<String>,
    /// When it was recorded (microseconds).
    #[serde(serialize_with = "ser_micros")]
    pub recorded_at: DateTime<Utc>,
}

/// One member of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetMember {
    /// The trace.
    pub trace_id: Uuid,
    /// In the eval split (else train).
    pub eval: bool,
    /// Its scores as of the dataset's creation, by name.
    pub scores: Vec<FrozenScore>,
}

/// One chunk of a dataset build's membership (see `avro/dataset_members.v1.avsc`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetMembers {
    /// The build the chunk belongs to.
    pub build_id: Uuid,
    /// The dataset's name.
    pub name: String,
    /// The dataset's version.
    pub version: String,
    /// 0-based chunk number.
    pub chunk: i32,
    /// Position of the first member in the dataset's order.
    pub first_position: i64,
    /// The members, in order.
    pub members: Vec<DatasetMember>,
}

/// Seals a dataset build (see `avro/dataset_created.v1.avsc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetCreated {
    /// The build whose chunks hold the membership.
    pub build_id: Uuid,
    /// The dataset's name.
    pub name: String,
    /// The dataset's version.
    pub version: String,
    /// The definition as canonical JSON.
    pub definition: String,
    /// Members.
    pub member_count: i64,
    /// Members in the eval split.
    pub eval_count: i64,
    /// Chunks written before this event.
    pub chunks: i32,
    /// sha256 (hex) of the membership.
    pub digest: String,
    /// When it was created, truncated to microseconds.
    pub created_at: DateTime<Utc>,
}

/// Removes a dataset (see `avro/dataset_deleted.v1.avsc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetDeleted {
    /// The build deleted.
    pub build_id: Uuid,
    /// The dataset's name.
    pub name: String,
    /// The dataset's version.
    pub version: String,
    /// When the delete was accepted, truncated to microseconds.
    pub deleted_at: DateTime<Utc>,
}

/// The audit record of an erasure (see `avro/erasure_requested.v1.avsc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRequested {
    /// The audit entry's id (a bulk delete's operation id).
    pub id: Uuid,
    /// `delete`, `bulk_delete` or `retention`.
    pub action: String,
    /// The caller's API key id, `anonymous`, or `retention`.
    pub requested_by: String,
    /// When the request was accepted, truncated to microseconds.
    pub requested_at: DateTime<Utc>,
    /// The trace, for `delete`.
    pub trace_id: Option<Uuid>,
    /// The list filter as JSON, for `bulk_delete`.
    pub filter: Option<String>,
    /// Only traces created before this were erased.
    pub created_before: Option<DateTime<Utc>>,
    /// How many traces the request erases.
    pub count: Option<i64>,
    /// Free text from the operator.
    pub reason: Option<String>,
}

/// The Kafka key of the audit record `id`.
pub fn erasure_key(id: &Uuid) -> String {
    format!("erasure/{id}")
}

/// The Kafka key of dataset `name`@`version`'s definition and deletion; its members' keys extend
/// it, and every event of the dataset goes to the partition of this key ([`key_partition`]).
pub fn dataset_key(name: &str, version: &str) -> String {
    format!("dataset/{name}/{version}")
}

/// CRC-32 (IEEE) of `key` modulo `partitions`: librdkafka's default for that key.
pub fn key_partition(key: &str, partitions: i32) -> i32 {
    (crc32fast::hash(key.as_bytes()) % partitions.max(1) as u32) as i32
}

fn ser_micros<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(to_micros(t))
}

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

/// The partition of a trace's events among `partitions`: CRC-32 (IEEE) of the trace id's
/// hyphenated lower-case text, modulo the partition count. This is exactly what librdkafka's
/// default partitioner (`consistent_random`) computes for the submission's key, so events keyed
/// otherwise (scores) land in the same partition as the submission they belong to, after it.
pub fn partition_for(trace_id: &Uuid, partitions: i32) -> i32 {
    let mut buf = Uuid::encode_buffer();
    key_partition(trace_id.hyphenated().encode_lower(&mut buf), partitions)
}

/// Why a record could not be turned into an event. Each variant is a reason label in the writer's
/// dead-letter headers and metrics.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the frame's header.
    #[error("value is {0} bytes, shorter than its frame's header")]
    TooShort(usize),
    /// Neither a Confluent frame (`00`) nor a single-object one (`C3 01`).
    #[error(
        "value starts with neither the Confluent magic byte 00 nor the single-object marker C3 01"
    )]
    BadMagic,
    /// The fingerprint or schema id resolves to no schema this build knows.
    #[error("unknown writer schema: {0}")]
    UnknownSchema(String),
    /// The datum does not match its writer schema, or cannot be resolved to the reader schema.
    #[error("avro: {0}")]
    Avro(String),
    /// Bytes left over after the datum: a framing bug or corruption.
    #[error("{0} trailing bytes after the Avro datum")]
    TrailingBytes(usize),
    /// The datum decodes but breaks a trace or score rule (an old or foreign producer).
    #[error("event breaks the rules: {0}")]
    Invalid(ValidationErrors),
}

impl DecodeError {
    /// A short, stable label for metrics and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooShort(_) => "too_short",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::UnknownSchema(_) => "unknown_schema",
            DecodeError::Avro(_) => "avro",
            DecodeError::TrailingBytes(_) => "trailing_bytes",
            DecodeError::Invalid(_) => "invalid_trace",
        }
    }
}

/// Microseconds since the epoch, as Avro `timestamp-micros` stores them.
pub fn to_micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The inverse of [`to_micros`]; out-of-range values clamp instead of panicking.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t` truncated to whole microseconds.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(to_micros(&t))
}

#[derive(Serialize)]
struct SubmittedWire<'a> {
    id: &'a str,
    created_at: i64,
    trace_version: &'a str,
    prompt: &'a str,
    final_answer: &'a str,
    steps: &'a [Step],
    meta: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

#[derive(Serialize)]
struct DeletedWire<'a> {
    id: &'a str,
    deleted_at: i64,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ScoreWire<'a> {
    trace_id: &'a str,
    name: &'a str,
    value: f64,
    source: Option<&'a str>,
    comment: Option<&'a str>,
    recorded_at: i64,
}

#[derive(Serialize)]
struct RetractedWire<'a> {
    trace_id: &'a str,
    name: &'a str,
    retracted_at: i64,
}

#[derive(Serialize)]
struct MemberWire<'a> {
    trace_id: String,
    eval: bool,
    scores: &'a [FrozenScore],
}

#[derive(Serialize)]
struct MembersWire<'a> {
    build_id: &'a str,
    name: &'a str,
    version: &'a str,
    chunk: i32,
    first_position: i64,
    members: Vec<MemberWire<'a>>,
}

#[derive(Serialize)]
struct CreatedWire<'a> {
    build_id: &'a str,
    name: &'a str,
    version: &'a str,
    definition: &'a str,
    member_count: i64,
    eval_count: i64,
    chunks: i32,
    digest: &'a str,
    created_at: i64,
}

#[derive(Serialize)]
struct ErasureWire<'a> {
    id: &'a str,
    action: &'a str,
    requested_by: &'a str,
    requested_at: i64,
    trace_id: Option<String>,
    filter: Option<&'a str>,
    created_before: Option<i64>,
    count: Option<i64>,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct DatasetDeletedWire<'a> {
    build_id: &'a str,
    name: &'a str,
    version: &'a str,
    deleted_at: i64,
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

    /// Appends the Avro binary datum, written with the current schema of the event's kind.
    fn write_datum(&self, out: &mut Vec<u8>) {
        let (_, schema, _) = current_schema(self.kind());
        let mut id_buf = Uuid::encode_buffer();
        let id = self.id().hyphenated().encode_lower(&mut id_buf);
        let written = match self {
            TraceEvent::Submitted(e) => apache_avro::write_avro_datum_ref(
                schema,
                &SubmittedWire {
                    id,
                    created_at: to_micros(&e.created_at),
                    trace_version: e.trace.trace_version(),
                    prompt: e.trace.prompt(),
                    final_answer: e.trace.final_answer(),
                    steps: e.trace.steps(),
                    meta: e.trace.meta().map(|m| m.as_str()),
                    idempotency_key: e.idempotency_key.as_deref(),
                },
                out,
            ),
            TraceEvent::Deleted(e) => apache_avro::write_avro_datum_ref(
                schema,
                &DeletedWire {
                    id,
                    deleted_at: to_micros(&e.deleted_at),
                    reason: e.reason.as_deref(),
                },
                out,
            ),
            TraceEvent::ScoreRecorded(e) => apache_avro::write_avro_datum_ref(
                schema,
                &ScoreWire {
                    trace_id: id,
                    name: &e.name,
                    value: e.value,
                    source: e.source.as_deref(),
                    comment: e.comment.as_deref(),
                    recorded_at: to_micros(&e.recorded_at),
                },
                out,
            ),
            TraceEvent::ScoreRetracted(e) => apache_avro::write_avro_datum_ref(
                schema,
                &RetractedWire {
                    trace_id: id,
                    name: &e.name,
                    retracted_at: to_micros(&e.retracted_at),
                },
                out,
            ),
            TraceEvent::DatasetMembers(e) => apache_avro::write_avro_datum_ref(
                schema,
                &MembersWire {
                    build_id: id,
                    name: &e.name,
                    version: &e.version,
                    chunk: e.chunk,
                    first_position: e.first_position,
                    members: e
                        .members
                        .iter()
                        .map(|m| MemberWire {
                            trace_id: m.trace_id.to_string(),
                            eval: m.eval,
                            scores: &m.scores,
                        })
                        .collect(),
                },
                out,
            ),
            TraceEvent::DatasetCreated(e) => apache_avro::write_avro_datum_ref(
                schema,
                &CreatedWire {
                    build_id: id,
                    name: &e.name,
                    version: &e.version,
                    definition: &e.definition,
                    member_count: e.member_count,
                    eval_count: e.eval_count,
                    chunks: e.chunks,
                    digest: &e.digest,
                    created_at: to_micros(&e.created_at),
                },
                out,
            ),
            TraceEvent::DatasetDeleted(e) => apache_avro::write_avro_datum_ref(
                schema,
                &DatasetDeletedWire {
                    build_id: id,
                    name: &e.name,
                    version: &e.version,
                    deleted_at: to_micros(&e.deleted_at),
                },
                out,
            ),
            TraceEvent::ErasureRequested(e) => apache_avro::write_avro_datum_ref(
                schema,
                &ErasureWire {
                    id,
                    action: &e.action,
                    requested_by: &e.requested_by,
                    requested_at: to_micros(&e.requested_at),
                    trace_id: e.trace_id.map(|t| t.to_string()),
                    filter: e.filter.as_deref(),
                    created_before: e.created_before.as_ref().map(to_micros),
                    count: e.count,
                    reason: e.reason.as_deref(),
                },
                out,
            ),
        };
        // The wire structs mirror the shipped schemas field by field (pinned by the round-trip
        // tests), so serialization cannot fail at run time.
        written.expect("event matches its schema");
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
        let registry = &*REGISTRY;
        let (writer, datum) = match bytes.first() {
            Some(&CONFLUENT_MAGIC) => {
                let id = confluent_schema_id(bytes).ok_or(DecodeError::TooShort(bytes.len()))?;
                let schema = if BUILTIN_ID_RANGE.contains(&id) {
                    ShippedSchema::by_builtin_id(id)
                } else {
                    external(id)
                };
                let schema =
                    schema.ok_or_else(|| DecodeError::UnknownSchema(format!("schema id {id}")))?;
                (schema.registered(), &bytes[CONFLUENT_HEADER_LEN..])
            }
            Some(0xC3) if bytes.len() >= 2 && bytes[..2] == SINGLE_OBJECT_MAGIC => {
                if bytes.len() < HEADER_LEN {
                    return Err(DecodeError::TooShort(bytes.len()));
                }
                let fingerprint = &bytes[2..HEADER_LEN];
                let writer = registry
                    .all
                    .iter()
                    .find(|r| r.fingerprint == fingerprint)
                    .or_else(|| {
                        registry
                            .all
                            .iter()
                            .find(|r| r.legacy_fingerprint.is_some_and(|l| l == fingerprint))
                    })
                    .ok_or_else(|| {
                        DecodeError::UnknownSchema(format!("fingerprint {}", hex(fingerprint)))
                    })?;
                (writer, &bytes[HEADER_LEN..])
            }
            _ if bytes.len() < 2 => return Err(DecodeError::TooShort(bytes.len())),
            _ => return Err(DecodeError::BadMagic),
        };
        let reader_idx = registry.current[writer.file.kind.index()];
        let reader = &registry.all[reader_idx];
        // apache-avro reads a string or union cut off by end-of-input as null instead of failing,
        // so a truncated datum could decode "successfully" with fields missing. One sentinel byte
        // after the datum exposes that: a complete datum leaves it unread, a truncated one eats it.
        let mut input = Cursor::new(datum).chain(&[0u8][..]);
        let reader_schema = (reader.fingerprint != writer.fingerprint).then_some(&reader.schema);
        let value = apache_avro::from_avro_datum(&writer.schema, &mut input, reader_schema)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        let (cursor, sentinel) = input.into_inner();
        let unread = datum.len() - cursor.position() as usize + sentinel.len();
        match unread {
            0 => return Err(DecodeError::Avro("datum is truncated".to_owned())),
            1 => {}
            n => return Err(DecodeError::TrailingBytes(n - 1)),
        }
        match writer.file.kind {
            EventKind::Submitted => submitted_from_value(value).map(TraceEvent::Submitted),
            EventKind::Deleted => deleted_from_value(value).map(TraceEvent::Deleted),
            EventKind::ScoreRecorded => score_from_value(value).map(TraceEvent::ScoreRecorded),
            EventKind::ScoreRetracted => {
                retraction_from_value(value).map(TraceEvent::ScoreRetracted)
            }
            EventKind::DatasetMembers => members_from_value(value).map(TraceEvent::DatasetMembers),
            EventKind::DatasetCreated => {
                dataset_created_from_value(value).map(TraceEvent::DatasetCreated)
            }
            EventKind::DatasetDeleted => {
                dataset_deleted_from_value(value).map(TraceEvent::DatasetDeleted)
            }
            EventKind::ErasureRequested => {
                erasure_from_value(value).map(TraceEvent::ErasureRequested)
            }
        }
    }
}

/// The Kafka key of the score `name` of trace `trace_id`.
pub fn score_key(trace_id: &Uuid, name: &str) -> String {
    format!("{trace_id}/score/{name}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn shape(msg: impl Into<String>) -> DecodeError {
    DecodeError::Avro(msg.into())
}

/// Takes the named field out of a record's field list.
fn take(fields: &mut [(String, Value)], name: &str) -> Result<Value, DecodeError> {
    fields
        .iter_mut()
        .find(|(n, _)| n == name)
        .map(|(_, v)| std::mem::replace(v, Value::Null))
        .ok_or_else(|| shape(format!("missing field {name}")))
}

fn record(value: Value) -> Result<Vec<(String, Value)>, DecodeError> {
    match value {
        Value::Record(fields) => Ok(fields),
        other => Err(shape(format!("expected a record, got {other:?}"))),
    }
}

fn string(value: Value, name: &str) -> Result<String, DecodeError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(shape(format!("field {name} is not a string"))),
    }
}

fn optional_string(value: Value, name: &str) -> Result<Option<String>, DecodeError> {
    match value {
        Value::Union(_, inner) => match *inner {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            _ => Err(shape(format!("field {name} is not a string or null"))),
        },
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(shape(format!("field {name} is not a string or null"))),
    }
}

fn uuid(value: Value) -> Result<Uuid, DecodeError> {
    match value {
        Value::Uuid(u) => Ok(u),
        Value::String(s) => Uuid::parse_str(&s).map_err(|e| shape(format!("bad uuid: {e}"))),
        _ => Err(shape("field id is not a uuid")),
    }
}

fn micros(value: Value, name: &str) -> Result<DateTime<Utc>, DecodeError> {
    match value {
        Value::TimestampMicros(m) | Value::Long(m) => Ok(from_micros(m)),
        _ => Err(shape(format!("field {name} is not a timestamp"))),
    }
}

fn submitted_from_value(value: Value) -> Result<TraceSubmitted, DecodeError> {
    let mut fields = record(value)?;
    let id = uuid(take(&mut fields, "id")?)?;
    let created_at = micros(take(&mut fields, "created_at")?, "created_at")?;
    let steps = match take(&mut fields, "steps")? {
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let mut f = record(item)?;
                let i = match take(&mut f, "i")? {
                    Value::Long(i) => i,
                    _ => return Err(shape("field steps[].i is not a long")),
                };
                Ok(Step {
                    i,
                    kind: string(take(&mut f, "type")?, "steps[].type")?,
                    content: string(take(&mut f, "content")?, "steps[].content")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(shape("field steps is not an array")),
    };
    let parts = TraceParts {
        trace_version: string(take(&mut fields, "trace_version")?, "trace_version")?,
        prompt: string(take(&mut fields, "prompt")?, "prompt")?,
        final_answer: string(take(&mut fields, "final_answer")?, "final_answer")?,
        steps,
        meta: optional_string(take(&mut fields, "meta")?, "meta")?,
    };
    let idempotency_key =
        optional_string(take(&mut fields, "idempotency_key")?, "idempotency_key")?;
    let trace = Trace::from_parts(parts).map_err(DecodeError::Invalid)?;
    Ok(TraceSubmitted {
        id,
        created_at,
        trace,
        idempotency_key,
    })
}

fn deleted_from_value(value: Value) -> Result<TraceDeleted, DecodeError> {
    let mut fields = record(value)?;
    Ok(TraceDeleted {
        id: uuid(take(&mut fields, "id")?)?,
        deleted_at: micros(take(&mut fields, "deleted_at")?, "deleted_at")?,
        reason: optional_string(take(&mut fields, "reason")?, "reason")?,
    })
}

fn score_from_value(value: Value) -> Result<ScoreRecorded, DecodeError> {
    let mut fields = record(value)?;
    let score = ScoreRecorded {
        trace_id: uuid(take(&mut fields, "trace_id")?)?,
        name: string(take(&mut fields, "name")?, "name")?,
        value: match take(&mut fields, "value")? {
            Value::Double(v) => v,
            _ => return Err(shape("field value is not a double")),
        },
        source: optional_string(take(&mut fields, "source")?, "source")?,
        comment: optional_string(take(&mut fields, "comment")?, "comment")?,
        recorded_at: micros(take(&mut fields, "recorded_at")?, "recorded_at")?,
    };
    crate::score::check(
        &score.name,
        score.value,
        score.source.as_deref(),
        score.comment.as_deref(),
    )
    .map_err(DecodeError::Invalid)?;
    Ok(score)
}

fn retraction_from_value(value: Value) -> Result<ScoreRetracted, DecodeError> {
    let mut fields = record(value)?;
    let retraction = ScoreRetracted {
        trace_id: uuid(take(&mut fields, "trace_id")?)?,
        name: string(take(&mut fields, "name")?, "name")?,
        retracted_at: micros(take(&mut fields, "retracted_at")?, "retracted_at")?,
    };
    crate::score::check_name(&retraction.name).map_err(DecodeError::Invalid)?;
    Ok(retraction)
}

fn long(value: Value, name: &str) -> Result<i64, DecodeError> {
    match value {
        Value::Long(v) => Ok(v),
        Value::Int(v) => Ok(i64::from(v)),
        _ => Err(shape(format!("field {name} is not a long"))),
    }
}

fn int(value: Value, name: &str) -> Result<i32, DecodeError> {
    match value {
        Value::Int(v) => Ok(v),
        _ => Err(shape(format!("field {name} is not an int"))),
    }
}

fn array(value: Value, name: &str) -> Result<Vec<Value>, DecodeError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(shape(format!("field {name} is not an array"))),
    }
}

/// The fields every dataset event starts with: build id, name and version (checked).
fn dataset_head(fields: &mut [(String, Value)]) -> Result<(Uuid, String, String), DecodeError> {
    let build_id = uuid(take(fields, "build_id")?)?;
    let name = string(take(fields, "name")?, "name")?;
    let version = string(take(fields, "version")?, "version")?;
    crate::dataset::check_name_version(&name, &version).map_err(DecodeError::Invalid)?;
    Ok((build_id, name, version))
}

fn members_from_value(value: Value) -> Result<DatasetMembers, DecodeError> {
    let mut fields = record(value)?;
    let (build_id, name, version) = dataset_head(&mut fields)?;
    let chunk = int(take(&mut fields, "chunk")?, "chunk")?;
    let first_position = long(take(&mut fields, "first_position")?, "first_position")?;
    let members = array(take(&mut fields, "members")?, "members")?
        .into_iter()
        .map(|m| {
            let mut f = record(m)?;
            let trace_id = uuid(take(&mut f, "trace_id")?)?;
            let eval = match take(&mut f, "eval")? {
                Value::Boolean(b) => b,
                _ => return Err(shape("field members[].eval is not a boolean")),
            };
            let scores = array(take(&mut f, "scores")?, "members[].scores")?
                .into_iter()
                .map(|s| {
                    let mut f = record(s)?;
                    Ok(FrozenScore {
                        name: string(take(&mut f, "name")?, "scores[].name")?,
                        value: match take(&mut f, "value")? {
                            Value::Double(v) => v,
                            _ => return Err(shape("field scores[].value is not a double")),
                        },
                        source: optional_string(take(&mut f, "source")?, "scores[].source")?,
                        recorded_at: micros(take(&mut f, "recorded_at")?, "scores[].recorded_at")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DatasetMember {
                trace_id,
                eval,
                scores,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DatasetMembers {
        build_id,
        name,
        version,
        chunk,
        first_position,
        members,
    })
}

fn dataset_created_from_value(value: Value) -> Result<DatasetCreated, DecodeError> {
    let mut fields = record(value)?;
    let (build_id, name, version) = dataset_head(&mut fields)?;
    Ok(DatasetCreated {
        build_id,
        name,
        version,
        definition: string(take(&mut fields, "definition")?, "definition")?,
        member_count: long(take(&mut fields, "member_count")?, "member_count")?,
        eval_count: long(take(&mut fields, "eval_count")?, "eval_count")?,
        chunks: int(take(&mut fields, "chunks")?, "chunks")?,
        digest: string(take(&mut fields, "digest")?, "digest")?,
        created_at: micros(take(&mut fields, "created_at")?, "created_at")?,
    })
}

fn dataset_deleted_from_value(value: Value) -> Result<DatasetDeleted, DecodeError> {
    let mut fields = record(value)?;
    let (build_id, name, version) = dataset_head(&mut fields)?;
    Ok(DatasetDeleted {
        build_id,
        name,
        version,
        deleted_at: micros(take(&mut fields, "deleted_at")?, "deleted_at")?,
    })
}

fn optional(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

fn erasure_from_value(value: Value) -> Result<ErasureRequested, DecodeError> {
    let mut fields = record(value)?;
    Ok(ErasureRequested {
        id: uuid(take(&mut fields, "id")?)?,
        action: string(take(&mut fields, "action")?, "action")?,
        requested_by: string(take(&mut fields, "requested_by")?, "requested_by")?,
        requested_at: micros(take(&mut fields, "requested_at")?, "requested_at")?,
        trace_id: match optional(take(&mut fields, "trace_id")?) {
            Value::Null => None,
            v => Some(uuid(v)?),
        },
        filter: optional_string(take(&mut fields, "filter")?, "filter")?,
        created_before: match optional(take(&mut fields, "created_before")?) {
            Value::Null => None,
            v => Some(micros(v, "created_before")?),
        },
        count: match optional(take(&mut fields, "count")?) {
            Value::Null => None,
            v => Some(long(v, "count")?),
        },
        reason: optional_string(take(&mut fields, "reason")?, "reason")?,
    })
}
