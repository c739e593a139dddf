//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! schema types below. Routes are registered through `utoipa_axum`, so the document and the router
//! cannot disagree; `GET /openapi.json` serves it.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// A reasoning trace as producers submit it (`POST /api/traces`; items of a batch).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TraceIn {
    /// Producer's schema version label.
    #[schema(min_length = 1, max_length = 64, example = "1.0")]
    trace_version: String,
    /// The task given to the model.
    #[schema(
        min_length = 1,
        max_length = 50000,
        example = "Convert 68°F to Celsius"
    )]
    prompt: String,
    /// The model's final answer.
    #[schema(min_length = 1, max_length = 50000, example = "20°C")]
    final_answer: String,
    /// Reasoning steps, 1 to 1,000; `i` unique.
    #[schema(min_items = 1, max_items = 1000)]
    steps: Vec<StepIn>,
    /// Free-form metadata: a JSON object (at most 64 levels deep, no duplicate keys) or null.
    #[schema(value_type = Option<Object>)]
    meta: Option<serde_json::Value>,
}

/// One reasoning step.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StepIn {
    /// Index ≥ 0, unique within the trace; need not be sorted or contiguous.
    #[schema(minimum = 0, example = 0)]
    i: i64,
    /// Step kind.
    #[schema(rename = "type", min_length = 1, max_length = 64, example = "compute")]
    kind: String,
    /// Step text.
    #[schema(min_length = 1, max_length = 20000)]
    content: String,
}

/// A stored trace (`GET /api/traces/{id}`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TraceOut {
    /// Trace id.
    id: uuid::Uuid,
    /// Acceptance time, ISO-8601 UTC.
    #[schema(example = "2026-11-22T09:30:00.123456Z")]
    created_at: String,
    /// Version label.
    trace_version: String,
    /// The trace as submitted (`trace_version`, `prompt`, `final_answer`, `steps`, `meta`).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// `202` body of `DELETE /api/traces/{id}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeleteAccepted {
    /// The trace id.
    id: uuid::Uuid,
    /// When the deletion was accepted.
    deleted_at: String,
    /// The id of the delete's audit record (`GET /api/audit`).
    audit_id: uuid::Uuid,
}

/// `GET /api/health` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok` or `degraded`.
    status: String,
    /// `ok` or `down`.
    broker: String,
    /// `ok` or `down`.
    database: String,
    /// Service version.
    version: String,
}

/// `GET /readyz` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: String,
    /// True once shutdown began.
    draining: bool,
    /// Per check: `{ok, detail}`.
    #[schema(value_type = Object)]
    checks: serde_json::Value,
}

/// A score (`POST /api/traces/{id}/scores`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScoreIn {
    /// What was judged.
    #[schema(min_length = 1, max_length = 64, example = "correct")]
    name: String,
    /// A finite number.
    #[schema(example = 1.0)]
    value: f64,
    /// Who or what judged.
    #[schema(max_length = 128, example = "grader-v2")]
    source: Option<String>,
    /// Free text.
    #[schema(max_length = 2000)]
    comment: Option<String>,
}

/// One item of `POST /api/scores/batch`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScoreBatchItem {
    /// The trace judged.
    trace_id: uuid::Uuid,
    /// What was judged.
    #[schema(min_length = 1, max_length = 64, example = "correct")]
    name: String,
    /// A finite number.
    value: f64,
    /// Who or what judged.
    #[schema(max_length = 128)]
    source: Option<String>,
    /// Free text.
    #[schema(max_length = 2000)]
    comment: Option<String>,
}

/// An error with a message: 400, 401, 403, 404, 408, 413, 415, 503.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    #[schema(example = "Payload size exceeds maximum of 1048576 bytes")]
    pub detail: String,
}

/// One validation error, FastAPI style.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ValidationDetail {
    /// Path from the request root, e.g. `["body","steps",3,"content"]` or `["query","limit"]`.
    #[schema(value_type = Vec<Object>, example = json!(["body", "steps", 3, "content"]))]
    loc: Vec<serde_json::Value>,
    /// Human-readable message.
    #[schema(example = "String should have at least 1 character")]
    msg: String,
    /// Machine-readable reason, e.g. `missing`, `string_too_long`, `json_invalid`.
    #[schema(rename = "type", example = "string_too_short")]
    kind: String,
}

/// A 422 body: every problem, with its path.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ValidationErrorBody {
    /// The problems.
    detail: Vec<ValidationDetail>,
}

/// 401 and 403: what every route behind an API key can answer before its handler runs.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum KeyErrors {
    /// No key, or not a configured one.
    #[response(status = 401, description = "Missing or invalid API key")]
    Unauthorized(ErrorBody),
    /// A valid key without the route's scope.
    #[response(status = 403, description = "The API key lacks this route's scope")]
    Forbidden(ErrorBody),
}

/// 503: the broker or the database is unavailable (or a read took too long); retry later.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "Broker or database unavailable; retry after Retry-After seconds",
    headers(("Retry-After" = u64, description = "seconds"))
)]
#[allow(dead_code)]
pub struct RetryLater(ErrorBody);

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Required on /api routes when API_KEYS is configured; scopes ingest, read, admin",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document's fixed parts; paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tunix-rt API",
        description = "Ingest reasoning traces (acknowledged once durable in Kafka); find them by metadata, tags, text and scores; judge them with scores; read and delete them. Errors: 4xx with a `detail`; 503 with `Retry-After` for operational trouble.",
        license(name = "Apache-2.0")
    ),
    components(schemas(TraceIn, StepIn, TraceOut, DeleteAccepted, Health, Readiness, ErrorBody, ValidationDetail, ValidationErrorBody, ScoreIn, ScoreBatchItem)),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "ingest", description = "Submit traces"),
        (name = "read", description = "List, search, read and compare traces"),
        (name = "scores", description = "Record and retract scores"),
        (name = "governance", description = "Bulk deletes by filter, retention and the audit log"),
        (name = "ops", description = "Health, readiness, metrics, documents and the UI"),
        (name = "schema registry", description = "The built-in Schema Registry (read-only Confluent API) for the topic's schema ids")
    )
)]
pub struct ApiDoc;
