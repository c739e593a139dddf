//! Read queries' limits and failures: every read runs within [`QUERY_TIMEOUT`], and a failed
//! query maps by its cause to 503 (retry later), 422 (a value Postgres cannot hold) or 500.

use std::time::Duration;

use tunix_pipeline::db::ErrorCause;

use super::error::ApiError;
use crate::AppState;

/// Upper bound of a single read query; past it the answer is 503. Also Postgres's
/// `statement_timeout` on ingest-api's connections, so an abandoned query stops there too.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

fn timed_out(state: &AppState) -> ApiError {
    ApiError::unavailable(
        format!(
            "the query took longer than the {} s read limit; narrow the filters or page with cursor",
            QUERY_TIMEOUT.as_secs()
        ),
        state.cfg.retry_after_secs,
    )
}

/// Maps a failed read query by its cause: an outage or the read limit is 503 (retry later), a
/// value PostgreSQL cannot represent is 422 (the client's mistake; parameters are validated
/// before querying, so this is a safety net), anything else is our bug (500).
pub(crate) fn db_error(state: &AppState, e: &sqlx::Error) -> ApiError {
    match tunix_pipeline::db::cause(e) {
        ErrorCause::Unavailable => {
            tracing::warn!(error = %e, "read query failed; answering 503");
            ApiError::unavailable(
                "the database is unavailable; retry shortly",
                state.cfg.retry_after_secs,
            )
        }
        ErrorCause::TimedOut => timed_out(state),
        ErrorCause::Input => {
            tracing::info!(error = %e, "read query refused a parameter value; answering 422");
            ApiError::InvalidParam {
                param: "query".into(),
                msg: format!("a parameter is outside what the database can represent: {e}"),
                location: "query",
            }
        }
        ErrorCause::Internal => {
            tracing::error!(error = %e, "read query failed on a bug; answering 500");
            ApiError::Internal
        }
    }
}

/// For the rest of the transaction `tx`, plans read candidates from their indexes one by one:
/// no sequential scans, no hash or merge joins. For statements known to touch few rows (a sparse
/// list page's rest, the charts' bounded matches), where a floored or sampled estimate could
/// make the planner read the whole list instead.
pub(crate) async fn read_from_indexes(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT set_config('enable_seqscan', 'off', true) AS seqscan,
                set_config('enable_hashjoin', 'off', true) AS hashjoin,
                set_config('enable_mergejoin', 'off', true) AS mergejoin"
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(())
}

/// Runs a read query within [`QUERY_TIMEOUT`], mapping its failure with [`db_error`].
pub(crate) async fn bounded<T>(
    state: &AppState,
    fut: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(QUERY_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(db_error(state, &e)),
        Err(_) => Err(timed_out(state)),
    }
}
