//! Owns `TraceSubmitted` (`avro/trace_submitted.v*.avsc`): a trace accepted by ingest-api, and the
//! partition every event of a trace goes to.

use apache_avro::types::Value;
use apache_avro::{AvroResult, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::codec::{
    micros, optional_string, record, shape, string, take, to_micros, uuid, DecodeError, EventCodec,
};
use super::key_partition;
use crate::trace::{Step, Trace, TraceParts};

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

/// The partition of a trace's events among `partitions`: CRC-32 (IEEE) of the trace id's
/// hyphenated lower-case text, modulo the partition count. This is exactly what librdkafka's
/// default partitioner (`consistent_random`) computes for the submission's key, so events keyed
/// otherwise (scores) land in the same partition as the submission they belong to, after it.
pub fn partition_for(trace_id: &Uuid, partitions: i32) -> i32 {
    let mut buf = Uuid::encode_buffer();
    key_partition(trace_id.hyphenated().encode_lower(&mut buf), partitions)
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

impl EventCodec for TraceSubmitted {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let wire = SubmittedWire {
            id,
            created_at: to_micros(&self.created_at),
            trace_version: self.trace.trace_version(),
            prompt: self.trace.prompt(),
            final_answer: self.trace.final_answer(),
            steps: self.trace.steps(),
            meta: self.trace.meta().map(|m| m.as_str()),
            idempotency_key: self.idempotency_key.as_deref(),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<TraceSubmitted, DecodeError> {
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
}
