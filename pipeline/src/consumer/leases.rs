//! Partition leases in Postgres: which instance of a consumer group works on which partition.
//!
//! Every instance runs [`step`] periodically. A step, in one transaction holding the group's lease
//! rows locked (so steps of different instances serialize):
//! 1. records the instance as alive;
//! 2. computes its fair share from the live members sorted by id (`P / N`, the first `P % N`
//!    members one more);
//! 3. renews the leases it holds, releases the ones above its share, and takes free or expired
//!    ones up to its share.
//!
//! Ownership is advisory: correctness comes from the positions fence in `consumer_offsets`.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::PgPool;

/// The partitions `member` owns after the step.
pub async fn step(
    pool: &PgPool,
    group: &str,
    topic: &str,
    member: &str,
    partitions: i32,
    ttl: Duration,
) -> Result<BTreeSet<i32>, sqlx::Error> {
    let ttl_ms = ttl.as_millis() as f64;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO consumer_members (group_id, topic, member, seen_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (group_id, topic, member) DO UPDATE SET seen_at = now()",
    )
    .bind(group)
    .bind(topic)
    .bind(member)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO consumer_leases (group_id, topic, partition)
         SELECT $1, $2, p FROM generate_series(0, $3 - 1) AS p
         ON CONFLICT (group_id, topic, partition) DO NOTHING",
    )
    .bind(group)
    .bind(topic)
    .bind(partitions)
    .execute(&mut *tx)
    .await?;
    // Lock the group's leases first: steps of all members serialize here.
    let leases: Vec<(i32, Option<String>, bool)> = sqlx::query_as(
        "SELECT partition, owner, expires_at > now() FROM consumer_leases
         WHERE group_id = $1 AND topic = $2 AND partition < $3
         ORDER BY partition FOR UPDATE",
    )
    .bind(group)
    .bind(topic)
    .bind(partitions)
    .fetch_all(&mut *tx)
    .await?;
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT member FROM consumer_members
         WHERE group_id = $1 AND topic = $2 AND seen_at > now() - make_interval(secs => $3 / 1000.0)
         ORDER BY member",
    )
    .bind(group)
    .bind(topic)
    .bind(ttl_ms)
    .fetch_all(&mut *tx)
    .await?;
    let quota = fair_share(partitions as usize, &live, member);

    let mut mine: Vec<i32> = leases
        .iter()
        .filter(|(_, owner, _)| owner.as_deref() == Some(member))
        .map(|(p, _, _)| *p)
        .collect();
    let mut release = Vec::new();
    while mine.len() > quota {
        release.push(mine.pop().expect("non-empty"));
    }
    let free: Vec<i32> = leases
        .iter()
        .filter(|(_, owner, valid)| owner.is_none() || !valid)
        .filter(|(_, owner, _)| owner.as_deref() != Some(member))
        .map(|(p, _, _)| *p)
        .take(quota.saturating_sub(mine.len()))
        .collect();
    mine.extend(&free);

    sqlx::query(
        "UPDATE consumer_leases SET owner = $4, expires_at = now() + make_interval(secs => $5 / 1000.0)
         WHERE group_id = $1 AND topic = $2 AND partition = ANY($3)",
    )
    .bind(group)
    .bind(topic)
    .bind(&mine)
    .bind(member)
    .bind(ttl_ms)
    .execute(&mut *tx)
    .await?;
    if !release.is_empty() {
        sqlx::query(
            "UPDATE consumer_leases SET owner = NULL, expires_at = '-infinity'
             WHERE group_id = $1 AND topic = $2 AND partition = ANY($3) AND owner = $4",
        )
        .bind(group)
        .bind(topic)
        .bind(&release)
        .bind(member)
        .execute(&mut *tx)
        .await?;
    }
    // Members silent for much longer than the ttl are gone for good.
    sqlx::query(
        "DELETE FROM consumer_members
         WHERE group_id = $1 AND topic = $2 AND seen_at < now() - make_interval(secs => $3 * 10 / 1000.0)",
    )
    .bind(group)
    .bind(topic)
    .bind(ttl_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(mine.into_iter().collect())
}

/// Gives up every lease of `member` and forgets it (clean shutdown), so others take over at once.
pub async fn leave(
    pool: &PgPool,
    group: &str,
    topic: &str,
    member: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE consumer_leases SET owner = NULL, expires_at = '-infinity'
         WHERE group_id = $1 AND topic = $2 AND owner = $3",
    )
    .bind(group)
    .bind(topic)
    .bind(member)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM consumer_members WHERE group_id = $1 AND topic = $2 AND member = $3")
        .bind(group)
        .bind(topic)
        .bind(member)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// How many of `partitions` the member should own among `live` members (sorted by id).
pub fn fair_share(partitions: usize, live: &[String], member: &str) -> usize {
    let n = live.len().max(1);
    let rank = live.iter().position(|m| m == member).unwrap_or(live.len());
    if rank >= n {
        // Not (yet) counted as live: claim nothing rather than overshoot.
        return 0;
    }
    partitions / n + usize::from(rank < partitions % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for partitions in [1usize, 2, 6, 7, 32] {
            for n in 1..=8 {
                let live: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
                let shares: Vec<usize> = live
                    .iter()
                    .map(|m| fair_share(partitions, &live, m))
                    .collect();
                assert_eq!(
                    shares.iter().sum::<usize>(),
                    partitions,
                    "{partitions} over {n}"
                );
                let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(max - min <= 1);
            }
        }
        assert_eq!(fair_share(6, &["a".into()], "b"), 0);
    }
}
