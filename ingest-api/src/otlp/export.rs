//! `POST /v1/traces`: the OTLP/HTTP traces endpoint. Reads the body (gzip or zstd, the size
//! limit applied after decompression), decodes protobuf or JSON, maps the spans
//! ([`super::mapping`]), appends one `TraceSubmitted` event per inference span and answers only
//! after the broker acknowledged all of them, with an `ExportTraceServiceResponse` in the
//! request's encoding. Errors answer a `google.rpc.Status` in the request's encoding
//! ([`status_bodies`]): 400 undecodable, 401/403 key, 408 slow body, 413 too large, 415 media
//! type, 503 + `Retry-After` broker or database unavailable (exporters retry 503).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use serde_json::json;
use tunix_schemas::{TraceEvent, TraceSubmitted};

use super::mapping::{self, Mapped, Outcome};
use super::proto::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse, RpcStatus,
};
use crate::http::body::{media_type, read_body};
use crate::http::common::{now, produce_error};
use crate::http::error::ApiError;
use crate::http::metrics::names;
use crate::traces::write::{record_redactions, with_redaction};
use crate::AppState;

/// How many refusal reasons the answer's message quotes (the count is always complete).
const QUOTED_REFUSALS: usize = 5;

/// The request's (and so the answer's) encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl Wire {
    fn of(headers: &HeaderMap) -> Result<Wire, ApiError> {
        match media_type(headers)?.as_deref() {
            Some("application/x-protobuf" | "application/protobuf") => Ok(Wire::Protobuf),
            Some("application/json") => Ok(Wire::Json),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "{}: OTLP/HTTP is application/x-protobuf or application/json",
                other.map_or("missing Content-Type".to_owned(), |t| format!(
                    "Content-Type {t} is not supported"
                ))
            ))),
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Wire::Protobuf => "application/x-protobuf",
            Wire::Json => "application/json",
        })
    }
}

/// `POST /v1/traces`.
#[utoipa::path(
    post,
    path = "/v1/traces",
    tag = "ingest",
    summary = "OTLP/HTTP traces: OpenTelemetry GenAI spans become traces",
    description = "An OTLP exporter's endpoint (OTEL_EXPORTER_OTLP_ENDPOINT=http://<host>:8080). Each inference span (gen_ai.operation.name chat/generate_content/text_completion, openinference.span.kind=LLM, or Traceloop's llm.request.type) becomes one trace whose id derives from its trace and span ids; other spans are accepted, not stored. Answers an ExportTraceServiceResponse in the request's encoding once the broker acknowledged every stored span; refused spans are counted in partial_success with the reason. The body limit (BATCH_MAX_BYTES) applies after decompression.",
    request_body(content(
        (Vec<u8> = "application/x-protobuf"),
        (Object = "application/json"),
    )),
    params(("Content-Encoding" = Option<String>, Header, description = "identity, gzip or zstd")),
    responses(
        (status = 200, description = "Every stored span durable in the topic; partial_success counts the refused ones and says why"),
        (status = 400, description = "Undecodable protobuf or OTLP/JSON (google.rpc.Status body, the field's path in its message)"),
        (status = 408, description = "Body not received in time"),
        (status = 413, description = "Body over BATCH_MAX_BYTES after decompression"),
        (status = 415, description = "Content-Type other than application/x-protobuf or application/json, or unsupported Content-Encoding"),
        (status = 503, description = "Broker or database unavailable; retry (OTLP exporters do)", headers(("Retry-After" = u64))),
        crate::http::openapi::KeyErrors,
    )
)]
pub async fn export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let wire = Wire::of(&headers)?;
    let (bytes, wire_len) = read_body(&state, &headers, body, state.cfg.batch_max_bytes).await?;
    state.metrics.bytes_in.increment(wire_len as u64);
    let rules = state.cfg.redaction.clone();
    let trace_max = state.cfg.trace_max_bytes;
    let small = bytes.len() <= 1 << 20;
    let work = move || -> Result<(Mapped, Option<BTreeMap<String, u64>>), ApiError> {
        let request = match wire {
            Wire::Protobuf => ExportTraceServiceRequest::decode(&bytes[..])
                .map_err(|e| ApiError::BadRequest(format!("undecodable OTLP protobuf: {e}")))?,
            Wire::Json => super::json::decode(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("undecodable OTLP/JSON: {e}")))?,
        };
        Ok(with_redaction(rules.as_deref(), |r| {
            mapping::map_request(&request, r, trace_max)
        }))
    };
    let (mut mapped, redactions) = if small {
        work()?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::unavailable(format!("OTLP decoding task failed: {e}"), 1))??
    };

    refuse_deleted(&state, &mut mapped).await?;
    let created_at = now();
    let stored = mapped.traces.len() as u64;
    if stored > 0 {
        let events: Vec<TraceEvent> = std::mem::take(&mut mapped.traces)
            .into_iter()
            .map(|t| {
                TraceEvent::Submitted(TraceSubmitted {
                    id: t.id,
                    created_at,
                    trace: t.trace,
                    idempotency_key: Some(t.key),
                })
            })
            .collect();
        state
            .producer
            .append(&events)
            .await
            .map_err(|e| produce_error(&state, e))?;
        state.metrics.accepted.increment(stored);
        record_redactions(&redactions);
    }
    for (outcome, n) in &mapped.outcomes {
        metrics::counter!(names::OTLP_SPANS, "outcome" => outcome.label()).increment(*n);
    }
    if let Some(first) = mapped.refusals.first() {
        tracing::warn!(
            refused = mapped.refusals.len(),
            stored,
            first = %first,
            "OTLP spans refused (answered in partial_success)"
        );
    }
    Ok(answer(wire, &mapped))
}

/// Spans whose trace was deleted are refused: a deleted trace is never stored again under its id
/// (as for a keyed `POST /api/traces`). 503 when Postgres cannot say.
async fn refuse_deleted(state: &AppState, mapped: &mut Mapped) -> Result<(), ApiError> {
    if mapped.traces.is_empty() {
        return Ok(());
    }
    let ids = mapped.traces.iter().map(|t| t.id).collect();
    let deleted = state.deleted.deleted_among(ids).await.ok_or_else(|| {
        ApiError::unavailable(
            "the database is unavailable (OTLP spans are checked against deleted traces); retry shortly",
            state.cfg.retry_after_secs,
        )
    })?;
    if deleted.is_empty() {
        return Ok(());
    }
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut mapped.traces)
        .into_iter()
        .partition(|t| deleted.contains(&t.id));
    mapped.traces = kept;
    for t in gone {
        mapped.move_outcome(Outcome::Stored, Outcome::Deleted);
        mapped.refusals.push(format!(
            "span {}: its trace {} was deleted and is never stored again",
            t.key.trim_start_matches("otlp:").replacen(':', "/", 1),
            t.id
        ));
    }
    Ok(())
}

/// The 200 answer: `partial_success` when spans were refused (`rejected_spans`, the reasons) or
/// not stored (`rejected_spans` 0, a message saying how many were not inference spans).
fn answer(wire: Wire, mapped: &Mapped) -> Response {
    let rejected: u64 = mapped
        .outcomes
        .iter()
        .filter(|(o, _)| o.is_rejection())
        .map(|(_, n)| n)
        .sum();
    let not_inference = mapped.count(Outcome::NotInference);
    let mut message = Vec::new();
    if rejected > 0 {
        let quoted: Vec<&str> = mapped
            .refusals
            .iter()
            .take(QUOTED_REFUSALS)
            .map(String::as_str)
            .collect();
        let more = mapped.refusals.len().saturating_sub(QUOTED_REFUSALS);
        message.push(format!(
            "{rejected} span(s) refused and not stored: {}{}",
            quoted.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if not_inference > 0 {
        message.push(format!(
            "{not_inference} span(s) accepted but not stored: not inference spans (tunix-rt stores spans with gen_ai.operation.name chat, generate_content or text_completion, openinference.span.kind LLM, or llm.request.type chat or completion)"
        ));
    }
    let partial = (!message.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected as i64,
        error_message: message.join(". "),
    });
    let body = match wire {
        Wire::Protobuf => ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Wire::Json => match partial {
            None => b"{}".to_vec(),
            Some(p) => json!({"partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }})
            .to_string()
            .into_bytes(),
        },
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, wire.content_type());
    response
}

/// The gRPC code an HTTP error status stands for in a `Status` body.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 | 422 => 3, // INVALID_ARGUMENT
        401 => 16,                  // UNAUTHENTICATED
        403 => 7,                   // PERMISSION_DENIED
        404 => 5,                   // NOT_FOUND
        408 => 4,                   // DEADLINE_EXCEEDED
        429 => 8,                   // RESOURCE_EXHAUSTED
        503 => 14,                  // UNAVAILABLE
        _ => 13,                    // INTERNAL
    }
}

/// Middleware of `/v1/traces`: an error answer (`{"detail": ...}` from the handler, the key check
/// or axum) becomes a `google.rpc.Status` in the request's encoding, as OTLP/HTTP specifies;
/// the status and headers (`Retry-After`, `WWW-Authenticate`) are kept. A request in neither
/// encoding gets the JSON form.
pub async fn status_bodies(request: Request, next: Next) -> Response {
    let wire = Wire::of(request.headers()).unwrap_or(Wire::Json);
    let response = next.run(request).await;
    let status = response.status();
    if status.is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("detail").cloned())
        .map(|d| match d {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
    let code = grpc_code(status);
    let body = match wire {
        Wire::Protobuf => RpcStatus {
            code,
            message: detail,
        }
        .encode_to_vec(),
        Wire::Json => json!({"code": code, "message": detail})
            .to_string()
            .into_bytes(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, wire.content_type());
    Response::from_parts(parts, Body::from(body))
}
