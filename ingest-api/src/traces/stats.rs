//! `GET /api/traces/stats`: what the UI's charts draw for the list's current filter: traces per
//! hour or day, a histogram per score name, and token usage by model.
//!
//! **Cost is bounded, not proportional to the view.** Aggregating a trace's metadata facets and
//! scores costs ~10 µs of Postgres time per trace, so 10M traces would take minutes. A request
//! therefore first counts the matches up to [`EXACT_MAX`] (one bounded index walk):
//!
//! - at most [`EXACT_MAX`] match: the statistics are **exact**, over every match;
//! - more: they are **estimated** from a sample of the list table (`TABLESAMPLE SYSTEM`, whole
//!   pages, a fixed seed so the charts do not flicker between refreshes) sized to read about
//!   [`SAMPLE_ROWS`] rows, with the same filters; counts and token sums are scaled up by the
//!   sampled fraction, and the answer says so (`exact: false`, `sample_percent`).
//!
//! Either way one statement reads the matches once (materialized), then groups them four ways
//! ([`stats_sql`](super::stats_sql)); [`stats_answer`](super::stats_answer) builds the answer.
//! Buckets are UTC hours (`date_bin`, independent of the session's time zone), rolled up into
//! days here; empty buckets between the first and the last are filled with zeros.
//!
//! Token usage comes from `meta.gen_ai.usage.input_tokens` and `output_tokens` (what the OTLP
//! intake writes; any producer may send them) and the model from the list's precedence
//! (`gen_ai.request.model`, `gen_ai.response.model`, `model`), all read from the facets (numbers
//! in their canonical form; a negative count, or one of 10^13 or more, is ignored).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;

use super::filter::ListQuery;
use super::stats_answer::assemble;
pub use super::stats_answer::{
    Bucket, ModelUsage, ScoreBin, ScoreHistogram, Stats, VolumeBucket, AUTO_HOURS_SPAN,
    MAX_BUCKETS, MAX_MODELS,
};
use super::stats_sql::read_rows;
pub use super::stats_sql::{EXACT_MAX, MAX_SCORE_NAMES, SAMPLE_ROWS, SCORE_BINS};
use crate::http::db::bounded;
use crate::http::error::ApiError;
use crate::AppState;

/// `GET /api/traces/stats`.
#[utoipa::path(
    get,
    path = "/api/traces/stats",
    tag = "read",
    summary = "Statistics of the traces a list filter matches, for charts",
    description = "Takes the list's filters (limit, offset and cursor are validated as for the list, then ignored) and `bucket` (`hour`, `day`, or `auto`: hours when the matches span at most 72 h). Exact when at most 25,000 traces match; beyond, estimated from a sample of about 25,000 rows (`exact: false`, `sample_percent`), so the cost stays bounded at any size.",
    params(
        ListQuery,
        ("bucket" = Option<String>, Query, description = "hour, day or auto (default)"),
    ),
    responses(
        (status = 200, body = Stats),
        (status = 422, description = "A parameter is invalid; loc names it", body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn stats(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Stats>, ApiError> {
    let mut q = ListQuery::parse(raw.as_deref())?;
    q.after = None;
    let bucket = parse_bucket(raw.as_deref())?;
    let read = bounded(&state, async {
        let mut conn = state.reads.acquire().await?;
        let read = read_rows(&mut conn, &q).await?;
        conn.release();
        Ok(read)
    })
    .await?;
    let (rows, sample) = read.ok_or_else(|| {
        ApiError::unavailable(
            "the list view was rebuilt during the request; retry",
            state.cfg.retry_after_secs,
        )
    })?;
    Ok(Json(assemble(rows, sample.as_ref(), bucket)?))
}

/// The `bucket` parameter: `Some` width, or `None` for auto.
fn parse_bucket(raw: Option<&str>) -> Result<Option<Bucket>, ApiError> {
    let mut bucket = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if k == "bucket" {
            bucket = match v.trim() {
                "hour" => Some(Bucket::Hour),
                "day" => Some(Bucket::Day),
                "auto" | "" => None,
                other => {
                    return Err(ApiError::InvalidParam {
                        param: "bucket".into(),
                        msg: format!("Input should be 'hour', 'day' or 'auto' (bucket={other:?})"),
                        location: "query",
                    })
                }
            };
        }
    }
    Ok(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_parameter() {
        assert_eq!(parse_bucket(None).unwrap(), None);
        assert_eq!(parse_bucket(Some("bucket=auto")).unwrap(), None);
        assert_eq!(
            parse_bucket(Some("tag=a&bucket=hour")).unwrap(),
            Some(Bucket::Hour)
        );
        assert_eq!(parse_bucket(Some("bucket=day")).unwrap(), Some(Bucket::Day));
        assert!(parse_bucket(Some("bucket=week")).is_err());
    }
}
