//! Owns `ErasureRequested` (`avro/erasure_requested.v1.avsc`): the audit record of an erasure,
//! keyed `erasure/<id>`. (The Kafka tombstones an erasure appends are `crate::erasure`'s.)

use apache_avro::types::Value;
use apache_avro::{AvroResult, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::codec::{
    long, micros, optional, optional_string, record, string, take, to_micros, uuid, DecodeError,
    EventCodec,
};

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

impl EventCodec for ErasureRequested {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let wire = ErasureWire {
            id,
            action: &self.action,
            requested_by: &self.requested_by,
            requested_at: to_micros(&self.requested_at),
            trace_id: self.trace_id.map(|t| t.to_string()),
            filter: self.filter.as_deref(),
            created_before: self.created_before.as_ref().map(to_micros),
            count: self.count,
            reason: self.reason.as_deref(),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<ErasureRequested, DecodeError> {
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
}
