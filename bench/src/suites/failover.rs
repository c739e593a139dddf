//! `tunix-bench failover`: how long the partitions of a stopped consumer instance stay
//! unconsumed before the surviving instance of its group works on them again.
//!
//! On a fresh database and a fresh 6-partition topic, a background producer appends submitted
//! traces at a fixed rate spread over every partition. Per consumer (writer, projector), stop
//! mode (SIGKILL, SIGTERM) and round: two instances of a new group are started as processes (the
//! release binaries next to this one; the second a random fraction of a lease step after the
//! first, so their step timers are out of phase as in a deployment), the suite waits until they
//! own 3 partitions each and have caught up, waits another random fraction of a step (so the
//! stop falls anywhere in the victim's renewal cycle), stops one of them (alternately) and polls
//! the leases and positions every `POLL`. Per partition the victim owned it notes when the
//! lease became free (released, or expired), when the survivor took it, and when the survivor
//! first committed a batch on it (its position advanced in a transaction that started after the
//! take: the victim's own last batch, committed while it drained after SIGTERM, does not count).
//! A round's figure is the slowest of the victim's partitions.
//!
//! At the end the producer stops, one writer and one projector drain the topic, and the suite
//! checks that `traces` and the list view hold exactly the events produced and that both
//! consumers' positions sum to the topic's record count (every event applied, none skipped).
//!
//! Run: `cargo build --release -p tunix-bench -p tunix-writer -p tunix-projector && target/release/tunix-bench failover`

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tunix_pipeline::kafka::KafkaSettings;
use tunix_schemas::Trace;

use crate::suites::{producer, submitted, StackEnv};

/// How often leases and positions are read after the stop.
const POLL: Duration = Duration::from_millis(20);
/// Partitions of the bench topic (both instances own half of them).
const PARTITIONS: i32 = 6;

/// What to run.
pub struct FailoverSpec {
    /// Rounds per consumer and stop mode.
    pub rounds: usize,
    /// `*_LEASE_TTL_MS` of the instances.
    pub lease_ttl: Duration,
    /// Submitted traces per second, over all partitions.
    pub rate: f64,
    /// Which consumers: `writer`, `projector`.
    pub consumers: Vec<String>,
    /// Which stops: `kill` (SIGKILL), `term` (SIGTERM).
    pub stops: Vec<String>,
}

/// A consumer service.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    binary: &'static str,
    /// Prefix of its variables (`WRITER_GROUP_ID`, ...).
    prefix: &'static str,
    /// `consumer_offsets.target` of its read model.
    target: &'static str,
}

const WRITER: Kind = Kind {
    name: "writer",
    binary: "tunix-writer",
    prefix: "WRITER",
    target: "traces",
};

const PROJECTOR: Kind = Kind {
    name: "projector",
    binary: "tunix-projector",
    prefix: "PROJECTOR",
    target: "trace_list_v1",
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

impl Stop {
    fn label(self) -> &'static str {
        match self {
            Stop::Kill => "SIGKILL",
            Stop::Term => "SIGTERM",
        }
    }
}

/// A service binary next to this one (`cargo build --release` builds them all).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build --release -p tunix-writer -p tunix-projector` first",
        path.display()
    );
    Ok(path)
}

fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// One consumer instance as a child process, SIGKILLed when dropped (on every exit path).
struct Instance {
    id: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Instance {
    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Whether the process has exited (reaping it).
    fn exited(&mut self) -> bool {
        !self.alive()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn sigterm(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `timeout`. Returns whether it exited
    /// on its own.
    async fn terminate(&mut self, timeout: Duration) -> bool {
        self.sigterm();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.exited() {
                self.child = None;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        false
    }

    /// The last lines of its log, for error messages.
    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- last lines of {} ---\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What every round shares.
struct Ctx<'a> {
    env: &'a StackEnv,
    url: &'a str,
    pool: &'a PgPool,
    topic: &'a KafkaSettings,
    ttl: Duration,
    rate: f64,
    logs: PathBuf,
    stamp: String,
    watermarks: Arc<BaseConsumer>,
}

impl Ctx<'_> {
    fn spawn(&self, kind: Kind, group: &str, instance: &str) -> anyhow::Result<Instance> {
        let log = self.logs.join(format!("{group}-{instance}.log"));
        let out = File::create(&log)?;
        let var = |name: &str| format!("{}_{name}", kind.prefix);
        let child = Command::new(sibling(kind.binary)?)
            .env("DATABASE_URL", self.url)
            .env("KAFKA_BROKERS", &self.env.brokers)
            .env("KAFKA_TOPIC", &self.topic.topic)
            .env("RUN_MIGRATIONS", "true")
            .env("LOG_FORMAT", "text")
            .env(var("GROUP_ID"), group)
            .env(var("INSTANCE_ID"), instance)
            .env(var("OPS_ADDR"), free_addr()?)
            .env(var("LEASE_TTL_MS"), self.ttl.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Instance {
            id: instance.to_owned(),
            child: Some(child),
            log,
        })
    }

    /// High watermarks of the topic's partitions.
    async fn high_watermarks(&self) -> anyhow::Result<BTreeMap<i32, i64>> {
        let consumer = self.watermarks.clone();
        let topic = self.topic.topic.clone();
        tokio::task::spawn_blocking(move || {
            (0..PARTITIONS)
                .map(|p| {
                    let (_, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(5))?;
                    Ok((p, high))
                })
                .collect()
        })
        .await?
    }
}

/// One partition's lease and stored position, read in one statement (one snapshot).
#[derive(sqlx::FromRow)]
struct Row {
    partition: i32,
    owner: Option<String>,
    valid: bool,
    /// `expires_at` in ms since the epoch (server clock); `None` for `-infinity`.
    expires_ms: Option<f64>,
    next_offset: Option<i64>,
    /// When the transaction that last stored the position started (server clock, ms).
    updated_ms: Option<f64>,
    /// The server's clock when the row was read, in ms since the epoch.
    now_ms: f64,
}

async fn snapshot(
    pool: &PgPool,
    group: &str,
    topic: &str,
    target: &str,
) -> anyhow::Result<BTreeMap<i32, Row>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT l.partition, l.owner, l.expires_at > now() AS valid,
                CASE WHEN l.expires_at = '-infinity' THEN NULL
                     ELSE extract(epoch FROM l.expires_at)::float8 * 1000 END AS expires_ms,
                o.next_offset,
                extract(epoch FROM o.updated_at)::float8 * 1000 AS updated_ms,
                extract(epoch FROM clock_timestamp())::float8 * 1000 AS now_ms
         FROM consumer_leases l
         LEFT JOIN consumer_offsets o
           ON o.target = $3 AND o.topic = l.topic AND o.partition = l.partition
         WHERE l.group_id = $1 AND l.topic = $2
         ORDER BY l.partition",
    )
    .bind(group)
    .bind(topic)
    .bind(target)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.partition, r)).collect())
}

/// Partitions per owner among valid leases.
fn owners(snap: &BTreeMap<i32, Row>) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for r in snap.values().filter(|r| r.valid) {
        if let Some(o) = &r.owner {
            out.entry(o.clone()).or_default().push(r.partition);
        }
    }
    out
}

fn position(r: Option<&Row>) -> i64 {
    r.and_then(|r| r.next_offset).unwrap_or(0)
}

/// Waits until `a` and `b` own 3 partitions each, every partition's position has advanced since
/// then (both consume), and the group is less than half a second of production behind.
async fn wait_steady(
    ctx: &Ctx<'_>,
    kind: Kind,
    group: &str,
    a: &mut Instance,
    b: &mut Instance,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + ctx.ttl * 3 + Duration::from_secs(60);
    let topic = &ctx.topic.topic;
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let balanced = |snap: &BTreeMap<i32, Row>| {
        let o = owners(snap);
        o.get(&a_id).map(Vec::len) == Some(3) && o.get(&b_id).map(Vec::len) == Some(3)
    };
    let mut since: Option<BTreeMap<i32, i64>> = None;
    loop {
        for i in [&mut *a, &mut *b] {
            if i.exited() {
                anyhow::bail!("{} {} exited\n{}", kind.name, i.id, i.log_tail(30));
            }
        }
        let snap = snapshot(ctx.pool, group, topic, kind.target).await?;
        if !balanced(&snap) {
            since = None;
        } else if let Some(before) = &since {
            let advanced = (0..PARTITIONS).all(|p| position(snap.get(&p)) > before[&p]);
            if advanced {
                let high = ctx.high_watermarks().await?;
                let lag: i64 = (0..PARTITIONS)
                    .map(|p| (high[&p] - position(snap.get(&p))).max(0))
                    .sum();
                if lag as f64 <= (ctx.rate / 2.0).max(50.0) {
                    return Ok(());
                }
            }
        } else {
            since = Some(
                (0..PARTITIONS)
                    .map(|p| (p, position(snap.get(&p))))
                    .collect(),
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{group}: the two instances did not settle on 3 partitions each and catch up \
             (owners: {:?})\n{}\n{}",
            owners(&snap),
            a.log_tail(15),
            b.log_tail(15)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When something happened to one of the victim's partitions, from the stop.
#[derive(Default, Clone, Copy)]
struct Partition {
    /// The lease was no longer the victim's valid lease (released, or expired).
    free: Option<Duration>,
    /// The survivor held a valid lease on it.
    taken: Option<Duration>,
    /// `expires_at - ttl` when first seen taken: the server time of the take.
    taken_ms: Option<f64>,
    /// The survivor's first batch on it was visible.
    resumed: Option<Duration>,
}

/// One round's outcome: per figure, the slowest of the victim's partitions (`None`: at least
/// one partition never got there before the deadline).
struct Round {
    free: Option<Duration>,
    taken: Option<Duration>,
    resumed: Option<Duration>,
    /// SIGTERM: when the victim's process had exited.
    exited: Option<Duration>,
}

fn slowest(parts: &[Partition], f: impl Fn(&Partition) -> Option<Duration>) -> Option<Duration> {
    parts
        .iter()
        .map(f)
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .max()
}

async fn round(ctx: &Ctx<'_>, kind: Kind, stop: Stop, n: usize) -> anyhow::Result<Round> {
    let mode = match stop {
        Stop::Kill => "kill",
        Stop::Term => "term",
    };
    let group = format!("failover-{}-{mode}-{n}-{}", kind.name, ctx.stamp);
    let topic = &ctx.topic.topic;
    let mut a = ctx.spawn(kind, &group, &format!("{}-a", kind.name))?;
    // Each instance steps every min(ttl/3, 1 s) from its own start: started together, their steps would
    // stay in phase, and the survivor's first step after the victim's leases expire would come
    // either at once or a whole step later. Deployed instances start at unrelated times.
    tokio::time::sleep(ctx.ttl.mul_f64(rand::random::<f64>() / 3.0)).await;
    let mut b = ctx.spawn(kind, &group, &format!("{}-b", kind.name))?;
    wait_steady(ctx, kind, &group, &mut a, &mut b).await?;
    // Stop anywhere in the renewal cycle (a step every min(ttl/3, 1 s)), not right after a step.
    tokio::time::sleep(ctx.ttl.mul_f64(rand::random::<f64>() / 3.0)).await;

    let (victim, survivor) = if n % 2 == 1 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let before = snapshot(ctx.pool, &group, topic, kind.target).await?;
    let mine: Vec<i32> = owners(&before).remove(&victim.id).unwrap_or_default();
    anyhow::ensure!(mine.len() == 3, "{group}: {} owns {mine:?}", victim.id);
    let base: HashMap<i32, i64> = mine.iter().map(|p| (*p, position(before.get(p)))).collect();
    // How long the victim's leases had left at the stop (SIGKILL: until they expire).
    let left_ms = mine
        .iter()
        .filter_map(|p| before.get(p))
        .filter_map(|r| Some(r.expires_ms? - r.now_ms))
        .fold(f64::NAN, f64::max);
    let ttl_ms = ctx.ttl.as_secs_f64() * 1000.0;

    let stopped = Instant::now();
    match stop {
        Stop::Kill => victim.kill(),
        Stop::Term => victim.sigterm(),
    }
    let deadline = stopped + ctx.ttl * 2 + Duration::from_secs(30);
    let mut parts: BTreeMap<i32, Partition> =
        mine.iter().map(|p| (*p, Partition::default())).collect();
    let mut exited = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = stopped.elapsed();
        if exited.is_none() && victim.exited() {
            exited = Some(t);
        }
        let snap = snapshot(ctx.pool, &group, topic, kind.target).await?;
        for (p, part) in &mut parts {
            let Some(row) = snap.get(p) else { continue };
            let owner = row.owner.as_deref();
            if part.free.is_none() && !(row.valid && owner == Some(&victim.id)) {
                part.free = Some(t);
            }
            if part.taken.is_none() && row.valid && owner == Some(&survivor.id) {
                part.taken = Some(t);
                part.taken_ms = row.expires_ms.map(|e| e - ttl_ms);
            }
            if part.resumed.is_none() {
                if let (Some(taken_ms), Some(updated_ms)) = (part.taken_ms, row.updated_ms) {
                    if updated_ms >= taken_ms && position(Some(row)) > base[p] {
                        part.resumed = Some(t);
                    }
                }
            }
        }
        if parts.values().all(|p| p.resumed.is_some()) {
            break;
        }
        if !survivor.alive() {
            anyhow::bail!(
                "{group}: the survivor {} exited\n{}",
                survivor.id,
                survivor.log_tail(30)
            );
        }
        if Instant::now() > deadline {
            eprintln!(
                "  {group}: partitions still not consumed {:?} after the stop (logs in {})",
                deadline - stopped,
                ctx.logs.display()
            );
            break;
        }
    }
    let parts: Vec<Partition> = parts.into_values().collect();
    let r = Round {
        free: slowest(&parts, |p| p.free),
        taken: slowest(&parts, |p| p.taken),
        resumed: slowest(&parts, |p| p.resumed),
        exited,
    };
    let ms =
        |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()));
    eprintln!(
        "  {} {} round {n}: {} owned {mine:?} at {:?}; leases free after {}, taken after {}, \
         consumed again after {}{}; its leases had {:.0} ms left",
        kind.name,
        stop.label(),
        victim.id,
        mine.iter().map(|p| base[p]).collect::<Vec<_>>(),
        ms(r.free),
        ms(r.taken),
        ms(r.resumed),
        match (stop, exited) {
            (Stop::Term, Some(e)) => format!(" (the victim exited after {} ms)", e.as_millis()),
            (Stop::Term, None) => " (the victim had not exited yet)".to_owned(),
            _ => String::new(),
        },
        left_ms
    );
    if !survivor.terminate(Duration::from_secs(30)).await {
        eprintln!("  {} did not exit within 30 s of SIGTERM", survivor.id);
    }
    // The victim, if SIGTERM has not ended it yet (Drop would SIGKILL it).
    if victim.alive() && !victim.terminate(Duration::from_secs(30)).await {
        eprintln!("  {} did not exit within 30 s of SIGTERM", victim.id);
    }
    Ok(r)
}

/// The background producer's totals.
struct Produced {
    sent: u64,
    acked: u64,
    failed: u64,
    rate: f64,
}

/// Appends submitted traces at `rate` per second, each to its trace's partition, until
/// `stop` is cancelled; then waits for every delivery report.
async fn produce(
    brokers: String,
    topic: String,
    traces: Vec<Trace>,
    rate: f64,
    stop: CancellationToken,
) -> anyhow::Result<Produced> {
    let producer = producer(&brokers)?;
    let encoder = tunix_schemas::Encoder::confluent_builtin();
    let mut inflight = futures::stream::FuturesUnordered::new();
    let (mut sent, mut acked, mut failed) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(r) = inflight.next(), if !inflight.is_empty() => count(r, &mut acked, &mut failed),
            _ = tick.tick() => {
                let due = (started.elapsed().as_secs_f64() * rate) as u64;
                while sent < due {
                    let event = submitted(traces[sent as usize % traces.len()].clone());
                    let key = event.key();
                    let value = encoder.encode(&event);
                    let partition = tunix_schemas::partition_for(&event.id(), PARTITIONS);
                    match producer.send_result(
                        FutureRecord::to(&topic).key(&key).payload(&value).partition(partition),
                    ) {
                        Ok(delivery) => inflight.push(delivery),
                        // A full queue: the broker is behind; send the rest on the next tick.
                        Err(_) => break,
                    }
                    sent += 1;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    while let Some(r) = inflight.next().await {
        count(r, &mut acked, &mut failed);
    }
    Ok(Produced {
        sent,
        acked,
        failed,
        rate: sent as f64 / elapsed.as_secs_f64(),
    })
}

/// Counts one delivery report (`Ok(Ok(_))`: the broker has the record).
fn count<T, E, C>(r: Result<Result<T, E>, C>, acked: &mut u64, failed: &mut u64) {
    match r {
        Ok(Ok(_)) => *acked += 1,
        _ => *failed += 1,
    }
}

async fn positions_total(pool: &PgPool, target: &str, topic: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM consumer_offsets WHERE target = $1 AND topic = $2",
    )
    .bind(target)
    .bind(topic)
    .fetch_one(pool)
    .await?
    .unwrap_or(0))
}

/// Drains the topic with one writer and one projector and checks that each stored every event
/// exactly once. Returns the line to print.
async fn verify(ctx: &Ctx<'_>, produced: &Produced) -> anyhow::Result<String> {
    let high: i64 = ctx.high_watermarks().await?.values().sum();
    // A group each: leases are per group and topic, whatever the service.
    let group = |kind: Kind| format!("failover-{}-final-{}", kind.name, ctx.stamp);
    let mut writer = ctx.spawn(WRITER, &group(WRITER), "writer-final")?;
    let mut projector = ctx.spawn(PROJECTOR, &group(PROJECTOR), "projector-final")?;
    let deadline = Instant::now() + ctx.ttl * 3 + Duration::from_secs(120);
    let topic = &ctx.topic.topic;
    loop {
        let w = positions_total(ctx.pool, WRITER.target, topic).await?;
        let p = positions_total(ctx.pool, PROJECTOR.target, topic).await?;
        if w >= high && p >= high {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "final drain: writer at {w}, projector at {p} of {high} records\n{}\n{}",
            writer.log_tail(15),
            projector.log_tail(15)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writer.terminate(Duration::from_secs(30)).await;
    projector.terminate(Duration::from_secs(30)).await;
    let traces: i64 = sqlx::query_scalar("SELECT count(*) FROM traces")
        .fetch_one(ctx.pool)
        .await?;
    let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_list_v1")
        .fetch_one(ctx.pool)
        .await?;
    let w = positions_total(ctx.pool, WRITER.target, topic).await?;
    let p = positions_total(ctx.pool, PROJECTOR.target, topic).await?;
    let line = format!(
        "produced {} events ({} acknowledged, {} failed deliveries; the topic holds {high} \
         records); after the last round: traces {traces}, trace_list_v1 {listed} rows; \
         positions sum to {w} (writer), {p} (projector)",
        produced.sent, produced.acked, produced.failed
    );
    anyhow::ensure!(
        produced.failed == 0
            && high == produced.acked as i64
            && traces == high
            && listed == high
            && w == high
            && p == high,
        "NOT every event applied exactly once: {line}"
    );
    Ok(line)
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2),
    }
}

/// `median (min–max)` in seconds, with the rounds that never got there.
fn cell(rounds: &[Round], f: impl Fn(&Round) -> Option<Duration>) -> String {
    let done: Vec<Duration> = rounds.iter().filter_map(&f).collect();
    let never = rounds.len() - done.len();
    let s = |d: Duration| format!("{:.2}", d.as_secs_f64());
    let mut out = match (median(done.clone()), done.iter().min(), done.iter().max()) {
        (Some(m), Some(lo), Some(hi)) => format!("{} ({}–{})", s(m), s(*lo), s(*hi)),
        _ => "-".to_owned(),
    };
    if never > 0 {
        out.push_str(&format!(", **{never} of {} never**", rounds.len()));
    }
    out
}

/// Runs the suite.
pub async fn failover(env: &StackEnv, root: &Path, spec: FailoverSpec) -> anyhow::Result<()> {
    anyhow::ensure!(spec.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        spec.rate >= 60.0,
        "--rate must be at least 60/s: every partition needs records to show it is consumed"
    );
    let mut plan = Vec::new();
    for c in &spec.consumers {
        let kind = match c.as_str() {
            "writer" => WRITER,
            "projector" => PROJECTOR,
            other => anyhow::bail!("unknown consumer {other:?} (writer, projector)"),
        };
        for s in &spec.stops {
            let stop = match s.as_str() {
                "kill" => Stop::Kill,
                "term" => Stop::Term,
                other => anyhow::bail!("unknown stop {other:?} (kill, term)"),
            };
            plan.push((kind, stop));
        }
    }
    sibling(WRITER.binary)?;
    sibling(PROJECTOR.binary)?;

    let (url, pool) = env.fresh_database("tunix_bench_failover").await?;
    let topic = match env.fresh_topic("bench_failover").await {
        Ok(t) => t,
        Err(e) => {
            pool.close().await;
            env.drop_database(&url).await;
            return Err(e);
        }
    };
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let logs = std::env::temp_dir().join(format!("tunix-bench-failover-{stamp}"));
    let result = match std::fs::create_dir_all(&logs) {
        Ok(()) => {
            eprintln!("instance logs: {}", logs.display());
            let fresh = Fresh {
                url: &url,
                pool: &pool,
                topic: &topic,
                logs: &logs,
                stamp: &stamp,
            };
            tokio::select! {
                r = run(env, root, &spec, &plan, fresh) => r,
                _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            }
        }
        Err(e) => Err(e.into()),
    };
    pool.close().await;
    let keep = std::env::var_os("TUNIX_BENCH_KEEP").is_some();
    if keep {
        eprintln!("kept {url} and topic {}", topic.topic);
    } else {
        env.drop_database(&url).await;
        env.delete_topic(&topic).await;
    }
    if result.is_ok() && !keep {
        let _ = std::fs::remove_dir_all(&logs);
    } else {
        eprintln!("instance logs kept in {}", logs.display());
    }
    result
}

/// What the suite created for the run.
struct Fresh<'a> {
    url: &'a str,
    pool: &'a PgPool,
    topic: &'a KafkaSettings,
    logs: &'a Path,
    stamp: &'a str,
}

async fn run(
    env: &StackEnv,
    root: &Path,
    spec: &FailoverSpec,
    plan: &[(Kind, Stop)],
    fresh: Fresh<'_>,
) -> anyhow::Result<()> {
    let Fresh {
        url,
        pool,
        topic,
        logs,
        stamp,
    } = fresh;
    let partitions = topic.partition_count(&topic.topic, Duration::from_secs(10))?;
    anyhow::ensure!(
        partitions == PARTITIONS,
        "{} has {partitions} partitions",
        topic.topic
    );
    let watermarks: BaseConsumer = topic
        .client_config()
        .set("group.id", "bench-failover-watermarks")
        .set("enable.auto.commit", "false")
        .create()?;
    let ctx = Ctx {
        env,
        url,
        pool,
        topic,
        ttl: spec.lease_ttl,
        rate: spec.rate,
        logs: logs.to_path_buf(),
        stamp: stamp.to_owned(),
        watermarks: Arc::new(watermarks),
    };

    let traces: Vec<Trace> = crate::gen::dataset(root)
        .iter()
        .map(|v| Trace::parse_json(&serde_json::to_vec(v).expect("json")).expect("valid"))
        .collect();
    let stop_producing = CancellationToken::new();
    let _stop_on_exit = stop_producing.clone().drop_guard();
    let producer = tokio::spawn(produce(
        env.brokers.clone(),
        topic.topic.clone(),
        traces,
        spec.rate,
        stop_producing.clone(),
    ));

    let mut results: Vec<(Kind, Stop, Vec<Round>)> = Vec::new();
    for &(kind, stop) in plan {
        let mut rounds = Vec::new();
        for n in 1..=spec.rounds {
            rounds.push(round(&ctx, kind, stop, n).await?);
        }
        results.push((kind, stop, rounds));
    }

    stop_producing.cancel();
    let produced = producer.await??;
    eprintln!("verifying: one writer and one projector drain the topic...");
    let verified = verify(&ctx, &produced).await;

    let ttl = format!("{:.1} s", spec.lease_ttl.as_secs_f64());
    println!(
        "Apache Kafka at {}, one topic of {PARTITIONS} partitions; {:.0} submitted traces/s \
         (~0.5 KB) spread over all of them during the whole run; per round two new instances \
         of a new group (3 partitions each; the second started a random fraction of a lease \
         step after the first), one stopped at a random point of its renewal cycle (a step \
         every TTL/3, at most 1 s), instances alternating; positions and leases polled every \
         {} ms. Per round the slowest of the victim's 3 partitions; seconds from the signal, \
         median of {} rounds (min–max).\n",
        env.brokers,
        produced.rate,
        POLL.as_millis(),
        spec.rounds
    );
    println!(
        "| consumer | stop | lease TTL | leases free | taken by the survivor | consumed again (failover) | SIGTERM: victim exited |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (kind, stop, rounds) in &results {
        println!(
            "| {} | {} | {ttl} | {} | {} | **{}** | {} |",
            kind.name,
            stop.label(),
            cell(rounds, |r| r.free),
            cell(rounds, |r| r.taken),
            cell(rounds, |r| r.resumed),
            match stop {
                Stop::Term => cell(rounds, |r| r.exited),
                Stop::Kill => "-".to_owned(),
            }
        );
    }
    println!();
    for (kind, stop, rounds) in &results {
        let each: Vec<String> = rounds
            .iter()
            .map(|r| {
                r.resumed
                    .map_or("never".to_owned(), |d| format!("{:.2}", d.as_secs_f64()))
            })
            .collect();
        println!(
            "- {} {}: failover per round {} s",
            kind.name,
            stop.label(),
            each.join(", ")
        );
    }
    println!();
    match verified {
        Ok(line) => {
            println!("Check: every event stored once (no loss, no extra row): {line}.");
            Ok(())
        }
        Err(e) => {
            println!("{e}");
            Err(e)
        }
    }
}
