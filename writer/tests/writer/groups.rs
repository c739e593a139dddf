//! Writers of one group on Apache Kafka: a killed member's partitions move to the survivor, and
//! the group's lag is what Kafka's own `kafka-consumer-groups` tool reports.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tunix_testkit::{dataset_traces, eventually, produce_events, submitted, TestDb, TestTopic};

use crate::helpers::*;

const DRAIN: Duration = Duration::from_secs(90);

/// `(partition -> (current offset, log-end offset, lag))` of `topic` in `group`, as
/// `kafka-consumer-groups --describe` prints it (`None` while the group has no offsets).
fn describe_group(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Option<BTreeMap<i32, (i64, i64, i64)>> {
    let out = tunix_testkit::kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            brokers,
            "--describe",
            "--group",
            group,
        ],
    );
    let rows: BTreeMap<i32, (i64, i64, i64)> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 6 && cols[0] == group && cols[1] == topic)
        .filter_map(|cols| {
            Some((
                cols[2].parse().ok()?,
                (
                    cols[3].parse().ok()?,
                    cols[4].parse().ok()?,
                    cols[5].parse().ok()?,
                ),
            ))
        })
        .collect();
    (!rows.is_empty()).then_some(rows)
}

async fn describe(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Option<BTreeMap<i32, (i64, i64, i64)>> {
    let (brokers, group, topic) = (brokers.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || describe_group(&brokers, &group, &topic))
        .await
        .expect("describe task")
}

/// Positions are authoritative in Postgres; Kafka gets a copy after each commit, so operators'
/// tools see the group's lag: zero when caught up, the unread records while the writer is down.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_consumer_groups_shows_the_writers_lag() {
    let db = TestDb::new().await;
    let topic = TestTopic::new(3).await;
    let group = tunix_testkit::unique("w");
    let first: Vec<_> = submissions(0..300);
    produce_events(&topic, &first).await;
    let mut writer = start_process(&db.url, &topic, &group, "writer-lag");
    wait_for_rows(&db.pool, 300, DRAIN).await;
    let caught_up = eventually(DRAIN, "kafka-consumer-groups shows lag 0", || async {
        let rows = describe(&topic.settings.brokers, &group, topic.name()).await?;
        (rows.len() == 3 && rows.values().all(|(_, _, lag)| *lag == 0)).then_some(rows)
    })
    .await;
    assert_eq!(
        caught_up
            .values()
            .map(|(current, _, _)| current)
            .sum::<i64>(),
        300,
        "{caught_up:?}"
    );
    assert!(
        writer
            .terminate(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "clean exit"
    );

    let second: Vec<_> = submissions(300..500);
    produce_events(&topic, &second).await;
    let behind = eventually(DRAIN, "kafka-consumer-groups shows the lag", || async {
        let rows = describe(&topic.settings.brokers, &group, topic.name()).await?;
        (rows.values().map(|(_, _, lag)| lag).sum::<i64>() == 200).then_some(rows)
    })
    .await;
    eprintln!("while the writer is down: {behind:?}");
    assert_eq!(
        behind.values().map(|(_, end, _)| end).sum::<i64>(),
        500,
        "log-end offsets"
    );
}

/// Two writers share six partitions; one is SIGKILLed. Its leases expire after the lease TTL
/// and the survivor takes its partitions over from the stored positions: every record is
/// stored once, and nothing waits longer than the TTL plus a step.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_writers_partitions_move_to_the_survivor() {
    let db = TestDb::new().await;
    let topic = TestTopic::new(6).await;
    let group = tunix_testkit::unique("w");
    let ttl = Duration::from_secs(3);
    let with_ttl = |instance: &str| {
        let mut s = start_process(&db.url, &topic, &group, instance);
        s.set_env("WRITER_LEASE_TTL_MS", Some(&ttl.as_millis().to_string()));
        s.restart();
        s
    };
    let mut a = with_ttl("writer-a");
    let mut b = with_ttl("writer-b");
    let traces = dataset_traces();
    let events: Vec<_> = (0..4000)
        .map(|i| submitted(traces[i % traces.len()].clone()))
        .collect();
    produce_events(&topic, &events[..2000]).await;
    wait_for_rows(&db.pool, 2000, DRAIN).await;
    eventually(DRAIN, "both writers own partitions", || async {
        let owners: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT owner) FROM consumer_leases
             WHERE group_id = $1 AND topic = $2 AND expires_at > now()",
        )
        .bind(&group)
        .bind(topic.name())
        .fetch_one(&db.pool)
        .await
        .ok()?;
        (owners == 2).then_some(())
    })
    .await;

    a.kill();
    let killed = Instant::now();
    produce_events(&topic, &events[2000..]).await;
    wait_for_rows(&db.pool, 4000, DRAIN).await;
    wait_for_positions(&db.pool, topic.name(), 4000, DRAIN, "positions at the end").await;
    let took = killed.elapsed();
    eprintln!(
        "failover after SIGKILL (lease TTL {ttl:?}): all records stored {took:?} after the kill"
    );
    assert_payloads(&db.pool, &events).await;
    let survivor: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT owner FROM consumer_leases
         WHERE group_id = $1 AND topic = $2 AND expires_at > now()",
    )
    .bind(&group)
    .bind(topic.name())
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        survivor,
        vec!["writer-b".to_owned()],
        "b owns every partition"
    );
    assert!(b.is_running(), "{}", b.log_tail(20));
}
