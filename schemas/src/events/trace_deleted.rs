//! Owns `TraceDeleted` (`avro/trace_deleted.v1.avsc`): the deletion of one trace, keyed and
//! partitioned like its submission.

use apache_avro::types::Value;
use apache_avro::{AvroResult, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::codec::{
    micros, optional_string, record, take, to_micros, uuid, DecodeError, EventCodec,
};

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

#[derive(Serialize)]
struct DeletedWire<'a> {
    id: &'a str,
    deleted_at: i64,
    reason: Option<&'a str>,
}

impl EventCodec for TraceDeleted {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let wire = DeletedWire {
            id,
            deleted_at: to_micros(&self.deleted_at),
            reason: self.reason.as_deref(),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<TraceDeleted, DecodeError> {
        let mut fields = record(value)?;
        Ok(TraceDeleted {
            id: uuid(take(&mut fields, "id")?)?,
            deleted_at: micros(take(&mut fields, "deleted_at")?, "deleted_at")?,
            reason: optional_string(take(&mut fields, "reason")?, "reason")?,
        })
    }
}
