//! Consumer positions in `consumer_offsets`, read and written inside batch transactions.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};

/// Position of a partition: the next offset to apply, `None` for "from the beginning".
pub type Position = Option<i64>;

/// Makes sure a row exists for each partition, then returns the stored positions. With
/// `for_update`, the rows stay locked until the surrounding transaction ends (the zombie fence).
async fn positions(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    partitions: &[i32],
    for_update: bool,
) -> Result<HashMap<i32, Position>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO consumer_offsets (target, topic, partition, next_offset)
         SELECT $1, $2, p, NULL FROM unnest($3::int[]) AS p
         ON CONFLICT (target, topic, partition) DO NOTHING",
    )
    .bind(target)
    .bind(topic)
    .bind(partitions)
    .execute(&mut *conn)
    .await?;
    let sql = if for_update {
        "SELECT partition, next_offset FROM consumer_offsets
         WHERE target = $1 AND topic = $2 AND partition = ANY($3)
         ORDER BY partition FOR UPDATE"
    } else {
        "SELECT partition, next_offset FROM consumer_offsets
         WHERE target = $1 AND topic = $2 AND partition = ANY($3)"
    };
    let rows: Vec<(i32, Option<i64>)> = sqlx::query_as(sql)
        .bind(target)
        .bind(topic)
        .bind(partitions)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Stored positions of `partitions` for `target` (creating missing rows as "from the beginning").
pub async fn load_positions(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, Position>, sqlx::Error> {
    positions(conn, target, topic, partitions, false).await
}

/// Like [`load_positions`], but locks the rows for the rest of the transaction.
pub(crate) async fn lock_positions(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, Position>, sqlx::Error> {
    positions(conn, target, topic, partitions, true).await
}

/// Records the next offset of each partition.
pub(crate) async fn save_positions(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    next: &[(i32, i64)],
) -> Result<(), sqlx::Error> {
    let partitions: Vec<i32> = next.iter().map(|(p, _)| *p).collect();
    let offsets: Vec<i64> = next.iter().map(|(_, o)| *o).collect();
    sqlx::query(
        "UPDATE consumer_offsets AS c
         SET next_offset = v.next_offset, updated_at = now()
         FROM unnest($3::int[], $4::bigint[]) AS v(partition, next_offset)
         WHERE c.target = $1 AND c.topic = $2 AND c.partition = v.partition",
    )
    .bind(target)
    .bind(topic)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Resets a partition's position to "from the beginning", if it still holds `from`.
pub(crate) async fn reset_position(
    conn: &mut PgConnection,
    target: &str,
    topic: &str,
    partition: i32,
    from: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE consumer_offsets SET next_offset = NULL, updated_at = now()
         WHERE target = $1 AND topic = $2 AND partition = $3 AND next_offset = $4",
    )
    .bind(target)
    .bind(topic)
    .bind(partition)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Every stored position of `target` on `topic` (for tools and tests).
pub async fn stored_positions(
    pool: &PgPool,
    target: &str,
    topic: &str,
) -> Result<HashMap<i32, Position>, sqlx::Error> {
    let rows: Vec<(i32, Option<i64>)> = sqlx::query_as(
        "SELECT partition, next_offset FROM consumer_offsets WHERE target = $1 AND topic = $2",
    )
    .bind(target)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}
