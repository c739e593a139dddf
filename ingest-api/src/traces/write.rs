//! Submitting traces: `POST /api/traces` and `POST /api/traces/batch` (validate, give ids,
//! append, answer after the broker's acknowledgement). Deleting one is governance's
//! (`crate::governance::erase`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tunix_schemas::redact::{NoRedaction, Redact, RedactionRules};
use tunix_schemas::{ids, BatchError, BatchFormat, Trace, TraceEvent, TraceSubmitted};
use uuid::Uuid;

use crate::http::body::{media_type, read_body, require_json};
use crate::http::common::{iso, now, produce_error, rejected};
use crate::http::error::ApiError;
use crate::AppState;

/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// `202` body of `POST /api/traces`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The trace id.
    pub id: Uuid,
    /// Acceptance time, ISO-8601 UTC with microseconds.
    pub created_at: String,
    /// The trace's version label.
    pub trace_version: String,
    /// Replacements made by each redaction rule (`REDACTION_RULES`), zeros included; absent when
    /// no rules are configured. In a batch's `traces`, absent (the batch body has the totals).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub redactions: Option<BTreeMap<String, u64>>,
}

/// `202` body of `POST /api/traces/batch`: our shape (`count`, `ids`, `created_at`) and the
/// original service's (`created_count`, `traces`) in one body, so clients of either keep working.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    /// Number of traces appended.
    pub count: usize,
    /// Their ids, in input order.
    pub ids: Vec<Uuid>,
    /// Acceptance time shared by every trace of the batch.
    pub created_at: String,
    /// The original service's name for `count`.
    pub created_count: usize,
    /// The original service's per-trace answers, in input order.
    pub traces: Vec<Accepted>,
    /// Replacements made by each redaction rule over the whole batch; absent without rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub redactions: Option<BTreeMap<String, u64>>,
}

/// Parses a body with the configured redaction rules (if any); returns what parsing returned and
/// the replacements per rule. The OTLP intake maps its spans through it too.
pub(crate) fn with_redaction<T>(
    rules: Option<&RedactionRules>,
    parse: impl FnOnce(&mut dyn Redact) -> T,
) -> (T, Option<BTreeMap<String, u64>>) {
    match rules {
        None => (parse(&mut NoRedaction), None),
        Some(rules) => {
            let mut session = rules.session();
            let parsed = parse(&mut session);
            let counts = session.counts().map(|(n, c)| (n.to_owned(), c)).collect();
            (parsed, Some(counts))
        }
    }
}

/// Counts accepted replacements in the metrics.
pub(crate) fn record_redactions(counts: &Option<BTreeMap<String, u64>>) {
    if let Some(counts) = counts {
        crate::http::metrics::count_redactions(counts.iter().map(|(k, v)| (k.as_str(), *v)));
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = crate::http::body::single(headers, "idempotency-key")? else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_MAX
        || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// `POST /api/traces`.
#[utoipa::path(
    post,
    path = "/api/traces",
    tag = "ingest",
    summary = "Submit one trace",
    description = "Validates the trace, appends it to the topic and answers 202 once the broker acknowledged it. The body limit (TRACE_MAX_BYTES) applies to the bytes read and again after decompression.",
    request_body(content = crate::http::openapi::TraceIn, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters; the same key always yields the same trace id"),
        ("Content-Encoding" = Option<String>, Header, description = "identity, gzip or zstd"),
    ),
    responses(
        (status = 202, description = "Durable in the topic", body = Accepted, headers(("Location" = String, description = "/api/traces/{id}"))),
        (status = 400, description = "Bad Idempotency-Key or undecodable compressed body", body = crate::http::openapi::ErrorBody),
        (status = 408, description = "Body not received in time", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Body over TRACE_MAX_BYTES, or larger than the broker accepts", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not application/json, or unsupported Content-Encoding", body = crate::http::openapi::ErrorBody),
        (status = 410, description = "The Idempotency-Key derives the id of a deleted trace", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Invalid JSON or trace; every error with its path", body = crate::http::openapi::ValidationErrorBody),
        (status = 503, description = "Broker unavailable, delivery timeout or full queue; retry later", body = crate::http::openapi::ErrorBody, headers(("Retry-After" = u64, description = "seconds"))),
        crate::http::openapi::KeyErrors,
    )
)]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let key = idempotency_key(&headers)?;
    let (bytes, wire) = read_body(&state, &headers, body, state.cfg.trace_max_bytes).await?;
    state.metrics.bytes_in.increment(wire as u64);
    let (parsed, redactions) = with_redaction(state.cfg.redaction.as_deref(), |r| {
        Trace::parse_json_redacted(&bytes, r)
    });
    let trace = parsed.map_err(|e| rejected(&state, e))?;

    let id = key
        .as_deref()
        .map_or_else(ids::new_trace_id, ids::idempotent_trace_id);
    if key.is_some() {
        refuse_deleted(&state, &[id]).await?;
    }
    let created_at = now();
    let trace_version = trace.trace_version().to_owned();
    let event = TraceEvent::Submitted(TraceSubmitted {
        id,
        created_at,
        trace,
        idempotency_key: key,
    });
    state
        .producer
        .append(std::slice::from_ref(&event))
        .await
        .map_err(|e| produce_error(&state, e))?;
    state.metrics.accepted.increment(1);
    record_redactions(&redactions);

    let location = format!("/api/traces/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            created_at: iso(&created_at),
            trace_version,
            redactions,
        }),
    )
        .into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("ids are ASCII"),
    );
    Ok(response)
}

/// `POST /api/traces/batch`: a JSON array or NDJSON, all or nothing.
#[utoipa::path(
    post,
    path = "/api/traces/batch",
    tag = "ingest",
    summary = "Submit up to 1,000 traces",
    description = "All or nothing: one invalid item rejects the batch (422, paths like [\"body\",7,\"steps\",0,\"i\"]) and nothing is appended. With an Idempotency-Key, item n gets the id derived from the key and n.",
    request_body(content(
        (Vec<crate::http::openapi::TraceIn> = "application/json"),
        (String = "application/x-ndjson"),
    )),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "makes every item's id deterministic"),
        ("Content-Encoding" = Option<String>, Header, description = "identity, gzip or zstd"),
    ),
    responses(
        (status = 202, description = "Every item durable in the topic; ids in input order", body = BatchAccepted),
        (status = 400, description = "Empty batch or bad header", body = crate::http::openapi::ErrorBody),
        (status = 408, description = "Body not received in time", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "More than 1,000 items, an item over TRACE_MAX_BYTES, or a body over BATCH_MAX_BYTES", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding", body = crate::http::openapi::ErrorBody),
        (status = 410, description = "The Idempotency-Key derives the id of a deleted trace", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Invalid JSON or items", body = crate::http::openapi::ValidationErrorBody),
        (status = 503, description = "Broker trouble; retry with the same Idempotency-Key", body = crate::http::openapi::ErrorBody, headers(("Retry-After" = u64))),
        crate::http::openapi::KeyErrors,
    )
)]
pub async fn submit_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = match media_type(&headers)?.as_deref() {
        Some("application/json") => BatchFormat::JsonArray,
        Some("application/x-ndjson" | "application/jsonl" | "application/jsonlines" | "application/x-jsonlines") => {
            BatchFormat::Ndjson
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "{}: send application/json (an array of traces) or application/x-ndjson (one trace per line)",
                other.map_or("missing Content-Type".to_owned(), |t| format!("Content-Type {t} is not supported"))
            )))
        }
    };
    let key = idempotency_key(&headers)?;
    let (bytes, wire) = read_body(&state, &headers, body, state.cfg.batch_max_bytes).await?;
    state.metrics.bytes_in.increment(wire as u64);
    let item_limit = state.cfg.trace_max_bytes;
    let rules = state.cfg.redaction.clone();
    let small = bytes.len() <= 1 << 20;
    let parse = move || {
        with_redaction(rules.as_deref(), |r| {
            tunix_schemas::parse_batch_redacted(&bytes, format, item_limit, r)
        })
    };
    let (parsed, redactions) = if small {
        parse()
    } else {
        tokio::task::spawn_blocking(parse)
            .await
            .map_err(|e| ApiError::unavailable(format!("validation task failed: {e}"), 1))?
    };
    let traces = parsed.map_err(|e| match e {
        BatchError::Empty => ApiError::BadRequest("batch must contain at least one trace".into()),
        BatchError::TooMany { .. } | BatchError::ItemTooLarge { .. } => {
            ApiError::TooLarge(e.to_string())
        }
        BatchError::Invalid(errs) => rejected(&state, errs),
    })?;

    let created_at = now();
    let events: Vec<TraceEvent> = traces
        .into_iter()
        .enumerate()
        .map(|(n, trace)| {
            TraceEvent::Submitted(TraceSubmitted {
                id: key
                    .as_deref()
                    .map_or_else(ids::new_trace_id, |k| ids::idempotent_batch_item_id(k, n)),
                created_at,
                trace,
                idempotency_key: key.clone(),
            })
        })
        .collect();
    let ids: Vec<Uuid> = events.iter().map(TraceEvent::id).collect();
    if key.is_some() {
        refuse_deleted(&state, &ids).await?;
    }
    state
        .producer
        .append(&events)
        .await
        .map_err(|e| produce_error(&state, e))?;
    state.metrics.accepted.increment(ids.len() as u64);
    record_redactions(&redactions);
    let created_at = iso(&created_at);
    let traces = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Submitted(s) => Some(Accepted {
                id: s.id,
                created_at: created_at.clone(),
                trace_version: s.trace.trace_version().to_owned(),
                redactions: None,
            }),
            _ => None,
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchAccepted {
            count: ids.len(),
            created_count: ids.len(),
            ids,
            created_at,
            traces,
            redactions,
        }),
    )
        .into_response())
}

/// Refuses a keyed submission whose ids include a deleted trace: 410. Unkeyed submissions get
/// fresh ids and are never checked (no Postgres on their path).
async fn refuse_deleted(state: &AppState, ids: &[Uuid]) -> Result<(), ApiError> {
    let deleted = state.deleted.deleted_among(ids.to_vec()).await.ok_or_else(|| {
        ApiError::unavailable(
            "the database is unavailable (a keyed POST checks that its id is not a deleted trace's); retry shortly",
            state.cfg.retry_after_secs,
        )
    })?;
    match deleted.first() {
        None => Ok(()),
        Some(id) => Err(ApiError::Gone(format!(
            "trace {id} was deleted; a deleted trace is never stored again under its id. \
             Send the trace without this Idempotency-Key (or with a new one) to store it as a new trace"
        ))),
    }
}
