//! **Owns: positions are stored with the effect, and the zombie fence.**
//!
//! A consumer's position per partition (the next offset to apply) lives in `consumer_offsets`,
//! written in the same transaction as the batch's effect, so a crash never separates "rows written"
//! from "position advanced". Every batch first locks its partitions' rows and checks that they
//! still hold the position this member expects ([`fence`]); a member that lost a partition and
//! wakes up late finds another position there and rolls back instead of re-applying stale events.

use std::collections::HashMap;

use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use sqlx::{PgConnection, PgPool};

use super::member::{Member, MemberConsumer};
use super::Sink;

/// Where a partition's consumption continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// Nothing applied yet: consume from the first offset the partition holds (`NULL` in
    /// `consumer_offsets`).
    Beginning,
    /// The next offset to apply; everything before it is applied.
    Next(i64),
}

impl Position {
    /// From the `next_offset` column.
    pub fn from_column(next_offset: Option<i64>) -> Position {
        next_offset.map_or(Position::Beginning, Position::Next)
    }

    /// For the `next_offset` column.
    pub fn to_column(self) -> Option<i64> {
        match self {
            Position::Beginning => None,
            Position::Next(o) => Some(o),
        }
    }

    /// Where to seek the Kafka consumer.
    pub fn seek_offset(self) -> Offset {
        match self {
            Position::Beginning => Offset::Beginning,
            Position::Next(o) => Offset::Offset(o),
        }
    }

    /// Records between this position and a high watermark (`Beginning` counts from offset 0).
    pub fn lag_to(self, high_watermark: i64) -> i64 {
        (high_watermark - self.to_column().unwrap_or(0)).max(0)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Beginning => f.write_str("beginning"),
            Position::Next(o) => write!(f, "{o}"),
        }
    }
}

/// One `consumer_offsets` row.
struct Row {
    partition: i32,
    next_offset: Option<i64>,
}

impl Row {
    fn into_entry(self) -> (i32, Position) {
        (self.partition, Position::from_column(self.next_offset))
    }
}

/// Makes sure a row exists for each partition, then returns the stored positions. With
/// `for_update`, the rows stay locked until the surrounding transaction ends (the zombie fence).
async fn positions(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    partitions: &[i32],
    for_update: bool,
) -> Result<HashMap<i32, Position>, sqlx::Error> {
    sqlx::query!(
        "INSERT INTO consumer_offsets (target, topic, partition, next_offset)
         SELECT $1, $2, p, NULL FROM unnest($3::int[]) AS p
         ON CONFLICT (target, topic, partition) DO NOTHING",
        target,
        topic,
        partitions
    )
    .execute(&mut *conn)
    .await?;
    let rows = if for_update {
        sqlx::query_as!(
            Row,
            "SELECT partition, next_offset FROM consumer_offsets
             WHERE target = $1 AND topic = $2 AND partition = ANY($3)
             ORDER BY partition FOR UPDATE",
            target,
            topic,
            partitions
        )
        .fetch_all(&mut *conn)
        .await?
    } else {
        sqlx::query_as!(
            Row,
            "SELECT partition, next_offset FROM consumer_offsets
             WHERE target = $1 AND topic = $2 AND partition = ANY($3)",
            target,
            topic,
            partitions
        )
        .fetch_all(&mut *conn)
        .await?
    };
    Ok(rows.into_iter().map(Row::into_entry).collect())
}

/// Stored positions of `partitions` for `target` (creating missing rows as [`Position::Beginning`]).
pub async fn load_positions(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, Position>, sqlx::Error> {
    positions(conn, target, topic, partitions, false).await
}

/// Records the next offset of each partition.
pub(super) async fn save_positions(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    next: &[(i32, i64)],
) -> Result<(), sqlx::Error> {
    let partitions: Vec<i32> = next.iter().map(|(p, _)| *p).collect();
    let offsets: Vec<i64> = next.iter().map(|(_, o)| *o).collect();
    sqlx::query!(
        "UPDATE consumer_offsets AS c
         SET next_offset = v.next_offset, updated_at = now()
         FROM unnest($3::int[], $4::bigint[]) AS v(partition, next_offset)
         WHERE c.target = $1 AND c.topic = $2 AND c.partition = v.partition",
        target,
        topic,
        &partitions,
        &offsets
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every stored position of `target` on `topic` (for tools and tests).
pub async fn stored_positions(
    pool: &PgPool,
    target: &str,
    topic: &str,
) -> Result<HashMap<i32, Position>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT partition, next_offset FROM consumer_offsets WHERE target = $1 AND topic = $2",
        target,
        topic
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Row::into_entry).collect())
}

/// The partitions whose stored position differs from the expected one, with the stored value.
pub(super) fn moved(
    expected: &HashMap<i32, Position>,
    stored: &HashMap<i32, Position>,
) -> HashMap<i32, Position> {
    expected
        .iter()
        .filter_map(|(p, want)| {
            let got = stored.get(p).copied().unwrap_or(Position::Beginning);
            (got != *want).then_some((*p, got))
        })
        .collect()
}

/// Locks the rows of `expected`'s partitions for the rest of the transaction and checks they hold
/// the expected positions; `Err` carries the partitions another member moved.
pub(super) async fn fence(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    expected: &HashMap<i32, Position>,
) -> Result<Result<(), HashMap<i32, Position>>, sqlx::Error> {
    let partitions: Vec<i32> = expected.keys().copied().collect();
    let stored = positions(conn, target, topic, &partitions, true).await?;
    let moved = moved(expected, &stored);
    Ok(if moved.is_empty() { Ok(()) } else { Err(moved) })
}

impl<S: Sink> Member<S> {
    /// Loads the stored positions of `partitions`, retrying while Postgres is down. `None` on
    /// shutdown.
    pub(super) fn load(&self, partitions: &[i32]) -> Option<HashMap<i32, Position>> {
        let mut backoff = self.deps.settings.backoff_initial;
        loop {
            let result = self.rt.block_on(async {
                let mut conn = self.deps.pool.acquire().await?;
                let target = self.deps.sink.target(&mut conn).await?;
                load_positions(&mut conn, &target, self.topic(), partitions).await
            });
            match result {
                Ok(positions) => {
                    self.deps.readiness.set("postgres", true, "ok");
                    return Some(positions);
                }
                Err(e) => {
                    self.deps.readiness.set("postgres", false, e.to_string());
                    self.deps.metrics.postgres_error("transient");
                    tracing::warn!(error = %e, ?backoff, "cannot load consumer positions; retrying");
                    if !self.pause(backoff) {
                        return None;
                    }
                    backoff = (backoff * 2).min(self.deps.settings.backoff_max);
                }
            }
        }
    }

    /// A stored position beyond the end of its partition means the topic was recreated or
    /// truncated (e.g. the broker lost its data): the next records would get offsets below the
    /// position and be skipped as already applied. Replaying the partition from the beginning is
    /// always safe (effects are idempotent per trace id), so the position is reset.
    pub(super) fn reset_positions_past_the_end(
        &self,
        consumer: &MemberConsumer<S>,
        positions: &mut HashMap<i32, Position>,
    ) {
        for (p, pos) in positions.iter_mut() {
            let Position::Next(next) = *pos else { continue };
            let Ok((_, high)) = consumer.fetch_watermarks(self.topic(), *p, super::BROKER_TIMEOUT)
            else {
                continue; // broker unreachable: nothing to compare with now
            };
            if next <= high {
                continue;
            }
            let reset = self.rt.block_on(async {
                let mut conn = self.deps.pool.acquire().await?;
                let target = self.deps.sink.target(&mut conn).await?;
                let topic = self.topic();
                sqlx::query!(
                    "UPDATE consumer_offsets SET next_offset = NULL, updated_at = now()
                     WHERE target = $1 AND topic = $2 AND partition = $3 AND next_offset = $4",
                    target,
                    topic,
                    *p,
                    next
                )
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected() == 1)
            });
            if matches!(reset, Ok(true)) {
                tracing::error!(
                    partition = p,
                    stored = next,
                    end = high,
                    "stored position is past the end of the partition (topic recreated or truncated?); replaying it from the beginning"
                );
                self.deps.metrics.gap("reset");
                *pos = Position::Beginning;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_map_to_the_column_and_to_seeks() {
        assert_eq!(Position::from_column(None), Position::Beginning);
        assert_eq!(Position::from_column(Some(7)), Position::Next(7));
        assert_eq!(Position::Next(7).to_column(), Some(7));
        assert_eq!(Position::Beginning.to_column(), None);
        assert_eq!(Position::Beginning.seek_offset(), Offset::Beginning);
        assert_eq!(Position::Next(3).seek_offset(), Offset::Offset(3));
        assert_eq!(Position::Next(3).lag_to(10), 7);
        assert_eq!(Position::Beginning.lag_to(10), 10);
        assert_eq!(Position::Next(12).lag_to(10), 0, "never negative");
        assert_eq!(Position::Beginning.to_string(), "beginning");
    }

    #[test]
    fn the_fence_reports_exactly_the_partitions_that_moved() {
        let expected: HashMap<i32, Position> = [
            (0, Position::Next(10)),
            (1, Position::Beginning),
            (2, Position::Next(5)),
        ]
        .into();
        // Nobody else wrote: nothing moved.
        assert!(moved(&expected, &expected).is_empty());
        // Another member advanced partition 0 and started partition 1; 2 is as expected.
        let stored: HashMap<i32, Position> = [
            (0, Position::Next(12)),
            (1, Position::Next(1)),
            (2, Position::Next(5)),
        ]
        .into();
        let m = moved(&expected, &stored);
        assert_eq!(m, [(0, Position::Next(12)), (1, Position::Next(1))].into());
        // A row reset to the beginning (a recreated topic) is a move too.
        let reset: HashMap<i32, Position> = [(0, Position::Beginning)].into();
        let only0: HashMap<i32, Position> = [(0, Position::Next(10))].into();
        assert_eq!(moved(&only0, &reset), [(0, Position::Beginning)].into());
        // A missing row reads as the beginning.
        assert_eq!(
            moved(&only0, &HashMap::new()),
            [(0, Position::Beginning)].into()
        );
    }
}
