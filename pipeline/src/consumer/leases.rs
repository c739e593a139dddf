//! **Owns: partition ownership.** Which instance of a consumer group works on which partition,
//! decided through leases in Postgres, and the member's side of it: taking partitions up from
//! their stored positions and handing them back.
//!
//! Every instance runs [`step`] periodically. A step, in one transaction holding the group's lease
//! rows locked (so steps of different instances serialize):
//! 1. records the instance as alive;
//! 2. computes its fair share from the live members sorted by id (`P / N`, the first `P % N`
//!    members one more);
//! 3. renews the leases it holds, releases the ones above its share, and takes free or expired
//!    ones up to its share.
//!
//! The member then reconciles its Kafka assignment with what it owns ([`Member::lease_step`]):
//! before giving a partition up it finishes the in-flight batch (bounded) or drops it, and a taken
//! partition starts at its stored position. Ownership is advisory: correctness comes from the
//! positions fence (`position`), so two members briefly owning a partition cannot double-apply.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::TopicPartitionList;
use sqlx::PgPool;

use super::member::{Member, MemberConsumer};
use super::position::Position;
use super::Sink;

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
    sqlx::query!(
        "INSERT INTO consumer_members (group_id, topic, member, seen_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (group_id, topic, member) DO UPDATE SET seen_at = now()",
        group,
        topic,
        member
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO consumer_leases (group_id, topic, partition)
         SELECT $1, $2, p FROM generate_series(0, $3::int - 1) AS p
         ON CONFLICT (group_id, topic, partition) DO NOTHING",
        group,
        topic,
        partitions
    )
    .execute(&mut *tx)
    .await?;
    // Lock the group's leases first: steps of all members serialize here.
    let leases: Vec<(i32, Option<String>, bool)> = sqlx::query!(
        r#"SELECT partition, owner, expires_at > now() AS "valid!" FROM consumer_leases
         WHERE group_id = $1 AND topic = $2 AND partition < $3
         ORDER BY partition FOR UPDATE"#,
        group,
        topic,
        partitions
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.partition, r.owner, r.valid))
    .collect();
    let live: Vec<String> = sqlx::query_scalar!(
        "SELECT member FROM consumer_members
         WHERE group_id = $1 AND topic = $2
           AND seen_at > now() - make_interval(secs => $3::float8 / 1000.0)
         ORDER BY member",
        group,
        topic,
        ttl_ms
    )
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

    sqlx::query!(
        "UPDATE consumer_leases
         SET owner = $4, expires_at = now() + make_interval(secs => $5::float8 / 1000.0)
         WHERE group_id = $1 AND topic = $2 AND partition = ANY($3)",
        group,
        topic,
        &mine,
        member,
        ttl_ms
    )
    .execute(&mut *tx)
    .await?;
    if !release.is_empty() {
        sqlx::query!(
            "UPDATE consumer_leases SET owner = NULL, expires_at = '-infinity'
             WHERE group_id = $1 AND topic = $2 AND partition = ANY($3) AND owner = $4",
            group,
            topic,
            &release,
            member
        )
        .execute(&mut *tx)
        .await?;
    }
    // Members silent for much longer than the ttl are gone for good.
    sqlx::query!(
        "DELETE FROM consumer_members
         WHERE group_id = $1 AND topic = $2
           AND seen_at < now() - make_interval(secs => $3::float8 * 10 / 1000.0)",
        group,
        topic,
        ttl_ms
    )
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
    sqlx::query!(
        "UPDATE consumer_leases SET owner = NULL, expires_at = '-infinity'
         WHERE group_id = $1 AND topic = $2 AND owner = $3",
        group,
        topic,
        member
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM consumer_members WHERE group_id = $1 AND topic = $2 AND member = $3",
        group,
        topic,
        member
    )
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

/// Partitions to give up and to take, given what the member tracks and what it owns now.
fn reconcile(current: &BTreeSet<i32>, owned: &BTreeSet<i32>) -> (Vec<i32>, Vec<i32>) {
    (
        current.difference(owned).copied().collect(),
        owned.difference(current).copied().collect(),
    )
}

impl<S: Sink> Member<S> {
    /// Renews this member's leases and adjusts the Kafka assignment to what it owns. The caller
    /// has flushed the in-flight batch, so nothing is being applied while ownership changes.
    pub(super) fn lease_step(&self, consumer: &MemberConsumer<S>, partitions: i32) {
        let s = &self.deps.settings;
        let owned = self.rt.block_on(step(
            &self.deps.pool,
            &s.group_id,
            self.topic(),
            &s.instance_id,
            partitions,
            s.lease_ttl,
        ));
        let owned = match owned {
            Ok(owned) => owned,
            Err(e) => {
                self.deps.readiness.set("postgres", false, e.to_string());
                self.deps.metrics.postgres_error("transient");
                tracing::warn!(error = %e, "cannot renew partition leases");
                return;
            }
        };
        let current: BTreeSet<i32> = self.ledger().committed.keys().copied().collect();
        let (lost, gained) = reconcile(&current, &owned);
        if !lost.is_empty() {
            self.drop_partitions(consumer, &lost);
        }
        if !gained.is_empty() {
            self.take_partitions(consumer, &gained);
        }
        self.deps
            .readiness
            .set("kafka", true, format!("{} partitions owned", owned.len()));
    }

    /// Starts consuming `partitions` from their stored positions.
    pub(super) fn take_partitions(&self, consumer: &MemberConsumer<S>, partitions: &[i32]) -> bool {
        let Some(mut positions) = self.load(partitions) else {
            return false; // shutting down
        };
        self.reset_positions_past_the_end(consumer, &mut positions);
        let mut tpl = TopicPartitionList::new();
        {
            let mut ledger = self.ledger();
            for p in partitions {
                let pos = positions.get(p).copied().unwrap_or(Position::Beginning);
                if let Err(e) = tpl.add_partition_offset(self.topic(), *p, pos.seek_offset()) {
                    tracing::error!(partition = p, error = %e, "cannot build the assignment");
                }
                ledger.own(*p, pos);
            }
            self.deps
                .metrics
                .assigned
                .set(ledger.committed.len() as f64);
        }
        if let Err(e) = consumer.incremental_assign(&tpl) {
            tracing::error!(error = %e, "assign failed");
            return false;
        }
        self.deps.metrics.rebalance("assign");
        tracing::info!(
            ?partitions,
            ?positions,
            "partitions assigned; consuming from stored positions"
        );
        true
    }

    /// Stops consuming `partitions`. Callers flush the pending batch first when they can.
    pub(super) fn drop_partitions(&self, consumer: &MemberConsumer<S>, partitions: &[i32]) {
        let mut tpl = TopicPartitionList::new();
        {
            let mut ledger = self.ledger();
            for p in partitions {
                ledger.disown(*p);
                self.deps.metrics.set_lag(*p, 0);
                tpl.add_partition(self.topic(), *p);
            }
            self.deps
                .metrics
                .assigned
                .set(ledger.committed.len() as f64);
        }
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
        if let Err(e) = consumer.incremental_unassign(&tpl) {
            tracing::warn!(error = %e, "unassign failed");
        }
        self.deps.metrics.rebalance("revoke");
        tracing::info!(?partitions, "partitions revoked");
    }
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

    #[test]
    fn reconciling_gives_up_what_was_lost_and_takes_what_was_gained() {
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(
            reconcile(&set(&[0, 1, 2]), &set(&[1, 2, 3])),
            (vec![0], vec![3])
        );
        assert_eq!(reconcile(&set(&[]), &set(&[4, 5])), (vec![], vec![4, 5]));
        assert_eq!(reconcile(&set(&[4]), &set(&[4])), (vec![], vec![]));
    }
}
