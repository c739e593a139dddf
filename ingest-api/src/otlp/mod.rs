//! OTLP intake: `POST /v1/traces` takes the OpenTelemetry spans LLM applications already emit
//! and stores each inference span as a reasoning trace, through the same validation, redaction
//! and events as `POST /api/traces`.
//!
//! | file | owns |
//! | --- | --- |
//! | [`export`] | the route: encodings, answers (`ExportTraceServiceResponse`, `Status`), the durable ack |
//! | [`proto`] | the OTLP protobuf messages |
//! | [`json`] | OTLP/JSON decoded into them (hex ids, 64-bit integers as strings) |
//! | [`mapping`] | which spans are inference spans, ids, refusals |
//! | [`messages`] | where each convention keeps the messages, read into one shape |
//! | [`chat_shape`] | older chat messages (OpenAI, Anthropic content blocks) converted to semconv parts |
//! | [`flattened`] | OpenInference's and Traceloop's messages spread over indexed attributes |
//! | [`render`] | messages rendered as prompt, steps and final answer |
//! | [`span_meta`] | the trace's `meta` (`gen_ai`, `otel`, `service`, the messages kept whole) |
//! | [`values`] | attribute lookups and `AnyValue` as JSON |

pub mod chat_shape;
pub mod export;
pub mod flattened;
pub mod json;
pub mod mapping;
pub mod messages;
pub mod proto;
pub mod render;
pub mod span_meta;
pub mod values;
