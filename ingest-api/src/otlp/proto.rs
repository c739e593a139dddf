//! The OTLP trace messages `POST /v1/traces` reads and answers, written out with `prost`'s
//! derive: the subset of `opentelemetry/proto/collector/trace/v1/trace_service.proto`,
//! `trace/v1/trace.proto`, `common/v1/common.proto`, `resource/v1/resource.proto` and
//! `google/rpc/status.proto` we use, with the same field numbers and wire types (OTLP 1.x).
//!
//! Fields we do not read (links, trace state, flags, dropped counts, schema URLs) are left out:
//! protobuf decoding skips unknown fields, so requests that carry them decode the same. An
//! `AnyValue` with no value set decodes to `value: None` (read as JSON `null`), never an error.
//! Nesting deeper than prost's recursion limit (100) is a decode error, so a bomb of nested
//! arrays costs a 400, not a stack.

/// `ExportTraceServiceRequest`: what an exporter sends.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    /// Spans grouped by the resource that produced them.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// Spans of one resource (a service).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    /// The resource, e.g. `service.name`.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Spans grouped by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

/// A resource's attributes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// `service.name` and the like.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// Spans of one instrumentation scope (library).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    /// The instrumentation library.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// Its spans.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

/// The instrumentation library that produced some spans.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// e.g. `opentelemetry.instrumentation.openai_v2`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// One span.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// 8 bytes, or empty for a root span.
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    /// e.g. `chat gpt-4o`.
    #[prost(string, tag = "5")]
    pub name: String,
    /// `SpanKind` (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    #[prost(int32, tag = "6")]
    pub kind: i32,
    /// Start, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    /// End, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    /// The span's attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Its events (e.g. `gen_ai.client.inference.operation.details`).
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    /// Its status.
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// A span event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// When, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    /// e.g. `gen_ai.choice`.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The event's attributes.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

/// A span's status.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// Why, for errors.
    #[prost(string, tag = "2")]
    pub message: String,
    /// `StatusCode` (0 unset, 1 ok, 2 error).
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// An attribute.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Its name, e.g. `gen_ai.request.model`.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its value; `None` when the producer sent none.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// An attribute value: one of the variants, or none at all (an empty `AnyValue`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

/// The variants of [`AnyValue`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// `string_value`.
    #[prost(string, tag = "1")]
    String(String),
    /// `bool_value`.
    #[prost(bool, tag = "2")]
    Bool(bool),
    /// `int_value`.
    #[prost(int64, tag = "3")]
    Int(i64),
    /// `double_value`.
    #[prost(double, tag = "4")]
    Double(f64),
    /// `array_value`.
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    /// `kvlist_value`.
    #[prost(message, tag = "6")]
    Kvlist(KeyValueList),
    /// `bytes_value`.
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
}

/// A list of values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// The elements.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// A map of values, as a list of attributes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    /// The entries.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `ExportTraceServiceResponse`: the 200 answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {
    /// Set when some spans were refused, or with a message when some were not stored.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

/// `ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTracePartialSuccess {
    /// Spans refused (not stored, not to be retried).
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    /// Why, for a human.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`: the body of every error answer (4xx, 5xx).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A gRPC code (3 invalid argument, 16 unauthenticated, 14 unavailable, ...).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, for the developer.
    #[prost(string, tag = "2")]
    pub message: String,
}
