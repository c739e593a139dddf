//! The Parquet export: one file with typed columns, written row group by row group so memory
//! stays bounded whatever the dataset's size.
//!
//! | column | type |
//! | --- | --- |
//! | `id` | string (the trace id) |
//! | `created_at` | timestamp (microseconds, UTC) |
//! | `trace_version`, `prompt`, `final_answer` | string |
//! | `steps` | list of struct `{i: int64, type: string, content: string}`, in stored order |
//! | `meta` | string, nullable: the trace's `meta` as JSON text, exactly as submitted |
//! | `scores` | list of struct `{name: string, value: double, source: string (nullable), recorded_at: timestamp}`: the frozen scores |
//! | `split` | string, `train` or `eval` |
//!
//! Pages are zstd-compressed; pandas, polars, DuckDB and Hugging Face `datasets` read the file
//! without options.

use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// Rows per row group.
const ROWS_PER_GROUP: usize = 10_000;
/// Text bytes that close a row group early (long traces).
const BYTES_PER_GROUP: usize = 32 * 1024 * 1024;

/// The part of a stored payload this export reads.
#[derive(Deserialize)]
pub struct ParquetTrace<'a> {
    /// The prompt.
    pub prompt: String,
    /// The final answer.
    pub final_answer: String,
    /// The steps, in stored order.
    pub steps: Vec<ParquetStep>,
    /// `meta` as its exact text.
    #[serde(borrow, default)]
    pub meta: Option<&'a RawValue>,
}

/// One step.
#[derive(Deserialize)]
pub struct ParquetStep {
    /// Its index.
    pub i: i64,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its content.
    pub content: String,
}

/// A frozen score as the dataset stores it (`{name: {value, source, recorded_at}}`).
#[derive(Deserialize)]
struct StoredScore {
    value: f64,
    source: Option<String>,
    recorded_at: DateTime<Utc>,
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn step_fields() -> Fields {
    Fields::from(vec![
        Field::new("i", DataType::Int64, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ])
}

fn score_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("source", DataType::Utf8, true),
        Field::new("recorded_at", timestamp(), false),
    ])
}

/// Builds the file: push rows, take the bytes written so far, finish.
pub struct ParquetRows {
    id: StringBuilder,
    created_at: TimestampMicrosecondBuilder,
    trace_version: StringBuilder,
    prompt: StringBuilder,
    final_answer: StringBuilder,
    steps: ListBuilder<StructBuilder>,
    meta: StringBuilder,
    scores: ListBuilder<StructBuilder>,
    split: StringBuilder,
    rows: usize,
    bytes: usize,
    writer: Option<ArrowWriter<Vec<u8>>>,
}

impl Default for ParquetRows {
    fn default() -> Self {
        ParquetRows::new()
    }
}

impl ParquetRows {
    /// An empty file.
    pub fn new() -> ParquetRows {
        ParquetRows {
            id: StringBuilder::new(),
            created_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            trace_version: StringBuilder::new(),
            prompt: StringBuilder::new(),
            final_answer: StringBuilder::new(),
            steps: ListBuilder::new(StructBuilder::from_fields(step_fields(), 0)).with_field(
                Field::new("element", DataType::Struct(step_fields()), false),
            ),
            meta: StringBuilder::new(),
            scores: ListBuilder::new(StructBuilder::from_fields(score_fields(), 0)).with_field(
                Field::new("element", DataType::Struct(score_fields()), false),
            ),
            split: StringBuilder::new(),
            rows: 0,
            bytes: 0,
            writer: None,
        }
    }

    /// Adds one member's row; `scores` is the member's frozen scores object.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        id: &Uuid,
        created_at: &DateTime<Utc>,
        trace_version: &str,
        trace: &ParquetTrace<'_>,
        scores: &str,
        split: &str,
    ) -> Result<(), String> {
        self.id.append_value(id.to_string());
        self.created_at.append_value(created_at.timestamp_micros());
        self.trace_version.append_value(trace_version);
        self.prompt.append_value(&trace.prompt);
        self.final_answer.append_value(&trace.final_answer);
        let steps = self.steps.values();
        for s in &trace.steps {
            steps
                .field_builder::<Int64Builder>(0)
                .expect("i")
                .append_value(s.i);
            steps
                .field_builder::<StringBuilder>(1)
                .expect("type")
                .append_value(&s.kind);
            steps
                .field_builder::<StringBuilder>(2)
                .expect("content")
                .append_value(&s.content);
            steps.append(true);
            self.bytes += s.content.len() + s.kind.len();
        }
        self.steps.append(true);
        match trace.meta {
            Some(m) if m.get() != "null" => {
                self.meta.append_value(m.get());
                self.bytes += m.get().len();
            }
            _ => self.meta.append_null(),
        }
        let parsed: std::collections::BTreeMap<String, StoredScore> =
            serde_json::from_str(scores).map_err(|e| format!("frozen scores: {e}"))?;
        let list = self.scores.values();
        for (name, s) in &parsed {
            list.field_builder::<StringBuilder>(0)
                .expect("name")
                .append_value(name);
            list.field_builder::<Float64Builder>(1)
                .expect("value")
                .append_value(s.value);
            list.field_builder::<StringBuilder>(2)
                .expect("source")
                .append_option(s.source.as_deref());
            list.field_builder::<TimestampMicrosecondBuilder>(3)
                .expect("recorded_at")
                .append_value(s.recorded_at.timestamp_micros());
            list.append(true);
        }
        self.scores.append(true);
        self.split.append_value(split);
        self.rows += 1;
        self.bytes += trace.prompt.len() + trace.final_answer.len();
        if self.rows >= ROWS_PER_GROUP || self.bytes >= BYTES_PER_GROUP {
            self.write_group()?;
        }
        Ok(())
    }

    fn batch(&mut self) -> Result<RecordBatch, String> {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(self.id.finish())),
            ("created_at", Arc::new(self.created_at.finish())),
            ("trace_version", Arc::new(self.trace_version.finish())),
            ("prompt", Arc::new(self.prompt.finish())),
            ("final_answer", Arc::new(self.final_answer.finish())),
            ("steps", Arc::new(self.steps.finish())),
            ("meta", Arc::new(self.meta.finish())),
            ("scores", Arc::new(self.scores.finish())),
            ("split", Arc::new(self.split.finish())),
        ];
        RecordBatch::try_from_iter(columns).map_err(|e| e.to_string())
    }

    /// Writes the rows pushed so far as one row group.
    fn write_group(&mut self) -> Result<(), String> {
        let batch = self.batch()?;
        self.rows = 0;
        self.bytes = 0;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level")))
                    .set_created_by("tunix-rt".into())
                    .build();
                self.writer.insert(
                    ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
                        .map_err(|e| e.to_string())?,
                )
            }
        };
        if batch.num_rows() > 0 {
            writer.write(&batch).map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| e.to_string())
    }

    /// The file's bytes written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        self.writer
            .as_mut()
            .map(|w| std::mem::take(w.inner_mut()))
            .unwrap_or_default()
    }

    /// Writes the last row group and the footer; returns the remaining bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        if self.rows > 0 || self.writer.is_none() {
            self.write_group()?;
        }
        let writer = self.writer.take().expect("a writer after write_group");
        // Writes the footer; returns what is left of the file (earlier bytes were taken).
        writer.into_inner().map_err(|e| e.to_string())
    }
}
