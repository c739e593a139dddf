//! Owns the Avro datum machinery every kind shares: writing and reading a datum with the
//! catalogue's schemas, [`DecodeError`], timestamps, and the helpers that take values apart.

use std::io::{Cursor, Read};

use apache_avro::types::Value;
use apache_avro::{AvroResult, Schema};
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::catalogue::{current_schema, ShippedSchema};
use super::TraceEvent;
use crate::error::ValidationErrors;

/// Largest string, byte array or collection length the decoder will allocate for. Events are
/// bounded by the ingest size limit (at most [`crate::MAX_TRACE_BYTES_LIMIT`]), so anything larger
/// is corrupt; refusing it keeps a poison record from exhausting memory.
pub(super) const MAX_DECODE_ALLOCATION: usize = crate::MAX_TRACE_BYTES_LIMIT + 1024 * 1024;

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

/// The Avro half of an event kind, which each kind's file implements: [`TraceEvent`] delegates
/// encoding to `write` and decoding to `from_value`.
pub(super) trait EventCodec {
    /// Writes the datum with `schema`, the kind's current one; `id` is [`TraceEvent::id`] as
    /// hyphenated lower-case text (formatted once, in [`write_datum`], for every kind).
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize>;

    /// The event in a datum resolved to the kind's reader schema, checked against the rules a
    /// producer applies (old or foreign producers may not have).
    fn from_value(value: Value) -> Result<Self, DecodeError>
    where
        Self: Sized;
}

/// Appends the Avro binary datum of `event`, written with the current schema of its kind.
pub(super) fn write_datum(event: &TraceEvent, out: &mut Vec<u8>) {
    let (_, schema, _) = current_schema(event.kind());
    let mut id_buf = Uuid::encode_buffer();
    let id = event.id().hyphenated().encode_lower(&mut id_buf);
    // The wire structs mirror the shipped schemas field by field (pinned by the round-trip
    // tests), so serialization cannot fail at run time.
    event
        .codec()
        .write(id, schema, out)
        .expect("event matches its schema");
}

/// Reads one datum written with `writer`, resolved to the current schema of its kind; the whole
/// of `datum` must be that one datum.
pub(super) fn read_datum(writer: ShippedSchema, datum: &[u8]) -> Result<Value, DecodeError> {
    let reader = ShippedSchema::current(writer.file().kind);
    // apache-avro reads a string or union cut off by end-of-input as null instead of failing,
    // so a truncated datum could decode "successfully" with fields missing. One sentinel byte
    // after the datum exposes that: a complete datum leaves it unread, a truncated one eats it.
    let mut input = Cursor::new(datum).chain(&[0u8][..]);
    let reader_schema = (reader.fingerprint() != writer.fingerprint()).then_some(reader.schema());
    let value = apache_avro::from_avro_datum(writer.schema(), &mut input, reader_schema)
        .map_err(|e| DecodeError::Avro(e.to_string()))?;
    let (cursor, sentinel) = input.into_inner();
    let unread = datum.len() - cursor.position() as usize + sentinel.len();
    match unread {
        0 => Err(DecodeError::Avro("datum is truncated".to_owned())),
        1 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n - 1)),
    }
}

/// A datum whose shape is not its schema's.
pub(super) fn shape(msg: impl Into<String>) -> DecodeError {
    DecodeError::Avro(msg.into())
}

/// Takes the named field out of a record's field list.
pub(super) fn take(fields: &mut [(String, Value)], name: &str) -> Result<Value, DecodeError> {
    fields
        .iter_mut()
        .find(|(n, _)| n == name)
        .map(|(_, v)| std::mem::replace(v, Value::Null))
        .ok_or_else(|| shape(format!("missing field {name}")))
}

pub(super) fn record(value: Value) -> Result<Vec<(String, Value)>, DecodeError> {
    match value {
        Value::Record(fields) => Ok(fields),
        other => Err(shape(format!("expected a record, got {other:?}"))),
    }
}

pub(super) fn string(value: Value, name: &str) -> Result<String, DecodeError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(shape(format!("field {name} is not a string"))),
    }
}

pub(super) fn optional_string(value: Value, name: &str) -> Result<Option<String>, DecodeError> {
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

pub(super) fn uuid(value: Value) -> Result<Uuid, DecodeError> {
    match value {
        Value::Uuid(u) => Ok(u),
        Value::String(s) => Uuid::parse_str(&s).map_err(|e| shape(format!("bad uuid: {e}"))),
        _ => Err(shape("field id is not a uuid")),
    }
}

pub(super) fn micros(value: Value, name: &str) -> Result<DateTime<Utc>, DecodeError> {
    match value {
        Value::TimestampMicros(m) | Value::Long(m) => Ok(from_micros(m)),
        _ => Err(shape(format!("field {name} is not a timestamp"))),
    }
}

pub(super) fn long(value: Value, name: &str) -> Result<i64, DecodeError> {
    match value {
        Value::Long(v) => Ok(v),
        Value::Int(v) => Ok(i64::from(v)),
        _ => Err(shape(format!("field {name} is not a long"))),
    }
}

pub(super) fn int(value: Value, name: &str) -> Result<i32, DecodeError> {
    match value {
        Value::Int(v) => Ok(v),
        _ => Err(shape(format!("field {name} is not an int"))),
    }
}

pub(super) fn array(value: Value, name: &str) -> Result<Vec<Value>, DecodeError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(shape(format!("field {name} is not an array"))),
    }
}

/// The value of an optional field: a union's branch, or the value itself.
pub(super) fn optional(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}
