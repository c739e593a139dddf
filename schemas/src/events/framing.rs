//! Owns the frames around a datum: Confluent Schema Registry wire format (`00`, 4-byte big-endian
//! schema id) and Avro single-object encoding (`C3 01`, 8-byte CRC-64-AVRO fingerprint).
//!
//! Records carry no Kafka headers (the frame says what a record is), except [`FINGERPRINT_HEADER`]
//! on records framed with an external registry's ids.

use super::catalogue::{EventKind, ShippedSchema, BUILTIN_ID_RANGE};
use super::codec::{self, DecodeError};
use super::TraceEvent;

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
        codec::write_datum(event, &mut out);
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

/// The writer schema a framed value names and the datum after its header. Built-in ids resolve
/// here; other Confluent ids through `external`; fingerprints may be legacy (before 2026-11).
pub(super) fn unframe(
    bytes: &[u8],
    external: impl Fn(i32) -> Option<ShippedSchema>,
) -> Result<(ShippedSchema, &[u8]), DecodeError> {
    match bytes.first() {
        Some(&CONFLUENT_MAGIC) => {
            let id = confluent_schema_id(bytes).ok_or(DecodeError::TooShort(bytes.len()))?;
            let schema = if BUILTIN_ID_RANGE.contains(&id) {
                ShippedSchema::by_builtin_id(id)
            } else {
                external(id)
            };
            let schema =
                schema.ok_or_else(|| DecodeError::UnknownSchema(format!("schema id {id}")))?;
            Ok((schema, &bytes[CONFLUENT_HEADER_LEN..]))
        }
        Some(0xC3) if bytes.len() >= 2 && bytes[..2] == SINGLE_OBJECT_MAGIC => {
            if bytes.len() < HEADER_LEN {
                return Err(DecodeError::TooShort(bytes.len()));
            }
            let fingerprint = &bytes[2..HEADER_LEN];
            let schema = ShippedSchema::by_framed_fingerprint(fingerprint).ok_or_else(|| {
                DecodeError::UnknownSchema(format!("fingerprint {}", hex(fingerprint)))
            })?;
            Ok((schema, &bytes[HEADER_LEN..]))
        }
        _ if bytes.len() < 2 => Err(DecodeError::TooShort(bytes.len())),
        _ => Err(DecodeError::BadMagic),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
