//! Owns the catalogue: every shipped schema file (kind, version, fingerprints current and legacy,
//! built-in registry id) and the parsed writer schemas decoding resolves against. It is not a
//! Schema Registry (no server, no ids handed out); see the glossary in docs/ARCHITECTURE.md.

use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;

use super::codec::MAX_DECODE_ALLOCATION;

/// Schema ids of the built-in registry. Reserved: far above the ids a registry hands out (they
/// count up from 1, or from 100001), so an event framed with a built-in id never means another
/// schema after a move to an external registry. ingest-api refuses a registry that assigns one of
/// them to a different schema.
pub const BUILTIN_ID_RANGE: std::ops::RangeInclusive<i32> = 1_000_000_001..=1_000_099_999;

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

    pub(super) fn index(self) -> usize {
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
        text: include_str!("../../avro/trace_submitted.v1.avsc"),
        kind: EventKind::Submitted,
        version: 1,
        builtin_id: 1000000001,
    },
    SchemaFile {
        file: "trace_submitted.v2.avsc",
        text: include_str!("../../avro/trace_submitted.v2.avsc"),
        kind: EventKind::Submitted,
        version: 2,
        builtin_id: 1000000002,
    },
    SchemaFile {
        file: "trace_deleted.v1.avsc",
        text: include_str!("../../avro/trace_deleted.v1.avsc"),
        kind: EventKind::Deleted,
        version: 1,
        builtin_id: 1000000003,
    },
    SchemaFile {
        file: "score_recorded.v1.avsc",
        text: include_str!("../../avro/score_recorded.v1.avsc"),
        kind: EventKind::ScoreRecorded,
        version: 1,
        builtin_id: 1000000004,
    },
    SchemaFile {
        file: "score_retracted.v1.avsc",
        text: include_str!("../../avro/score_retracted.v1.avsc"),
        kind: EventKind::ScoreRetracted,
        version: 1,
        builtin_id: 1000000005,
    },
    SchemaFile {
        file: "dataset_members.v1.avsc",
        text: include_str!("../../avro/dataset_members.v1.avsc"),
        kind: EventKind::DatasetMembers,
        version: 1,
        builtin_id: 1000000006,
    },
    SchemaFile {
        file: "dataset_created.v1.avsc",
        text: include_str!("../../avro/dataset_created.v1.avsc"),
        kind: EventKind::DatasetCreated,
        version: 1,
        builtin_id: 1000000007,
    },
    SchemaFile {
        file: "dataset_deleted.v1.avsc",
        text: include_str!("../../avro/dataset_deleted.v1.avsc"),
        kind: EventKind::DatasetDeleted,
        version: 1,
        builtin_id: 1000000008,
    },
    SchemaFile {
        file: "erasure_requested.v1.avsc",
        text: include_str!("../../avro/erasure_requested.v1.avsc"),
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

/// The parsed shipped schemas, built once.
struct Catalogue {
    all: Vec<Registered>,
    /// Per kind (`EventKind::index`): index into `all` of its current (highest-version) schema.
    current: [usize; EventKind::ALL.len()],
}

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    // Every decode resolves its writer schema here first, so the limit is in place before any.
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
    Catalogue {
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
    CATALOGUE
        .all
        .iter()
        .map(|r| (r.file.file, r.fingerprint))
        .collect()
}

/// The legacy fingerprints (apache-avro's, written before 2026-11) of the schema files shipped
/// then; still accepted by [`TraceEvent::decode`](super::TraceEvent::decode).
pub fn legacy_schema_fingerprints() -> Vec<(&'static str, [u8; 8])> {
    CATALOGUE
        .all
        .iter()
        .filter_map(|r| Some((r.file.file, r.legacy_fingerprint?)))
        .collect()
}

/// The schema producers write for `kind` today, with its file name and fingerprint.
pub fn current_schema(kind: EventKind) -> (&'static str, &'static Schema, [u8; 8]) {
    let r = &CATALOGUE.all[CATALOGUE.current[kind.index()]];
    (r.file.file, &r.schema, r.fingerprint)
}

/// One shipped schema file, as a handle: what a registry id or a fingerprint resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShippedSchema(usize);

impl ShippedSchema {
    /// Every shipped schema, in [`SCHEMA_FILES`] order.
    pub fn all() -> impl Iterator<Item = ShippedSchema> {
        (0..CATALOGUE.all.len()).map(ShippedSchema)
    }

    /// The schema producers write for `kind` today.
    pub fn current(kind: EventKind) -> ShippedSchema {
        ShippedSchema(CATALOGUE.current[kind.index()])
    }

    /// The schema with this built-in registry id.
    pub fn by_builtin_id(id: i32) -> Option<ShippedSchema> {
        CATALOGUE
            .all
            .iter()
            .position(|r| r.file.builtin_id == id)
            .map(ShippedSchema)
    }

    /// The schema with this specification fingerprint (little-endian bytes, as framed).
    pub fn by_fingerprint(fingerprint: &[u8]) -> Option<ShippedSchema> {
        CATALOGUE
            .all
            .iter()
            .position(|r| r.fingerprint == fingerprint)
            .map(ShippedSchema)
    }

    /// The schema a single-object frame's fingerprint names: the specification's, else (events
    /// framed before 2026-11) the legacy one.
    pub(super) fn by_framed_fingerprint(fingerprint: &[u8]) -> Option<ShippedSchema> {
        Self::by_fingerprint(fingerprint).or_else(|| {
            CATALOGUE
                .all
                .iter()
                .position(|r| r.legacy_fingerprint.is_some_and(|l| l == fingerprint))
                .map(ShippedSchema)
        })
    }

    /// The shipped schema a registry's text denotes: equal Parsing Canonical Forms, so the
    /// registry may reformat or drop docs. `None` for text that is not one of ours.
    pub fn from_schema_text(text: &str) -> Option<ShippedSchema> {
        let canonical = crate::canonical::parsing_canonical_form(text).ok()?;
        Self::by_fingerprint(&crate::canonical::crc64_avro(canonical.as_bytes()).to_le_bytes())
    }

    fn registered(self) -> &'static Registered {
        &CATALOGUE.all[self.0]
    }

    /// The file it was shipped as.
    pub fn file(self) -> &'static SchemaFile {
        self.registered().file
    }

    /// The specification fingerprint, little-endian as single-object frames carry it.
    pub fn fingerprint(self) -> [u8; 8] {
        self.registered().fingerprint
    }

    /// The parsed schema.
    pub(super) fn schema(self) -> &'static Schema {
        &self.registered().schema
    }
}
