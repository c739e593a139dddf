//! # tunix-schemas
//!
//! Owns the contracts every other tunix-rt crate and every downstream consumer depends on, and does
//! no I/O:
//!
//! - [`Trace`]: the reasoning-trace model and its validation rules (the original service's contract), with
//!   FastAPI-shaped errors that carry full paths ([`ValidationErrors`]);
//! - [`parse_batch`]: batch bodies (JSON array or NDJSON), all-or-nothing;
//! - [`TraceEvent`]: the Avro events on the `traces` topic, single-object encoded with the schemas
//!   in `schemas/avro/`;
//! - [`ids`]: how trace ids are chosen and derived from idempotency keys;
//! - [`pg_text`]: how trace strings (NUL included) are kept in PostgreSQL `text` columns;
//! - [`facets`] and [`search`]: what the metadata filters and text search index and look for;
//! - [`score`]: the rules of scores and the original service's `baseline` criteria;
//! - [`dataset`]: dataset definitions, the split, and export rows.

mod batch;
pub mod canonical;
pub mod dataset;
pub mod erasure;
mod error;
mod events;
pub mod facets;
pub mod ids;
mod meta;
pub mod pg_text;
pub mod redact;
pub mod score;
pub mod search;
mod trace;

pub use batch::{parse_batch, parse_batch_redacted, BatchError, BatchFormat, BATCH_MAX_ITEMS};
pub use erasure::{interpret_tombstone, Tombstone, TombstoneMeaning};
pub use error::{ErrorKind, Loc, LocPart, ValidationError, ValidationErrors};
pub use events::{
    confluent_schema_id, current_schema, dataset_key, erasure_key, from_micros, key_partition,
    legacy_schema_fingerprints, partition_for, schema_fingerprints, schema_from_fingerprint_header,
    score_key, to_micros, truncate_to_micros, DatasetCreated, DatasetDeleted, DatasetMember,
    DatasetMembers, DecodeError, Encoder, ErasureRequested, EventKind, Framing, FrozenScore,
    SchemaFile, ScoreRecorded, ScoreRetracted, ShippedSchema, TraceDeleted, TraceEvent,
    TraceSubmitted, BUILTIN_ID_RANGE, CONFLUENT_HEADER_LEN, CONFLUENT_MAGIC, FINGERPRINT_HEADER,
    HEADER_LEN, SCHEMA_FILES, SINGLE_OBJECT_MAGIC,
};
pub use meta::{META_MAX_DEPTH, META_MAX_NUMBER_CHARS};
pub use trace::{
    Meta, Step, Trace, TraceParts, STEPS_MAX, STEP_CONTENT_MAX_CHARS, STEP_TYPE_MAX_CHARS,
    TEXT_MAX_CHARS, TRACE_VERSION_MAX_CHARS,
};

/// The default request-body limit for one trace (`TRACE_MAX_BYTES`), as in the seed: 1 MiB.
pub const DEFAULT_TRACE_MAX_BYTES: usize = 1024 * 1024;

/// The largest `TRACE_MAX_BYTES` a deployment may configure. Decoders refuse larger allocations,
/// so this bound keeps every acknowledged trace decodable downstream.
pub const MAX_TRACE_BYTES_LIMIT: usize = 16 * 1024 * 1024;
