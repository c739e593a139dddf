//! Small answers every handler shares: the API's timestamp format, the acceptance time, trace
//! ids in the path, and the mapping of validation and append failures to their statuses.

use chrono::{DateTime, SecondsFormat, Utc};
use tunix_schemas::ValidationErrors;
use uuid::Uuid;

use super::error::ApiError;
use crate::producer::ProduceError;
use crate::AppState;

/// ISO-8601 UTC with microseconds and `Z`, the format of every timestamp in the API.
pub fn iso(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A validation failure (422), counted by error kind.
pub(crate) fn rejected(state: &AppState, errs: ValidationErrors) -> ApiError {
    for e in errs.errors() {
        state.metrics.validation_failure(e.kind.as_str());
    }
    ApiError::Validation(errs)
}

/// An append failure: 413 when the broker refuses the record's size, else 503 (retry later).
pub(crate) fn produce_error(state: &AppState, e: ProduceError) -> ApiError {
    match e {
        ProduceError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        other => {
            tracing::warn!(error = %other, "append failed; answering 503");
            ApiError::unavailable(other.to_string(), state.cfg.retry_after_secs)
        }
    }
}

/// Now, truncated to microseconds (what events and Postgres keep).
pub(crate) fn now() -> DateTime<Utc> {
    tunix_schemas::truncate_to_micros(Utc::now())
}

/// Parses a trace id. Besides the canonical hyphenated form, the spellings Python's `uuid.UUID`
/// (and so the original service) accepted resolve to the same trace: no hyphens, braces, `urn:uuid:`,
/// any case. Answers always carry the canonical form.
pub(crate) fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim()).map_err(|e| ApiError::InvalidParam {
        param: "id".into(),
        msg: format!("Input should be a valid UUID, {e}"),
        location: "path",
    })
}
