//! The `meta` of a trace made from a span: what makes it findable with the list's filters
//! (`meta.gen_ai.request.model=…`, `meta.otel.trace_id=…`, `tag=…`) and the messages kept whole.
//!
//! Key order matters: only the first 256 scalar leaves of `meta` are indexed for filters
//! (`tunix_schemas::facets`), so the short, filterable keys come first and the messages last.
//!
//! ```json
//! {"tags": [...],                       // OpenInference tag.tags, when present
//!  "gen_ai": {"operation": "chat", "provider": "openai",
//!             "request": {"model": "...", "temperature": 0.2, ...every gen_ai.request.* scalar},
//!             "response": {"model": "...", "id": "...", "finish_reasons": ["stop"]},
//!             "conversation": {"id": "..."},
//!             "usage": {"input_tokens": 21, "output_tokens": 7, "cache_read_input_tokens": 0,
//!                       "cache_creation_input_tokens": 0, "reasoning_tokens": 12}},
//!  "service": {"name": "..."},
//!  "otel": {"trace_id": "<32 hex>", "span_id": "<16 hex>", "parent_span_id": "<16 hex>",
//!           "name": "chat gpt-4o", "kind": "client", "start_time": "...", "end_time": "...",
//!           "duration_ms": 812.5, "status": {"code": "ok"}, "scope": {"name": "...", "version": "..."},
//!           "convention": "gen_ai", "has_reasoning": true,
//!           "messages": {"system": [...], "input": [...], "output": [...]}}}
//! ```

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::messages::Conversation;
use super::proto::{InstrumentationScope, Span};
use super::values::{hex, scalar_text, to_json, Attrs};

/// Which convention identified the span as an inference span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// `gen_ai.operation.name` in `chat`, `generate_content`, `text_completion`.
    #[serde(rename = "gen_ai")]
    GenAi,
    /// `openinference.span.kind=LLM`.
    OpenInference,
    /// Traceloop / OpenLLMetry's `llm.request.type`.
    Traceloop,
}

/// The `meta` of a trace made from a span, serialized by [`tunix_schemas::Meta::serialized`]:
/// structs and `serde_json` values only, so no key is ever written twice.
#[derive(Serialize)]
pub struct Document<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Json>,
    gen_ai: GenAi,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Service<'a>>,
    otel: Otel<'a>,
}

#[derive(Serialize)]
struct Service<'a> {
    name: &'a str,
}

#[derive(Serialize, Default)]
struct GenAi {
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    request: Map<String, Json>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    response: Map<String, Json>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    conversation: Map<String, Json>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    usage: Map<String, Json>,
}

#[derive(Serialize)]
struct Otel<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: &'a str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    status: Map<String, Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Scope<'a>>,
    convention: Convention,
    has_reasoning: bool,
    messages: Messages<'a>,
}

#[derive(Serialize)]
struct Scope<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    version: &'a str,
}

#[derive(Serialize)]
struct Messages<'a> {
    #[serde(skip_serializing_if = "<[Json]>::is_empty")]
    system: &'a [Json],
    input: &'a [Json],
    output: &'a [Json],
}

/// Where a span came from besides itself.
pub struct Origin<'a> {
    /// The resource's `service.name`.
    pub service_name: Option<&'a str>,
    /// The instrumentation scope.
    pub scope: Option<&'a InstrumentationScope>,
}

fn time(nanos: u64) -> Option<String> {
    if nanos == 0 {
        return None;
    }
    let t = DateTime::from_timestamp_nanos(i64::try_from(nanos).ok()?);
    Some(t.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

fn kind(k: i32) -> &'static str {
    match k {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn put_int(map: &mut Map<String, Json>, key: &str, attrs: Attrs<'_>, from: &[&str]) {
    if let Some(n) = attrs.first_int(from) {
        map.insert(key.to_owned(), n.into());
    }
}

fn put_str(map: &mut Map<String, Json>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

/// `gen_ai` from the attributes of every convention (first found wins, in the order listed).
fn gen_ai(attrs: Attrs<'_>, c: &Conversation, convention: Convention) -> GenAi {
    let mut g = GenAi {
        operation: attrs
            .str("gen_ai.operation.name")
            .map(str::to_owned)
            .or_else(|| attrs.get("llm.request.type").and_then(scalar_text))
            .or_else(|| (convention == Convention::OpenInference).then(|| "chat".to_owned())),
        provider: attrs
            .first_str(&[
                "gen_ai.provider.name",
                "gen_ai.system",
                "llm.provider",
                "llm.system",
            ])
            .map(str::to_owned),
        ..GenAi::default()
    };
    // Every gen_ai.request.* scalar (temperature, max_tokens, ...), then the model's other names.
    for (rest, v) in attrs.with_prefix("gen_ai.request.") {
        if let Some(v) = v.value.as_ref() {
            if !rest.contains('.') && rest != "model" {
                g.request.insert(rest.to_owned(), to_json(v));
            }
        }
    }
    let invocation_model = attrs
        .str("llm.invocation_parameters")
        .and_then(|p| serde_json::from_str::<Json>(p).ok())
        .and_then(|p| p.get("model").and_then(Json::as_str).map(str::to_owned));
    let request_model = attrs
        .str("gen_ai.request.model")
        .map(str::to_owned)
        .or(invocation_model)
        .or_else(|| attrs.str("llm.model_name").map(str::to_owned));
    if let Some(m) = request_model {
        g.request.insert("model".into(), m.into());
    }
    put_str(
        &mut g.response,
        "model",
        attrs.first_str(&["gen_ai.response.model", "llm.model_name"]),
    );
    // OpenInference keeps the response id only in the raw response (`output.value`).
    let raw_id = || {
        let raw = attrs.str("output.value").filter(|v| v.starts_with('{'))?;
        let raw: Json = serde_json::from_str(raw).ok()?;
        raw.get("id").and_then(Json::as_str).map(str::to_owned)
    };
    match attrs.str("gen_ai.response.id") {
        Some(id) => put_str(&mut g.response, "id", Some(id)),
        None if convention == Convention::OpenInference => {
            put_str(&mut g.response, "id", raw_id().as_deref())
        }
        None => {}
    }
    let reasons = match attrs.json("gen_ai.response.finish_reasons") {
        Some(Json::Array(r)) => r,
        Some(Json::String(s)) => vec![Json::String(s)],
        _ => c
            .output
            .iter()
            .filter_map(|m| m.get("finish_reason").cloned())
            .collect(),
    };
    if !reasons.is_empty() {
        g.response
            .insert("finish_reasons".into(), Json::Array(reasons));
    }
    put_str(
        &mut g.conversation,
        "id",
        attrs.first_str(&["gen_ai.conversation.id", "session.id"]),
    );
    let u = &mut g.usage;
    put_int(
        u,
        "input_tokens",
        attrs,
        &[
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
        ],
    );
    put_int(
        u,
        "output_tokens",
        attrs,
        &[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ],
    );
    put_int(
        u,
        "total_tokens",
        attrs,
        &[
            "gen_ai.usage.total_tokens",
            "llm.usage.total_tokens",
            "llm.token_count.total",
        ],
    );
    put_int(
        u,
        "cache_read_input_tokens",
        attrs,
        &[
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "llm.token_count.prompt_details.cache_read",
        ],
    );
    put_int(
        u,
        "cache_creation_input_tokens",
        attrs,
        &[
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
        ],
    );
    put_int(
        u,
        "reasoning_tokens",
        attrs,
        &[
            "gen_ai.usage.reasoning.output_tokens",
            "llm.token_count.completion_details.reasoning",
            "gen_ai.usage.reasoning_tokens",
        ],
    );
    g
}

/// The `meta` of a trace made from `span`.
pub fn build<'a>(
    span: &'a Span,
    origin: &Origin<'a>,
    convention: Convention,
    c: &'a Conversation,
    has_reasoning: bool,
) -> Document<'a> {
    let attrs = Attrs(&span.attributes);
    let status = span.status.as_ref();
    let mut status_map = Map::new();
    status_map.insert(
        "code".into(),
        match status.map_or(0, |s| s.code) {
            1 => "ok",
            2 => "error",
            _ => "unset",
        }
        .into(),
    );
    if let Some(s) = status.filter(|s| !s.message.is_empty()) {
        status_map.insert("message".into(), s.message.clone().into());
    }
    let duration_ms = (span.end_time_unix_nano >= span.start_time_unix_nano
        && span.start_time_unix_nano > 0)
        .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);
    Document {
        tags: match attrs.json("tag.tags") {
            Some(t @ Json::Array(_)) => Some(t),
            _ => None,
        },
        gen_ai: gen_ai(attrs, c, convention),
        service: origin.service_name.map(|name| Service { name }),
        otel: Otel {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
            name: &span.name,
            kind: kind(span.kind),
            start_time: time(span.start_time_unix_nano),
            end_time: time(span.end_time_unix_nano),
            duration_ms,
            status: status_map,
            scope: origin.scope.filter(|s| !s.name.is_empty()).map(|s| Scope {
                name: &s.name,
                version: &s.version,
            }),
            convention,
            has_reasoning,
            messages: Messages {
                system: &c.system,
                input: &c.input,
                output: &c.output,
            },
        },
    }
}
