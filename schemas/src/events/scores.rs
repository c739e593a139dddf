//! Owns `ScoreRecorded` and `ScoreRetracted` (`avro/score_*.v1.avsc`): a trace's scores, keyed
//! `<trace id>/score/<name>` and partitioned with the trace.

use apache_avro::types::Value;
use apache_avro::{AvroResult, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::codec::{
    micros, optional_string, record, shape, string, take, to_micros, uuid, DecodeError, EventCodec,
};

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

/// The Kafka key of the score `name` of trace `trace_id`.
pub fn score_key(trace_id: &Uuid, name: &str) -> String {
    format!("{trace_id}/score/{name}")
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

impl EventCodec for ScoreRecorded {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let wire = ScoreWire {
            trace_id: id,
            name: &self.name,
            value: self.value,
            source: self.source.as_deref(),
            comment: self.comment.as_deref(),
            recorded_at: to_micros(&self.recorded_at),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<ScoreRecorded, DecodeError> {
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
}

impl EventCodec for ScoreRetracted {
    fn write(&self, id: &str, schema: &Schema, out: &mut Vec<u8>) -> AvroResult<usize> {
        let wire = RetractedWire {
            trace_id: id,
            name: &self.name,
            retracted_at: to_micros(&self.retracted_at),
        };
        apache_avro::write_avro_datum_ref(schema, &wire, out)
    }

    fn from_value(value: Value) -> Result<ScoreRetracted, DecodeError> {
        let mut fields = record(value)?;
        let retraction = ScoreRetracted {
            trace_id: uuid(take(&mut fields, "trace_id")?)?,
            name: string(take(&mut fields, "name")?, "name")?,
            retracted_at: micros(take(&mut fields, "retracted_at")?, "retracted_at")?,
        };
        crate::score::check_name(&retraction.name).map_err(DecodeError::Invalid)?;
        Ok(retraction)
    }
}
