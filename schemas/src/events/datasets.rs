//! Owns the dataset events (`avro/dataset_*.v1.avsc`): `DatasetMembers` chunks, then the
//! `DatasetCreated` that seals them, or `DatasetDeleted`; all in the dataset key's partition.

use apache_avro::types::Value;
use apache_avro::{AvroResult, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::codec::{
    array, int, long, micros, optional_string, record, shape, string, take, to_micros, uuid,
    DecodeError, EventCodec,
};

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

/// The Kafka key of dataset `name`@`version`'s definition and deletion; its members' keys extend
/// it, and every event of the dataset goes to the partition of this key
/// ([`key_partition`](super::key_partition)).
pub fn dataset_key(name: &str, version: &str) -> String {
    format!("dataset/{name}/{version}")
}

fn ser_micros<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(to_micros(t))
}

/// The fields every dataset event starts with: build id, name and version (checked).
fn dataset_head(fields: &mut [(String, Value)]) -> Result<(Uuid, String, String), DecodeError> {
    let build_id = uuid(take(fields, "build_id")?)?;
    let name = string(take(fields, "name")?, "name")?;
    let version = string(take(fields, "version")?, "version")?;
    crate::dataset::check_name_version(&name, &version).map_err(DecodeError::Invalid)?;
    Ok((build_id, name, version))
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

impl EventCodec for DatasetMembers {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let members = self.members.iter().map(|m| MemberWire {
            trace_id: m.trace_id.to_string(),
            eval: m.eval,
            scores: &m.scores,
        });
        let wire = MembersWire {
            build_id: id,
            name: &self.name,
            version: &self.version,
            chunk: self.chunk,
            first_position: self.first_position,
            members: members.collect(),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<DatasetMembers, DecodeError> {
        let mut fields = record(value)?;
        let (build_id, name, version) = dataset_head(&mut fields)?;
        let chunk = int(take(&mut fields, "chunk")?, "chunk")?;
        let first_position = long(take(&mut fields, "first_position")?, "first_position")?;
        let members = array(take(&mut fields, "members")?, "members")?
            .into_iter()
            .map(member_from_value)
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
}

/// One entry of a chunk's `members`.
fn member_from_value(value: Value) -> Result<DatasetMember, DecodeError> {
    let mut f = record(value)?;
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

impl EventCodec for DatasetCreated {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let wire = CreatedWire {
            build_id: id,
            name: &self.name,
            version: &self.version,
            definition: &self.definition,
            member_count: self.member_count,
            eval_count: self.eval_count,
            chunks: self.chunks,
            digest: &self.digest,
            created_at: to_micros(&self.created_at),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<DatasetCreated, DecodeError> {
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
}

#[derive(Serialize)]
struct DatasetDeletedWire<'a> {
    build_id: &'a str,
    name: &'a str,
    version: &'a str,
    deleted_at: i64,
}

impl EventCodec for DatasetDeleted {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let wire = DatasetDeletedWire {
            build_id: id,
            name: &self.name,
            version: &self.version,
            deleted_at: to_micros(&self.deleted_at),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<DatasetDeleted, DecodeError> {
        let mut fields = record(value)?;
        let (build_id, name, version) = dataset_head(&mut fields)?;
        Ok(DatasetDeleted {
            build_id,
            name,
            version,
            deleted_at: micros(take(&mut fields, "deleted_at")?, "deleted_at")?,
        })
    }
}
