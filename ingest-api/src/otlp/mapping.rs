//! One OTLP export request mapped to traces: which spans are inference spans, each one's
//! trace (id, prompt, steps, answer, meta), and why any span was refused.
//!
//! - **Inference spans**: `gen_ai.operation.name` in `chat`, `generate_content`,
//!   `text_completion`; else `openinference.span.kind=LLM`; else Traceloop's `llm.request.type`
//!   `chat` or `completion`. Every other span (HTTP, DB, `invoke_agent`, `execute_tool`,
//!   embeddings) is accepted and counted, not stored.
//! - **Ids**: the trace id is the UUIDv5 that `Idempotency-Key: otlp:<trace id hex>:<span id
//!   hex>` gives (`tunix_schemas::ids`), so an exporter's retry lands on the same trace.
//! - **Refused** (counted in `partial_success`, the metric and the log): ids of the wrong length
//!   or all zero; an inference span with no input or no output messages (content capture off);
//!   a message attribute that is not JSON; a trace the rules refuse (prompt or answer over 50,000
//!   characters, over 1,000 steps, `meta` deeper than 64) or larger than `TRACE_MAX_BYTES`.
//!   Nothing is ever truncated.

use std::collections::{BTreeMap, HashSet};

use tunix_schemas::redact::{Redact, TextField};
use tunix_schemas::{ids, ErrorKind, Meta, Step, Trace, TraceParts, ValidationErrors};
use uuid::Uuid;

use super::messages;
use super::proto::{ExportTraceServiceRequest, Span};
use super::render;
use super::span_meta::{self, Convention, Origin};
use super::values::{hex, scalar_text, Attrs};

/// What became of one span; the metric's `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Became a trace (appended once the request's events are acknowledged).
    Stored,
    /// Not an inference span: accepted, not stored.
    NotInference,
    /// The same span twice in one request: stored once.
    Duplicate,
    /// Refused: ids of the wrong length or all zero.
    BadIds,
    /// Refused: an inference span without input or output messages.
    NoContent,
    /// Refused: its messages or its trace break a rule.
    Invalid,
    /// Refused: its trace is over a size limit.
    TooLarge,
    /// Refused: its trace was deleted, and is never stored again (decided by the handler).
    Deleted,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::NotInference => "not_inference",
            Outcome::Duplicate => "duplicate",
            Outcome::BadIds => "bad_ids",
            Outcome::NoContent => "no_content",
            Outcome::Invalid => "invalid",
            Outcome::TooLarge => "too_large",
            Outcome::Deleted => "deleted",
        }
    }

    /// Whether the span counts in `partial_success.rejected_spans`.
    pub fn is_rejection(self) -> bool {
        !matches!(
            self,
            Outcome::Stored | Outcome::NotInference | Outcome::Duplicate
        )
    }
}

/// A trace made from a span.
pub struct SpanTrace {
    /// Its deterministic id.
    pub id: Uuid,
    /// The key it is derived from, `otlp:<trace id>:<span id>` (kept in the event).
    pub key: String,
    /// The validated, redacted trace.
    pub trace: Trace,
}

/// The mapping of one request.
#[derive(Default)]
pub struct Mapped {
    /// Traces to append, in request order.
    pub traces: Vec<SpanTrace>,
    /// How many spans had each outcome (stored ones included).
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Why spans were refused, `<trace id>/<span id>: reason`, in request order.
    pub refusals: Vec<String>,
}

impl Mapped {
    /// Counts one span's outcome.
    pub fn count_one(&mut self, outcome: Outcome) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    /// How many spans had `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// Moves one span from outcome `from` to `to` (a stored span found deleted).
    pub fn move_outcome(&mut self, from: Outcome, to: Outcome) {
        if let Some(n) = self.outcomes.get_mut(&from) {
            *n = n.saturating_sub(1);
        }
        self.count_one(to);
    }

    /// Records a refusal.
    pub fn refuse(&mut self, outcome: Outcome, span: &Span, why: impl std::fmt::Display) {
        self.count_one(outcome);
        self.refusals.push(format!(
            "span {}/{}: {why}",
            hex(&span.trace_id),
            hex(&span.span_id)
        ));
    }
}

/// Which convention makes `span` an inference span, if any.
pub fn convention(attrs: Attrs<'_>) -> Option<Convention> {
    if let Some(op) = attrs.str("gen_ai.operation.name") {
        return matches!(op, "chat" | "generate_content" | "text_completion")
            .then_some(Convention::GenAi);
    }
    if attrs
        .str("openinference.span.kind")
        .is_some_and(|k| k.eq_ignore_ascii_case("llm"))
    {
        return Some(Convention::OpenInference);
    }
    attrs
        .get("llm.request.type")
        .and_then(scalar_text)
        .filter(|t| matches!(t.as_str(), "chat" | "completion"))
        .map(|_| Convention::Traceloop)
}

/// The trace's fields but `meta`, redacted (`redact` sees the same fields as on the JSON API,
/// before validation), and an upper bound of their size as JSON (escapes aside).
fn trace_parts(
    convention: Convention,
    rendered: render::Rendered,
    redact: &mut dyn Redact,
) -> (TraceParts, usize) {
    let render::Rendered {
        mut prompt,
        steps,
        mut final_answer,
        ..
    } = rendered;
    redact.redact(TextField::Prompt, &mut prompt);
    redact.redact(TextField::FinalAnswer, &mut final_answer);
    let mut size = 96 + prompt.len() + final_answer.len();
    let steps: Vec<Step> = steps
        .into_iter()
        .enumerate()
        .map(|(i, (kind, mut content))| {
            redact.redact(TextField::Steps, &mut content);
            size += 40 + kind.len() + content.len();
            Step {
                i: i as i64,
                kind,
                content,
            }
        })
        .collect();
    let parts = TraceParts {
        trace_version: format!("otlp:{}", convention_name(convention)),
        prompt,
        final_answer,
        steps,
        meta: None,
    };
    (parts, size)
}

/// The validated trace. `meta` is serialized and checked in one go ([`Meta::serialized`]), or,
/// when redaction rules apply to `meta`, serialized, redacted and checked as text.
fn validated(
    mut parts: TraceParts,
    meta: &span_meta::Document<'_>,
    redact: &mut dyn Redact,
) -> Result<Trace, ValidationErrors> {
    if redact.wants(TextField::Meta) {
        let mut text = serde_json::to_string(meta).expect("meta serializes");
        redact.redact(TextField::Meta, &mut text);
        parts.meta = Some(text);
        return Trace::from_parts(parts);
    }
    Trace::from_parts_with_meta(parts, Meta::serialized(meta)?)
}

/// Maps every span of `request`. `redact` runs on each trace's text as on the JSON API's.
pub fn map_request(
    request: &ExportTraceServiceRequest,
    redact: &mut dyn Redact,
    trace_max_bytes: usize,
) -> Mapped {
    let mut out = Mapped::default();
    let mut seen = HashSet::new();
    for rs in &request.resource_spans {
        let resource = rs.resource.as_ref().map(|r| Attrs(&r.attributes));
        let service_name = resource.and_then(|r| r.str("service.name"));
        for ss in &rs.scope_spans {
            let origin = Origin {
                service_name,
                scope: ss.scope.as_ref(),
            };
            for span in &ss.spans {
                map_span(span, &origin, redact, trace_max_bytes, &mut seen, &mut out);
            }
        }
    }
    out
}

fn map_span(
    span: &Span,
    origin: &Origin<'_>,
    redact: &mut dyn Redact,
    trace_max_bytes: usize,
    seen: &mut HashSet<Uuid>,
    out: &mut Mapped,
) {
    let attrs = Attrs(&span.attributes);
    let Some(convention) = convention(attrs) else {
        out.count_one(Outcome::NotInference);
        return;
    };
    let ids_ok = span.trace_id.len() == 16
        && span.span_id.len() == 8
        && (span.parent_span_id.is_empty() || span.parent_span_id.len() == 8)
        && span.trace_id.iter().any(|b| *b != 0)
        && span.span_id.iter().any(|b| *b != 0);
    if !ids_ok {
        let why = format!(
            "trace_id must be 16 bytes and span_id 8 (parent_span_id 8 or none), not all zero; got {}, {} and {}",
            span.trace_id.len(),
            span.span_id.len(),
            span.parent_span_id.len()
        );
        return out.refuse(Outcome::BadIds, span, why);
    }
    let key = format!("otlp:{}:{}", hex(&span.trace_id), hex(&span.span_id));
    let id = ids::idempotent_trace_id(&key);
    if !seen.insert(id) {
        out.count_one(Outcome::Duplicate);
        return;
    }
    let conversation = match messages::read(attrs, &span.events) {
        Ok(c) => c,
        Err(why) => return out.refuse(Outcome::Invalid, span, why),
    };
    let rendered = match render::render(
        &conversation.system,
        &conversation.input,
        &conversation.output,
    ) {
        Ok(r) => r,
        Err(why) => {
            return out.refuse(
                Outcome::NoContent,
                span,
                format!("{why} (is message content capture on in the instrumentation?)"),
            )
        }
    };
    let meta = span_meta::build(
        span,
        origin,
        convention,
        &conversation,
        rendered.has_reasoning,
    );
    let (parts, size) = trace_parts(convention, rendered, redact);
    let too_large = |size: usize| {
        (size > trace_max_bytes).then(|| {
            format!("its trace is about {size} bytes, over TRACE_MAX_BYTES ({trace_max_bytes})")
        })
    };
    if let Some(why) = too_large(size) {
        return out.refuse(Outcome::TooLarge, span, why);
    }
    let trace = match validated(parts, &meta, redact) {
        Ok(trace) => trace,
        Err(errs) => return refuse_invalid(out, span, &errs),
    };
    if let Some(why) = too_large(size + trace.meta().map_or(0, |m| m.as_str().len())) {
        return out.refuse(Outcome::TooLarge, span, why);
    }
    out.count_one(Outcome::Stored);
    out.traces.push(SpanTrace { id, key, trace });
}

/// A trace that breaks the trace rules: too large when a text or a list is too long.
fn refuse_invalid(out: &mut Mapped, span: &Span, errs: &ValidationErrors) {
    let too_long = errs
        .errors()
        .iter()
        .any(|e| matches!(e.kind, ErrorKind::StringTooLong | ErrorKind::TooLong));
    let why: Vec<String> = errs
        .errors()
        .iter()
        .take(3)
        .map(|e| format!("{}: {}", e.loc, e.msg))
        .collect();
    let outcome = if too_long {
        Outcome::TooLarge
    } else {
        Outcome::Invalid
    };
    out.refuse(
        outcome,
        span,
        format!("its trace breaks the trace rules: {}", why.join("; ")),
    );
}

fn convention_name(c: Convention) -> &'static str {
    match c {
        Convention::GenAi => "gen_ai",
        Convention::OpenInference => "openinference",
        Convention::Traceloop => "traceloop",
    }
}
