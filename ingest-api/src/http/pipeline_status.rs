//! `GET /api/pipeline`: whether the pipeline keeps up, for the UI's operations view and anyone
//! without Grafana. Read-only and cheap: broker watermarks of the event and dead-letter topics,
//! the consumers' stored positions (`consumer_offsets`: lag per service is the topic's end minus
//! each partition's next offset), the newest listed trace, and bulk deletions running or
//! finished in the last hour. Always 200 while serving: a part whose source does not answer
//! within 2 s is `null`, and `broker`/`database` say which.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;

/// How long each source may take.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(2);

/// `(low, high)` watermarks per partition of the event topic and of the dead-letter topic.
struct LogExtents {
    topic: Vec<(i64, i64)>,
    dead_letters: Vec<(i64, i64)>,
}

/// The answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PipelineStatus {
    /// When this was read.
    pub checked_at: DateTime<Utc>,
    /// `ok`, or `down` when the watermarks could not be read.
    pub broker: &'static str,
    /// `ok`, or `down` when Postgres did not answer.
    pub database: &'static str,
    /// The event topic: its end (the sum of its partitions' high watermarks: events ever
    /// appended; the UI's ingest rate is its change over time). `null` when the broker is down.
    pub topic: Option<TopicExtent>,
    /// The dead-letter topic: records it holds now. `null` when the broker is down.
    pub dead_letters: Option<TopicExtent>,
    /// One entry per consumer target (the writer's `traces`, the projector's `trace_list_vN`).
    /// `null` when Postgres is down.
    pub consumers: Option<Vec<ConsumerStatus>>,
    /// The newest trace in the list view (what readers see). `null` when empty or Postgres is
    /// down.
    pub newest_listed_at: Option<DateTime<Utc>>,
    /// Bulk deletions running now or finished within the hour, newest first (at most 20).
    /// `null` when Postgres is down.
    pub deletions: Option<Vec<DeletionStatus>>,
}

/// One topic's extent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TopicExtent {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: usize,
    /// Sum of the high watermarks.
    pub end_offsets: i64,
    /// Records held now (high minus low watermarks).
    pub records: i64,
}

/// One consumer's progress.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsumerStatus {
    /// `writer`, `projector`, or the target's name.
    pub service: String,
    /// Where it writes (its positions' key).
    pub target: String,
    /// Events appended to the topic and not yet applied (summed over partitions); `null` when
    /// the broker is down.
    pub lag: Option<i64>,
    /// When it last stored a position (it stores one with every applied batch).
    pub positions_updated_at: Option<DateTime<Utc>>,
}

/// One bulk deletion.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeletionStatus {
    /// Operation id (`GET /api/deletions/{id}`).
    pub id: Uuid,
    /// `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// Traces it matched.
    pub matched: i64,
    /// Traces erased so far.
    pub deleted: i64,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// Its last progress.
    pub updated_at: DateTime<Utc>,
}

fn extent(name: &str, watermarks: &[(i64, i64)]) -> TopicExtent {
    TopicExtent {
        name: name.to_owned(),
        partitions: watermarks.len(),
        end_offsets: watermarks.iter().map(|(_, high)| high).sum(),
        records: watermarks.iter().map(|(low, high)| high - low).sum(),
    }
}

fn service_of(target: &str) -> String {
    match target {
        "traces" => "writer".to_owned(),
        t if t.starts_with("trace_list") => "projector".to_owned(),
        t => t.to_owned(),
    }
}

/// Positions per target, `(target, partition, next_offset, updated_at)`.
type PositionRow = (String, i32, Option<i64>, DateTime<Utc>);

/// Lag per consumer target: for every partition of the topic, its high watermark minus the
/// stored next offset (a partition without a position: everything from the low watermark).
fn consumers(rows: &[PositionRow], topic: Option<&[(i64, i64)]>) -> Vec<ConsumerStatus> {
    let mut targets: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    targets.dedup();
    targets
        .into_iter()
        .map(|target| {
            let mine: Vec<&PositionRow> = rows.iter().filter(|r| r.0 == target).collect();
            let lag = topic.map(|watermarks| {
                watermarks
                    .iter()
                    .enumerate()
                    .map(|(p, (low, high))| {
                        let next = mine
                            .iter()
                            .find(|r| r.1 as usize == p)
                            .and_then(|r| r.2)
                            .unwrap_or(*low);
                        (high - next.max(*low)).max(0)
                    })
                    .sum()
            });
            ConsumerStatus {
                service: service_of(target),
                target: target.to_owned(),
                lag,
                positions_updated_at: mine.iter().map(|r| r.3).max(),
            }
        })
        .collect()
}

/// `GET /api/pipeline`.
#[utoipa::path(
    get,
    path = "/api/pipeline",
    tag = "ops",
    summary = "Pipeline status: topic end, consumer lag, dead letters, bulk deletions",
    description = "Read-only status for the UI's operations view: the event topic's end offsets (its change over time is the ingest rate), each consumer's lag in events and when it last stored a position, the dead-letter topic's record count, the newest listed trace, and bulk deletions running or finished within the hour. Always 200; a part whose source did not answer within 2 s is null.",
    responses(
        (status = 200, body = PipelineStatus),
        crate::http::openapi::KeyErrors,
    )
)]
pub async fn status(State(state): State<Arc<AppState>>) -> Json<PipelineStatus> {
    let watching = state.clone();
    let extents: Option<LogExtents> = tokio::task::spawn_blocking(move || {
        let (topic, dead_letters) = watching.producer.topics();
        Some(LogExtents {
            topic: watching.producer.watermarks(topic, SOURCE_TIMEOUT).ok()?,
            dead_letters: watching
                .producer
                .watermarks(dead_letters, SOURCE_TIMEOUT)
                .ok()?,
        })
    })
    .await
    .ok()
    .flatten();
    let (topic_name, dlq_name) = state.producer.topics();
    let db = tokio::time::timeout(SOURCE_TIMEOUT, read_database(&state, topic_name)).await;
    let db = db.ok().and_then(Result::ok);
    Json(PipelineStatus {
        checked_at: Utc::now(),
        broker: if extents.is_some() { "ok" } else { "down" },
        database: if db.is_some() { "ok" } else { "down" },
        topic: extents.as_ref().map(|e| extent(topic_name, &e.topic)),
        dead_letters: extents.as_ref().map(|e| extent(dlq_name, &e.dead_letters)),
        consumers: db
            .as_ref()
            .map(|d| consumers(&d.positions, extents.as_ref().map(|e| &e.topic[..]))),
        newest_listed_at: db.as_ref().and_then(|d| d.newest),
        deletions: db.map(|d| d.deletions),
    })
}

struct FromDatabase {
    positions: Vec<PositionRow>,
    newest: Option<DateTime<Utc>>,
    deletions: Vec<DeletionStatus>,
}

async fn read_database(state: &AppState, topic: &str) -> Result<FromDatabase, sqlx::Error> {
    let positions: Vec<PositionRow> = sqlx::query!(
        "SELECT target, partition, next_offset, updated_at FROM consumer_offsets
         WHERE topic = $1 ORDER BY target, partition",
        topic
    )
    .fetch_all(&state.pool)
    .await?
    .into_iter()
    .map(|r| (r.target, r.partition, r.next_offset, r.updated_at))
    .collect();
    let newest = sqlx::query_scalar!(
        r#"SELECT created_at AS "created_at!" FROM trace_list ORDER BY created_at DESC LIMIT 1"#
    )
    .fetch_optional(&state.pool)
    .await?;
    let deletions = sqlx::query_as!(
        DeletionStatus,
        "SELECT id, state, matched, deleted, created_at, updated_at FROM erasure_operations
         WHERE state = 'running' OR finished_at > now() - interval '1 hour'
         ORDER BY created_at DESC LIMIT 20"
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(FromDatabase {
        positions,
        newest,
        deletions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_every_partition_from_its_stored_position() {
        let at = Utc::now();
        let rows = vec![
            ("trace_list_v1".to_owned(), 0, Some(10), at),
            ("traces".to_owned(), 0, Some(7), at),
            ("traces".to_owned(), 1, None, at),
        ];
        // Partition 0 ends at 10, partition 1 holds 5..8, partition 2 is empty.
        let topic = [(0, 10), (5, 8), (0, 0)];
        let got = consumers(&rows, Some(&topic));
        let summary: Vec<(String, Option<i64>)> =
            got.iter().map(|c| (c.service.clone(), c.lag)).collect();
        assert_eq!(
            summary,
            vec![("projector".into(), Some(3)), ("writer".into(), Some(6))]
        );
        assert!(consumers(&rows, None).iter().all(|c| c.lag.is_none()));
    }
}
