//! `tunix-bench freshness`: time from a POST's answer until the trace is visible in GET by id
//! (`traces`) and in the list view, at fixed rates against the local stack.
//!
//! Run: `target/release/tunix-bench freshness --rates 1000,3000 --seconds 30`

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tunix_pipeline::db::DbSettings;
use uuid::Uuid;

use super::{quantiles, stack_load, StackEnv};
use crate::load::{self, Ack, LoadSpec, Stop};

/// How long sampled traces may take to become visible after the load ends.
pub(super) const FRESHNESS_GRACE: Duration = Duration::from_secs(30);

/// A load's report and the freshness of every 10th acknowledged trace.
pub struct Freshness {
    /// The load's report.
    pub report: load::LoadReport,
    /// Milliseconds from the acknowledgement to visibility in `traces` (GET by id).
    pub get_ms: Vec<f64>,
    /// ... and in the list view.
    pub list_ms: Vec<f64>,
    /// Sampled traces not visible within `FRESHNESS_GRACE` after the load.
    pub unseen: usize,
}

/// Runs `spec` (whose `ack_tx` feeds `rx`), tracking every 10th acknowledgement until it is
/// visible in both read models; returns when the load is over and every sampled trace was seen
/// (so the consumers have caught up), or after `FRESHNESS_GRACE`.
pub async fn load_with_freshness(
    pool: &PgPool,
    spec: LoadSpec,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Ack>,
) -> anyhow::Result<Freshness> {
    let load = tokio::spawn(load::run(spec));
    // Every 10th acknowledgement is tracked until visible in both tables.
    let mut pending: HashMap<Uuid, (Instant, Option<f64>, Option<f64>)> = HashMap::new();
    let mut get_ms = Vec::new();
    let mut list_ms = Vec::new();
    let mut n = 0u64;
    let mut load_done = false;
    let deadline_after_load = FRESHNESS_GRACE;
    let mut load_finished_at: Option<Instant> = None;
    let mut report = None;
    let mut load = Some(load);
    loop {
        while let Ok(ack) = rx.try_recv() {
            n += 1;
            if n.is_multiple_of(10) {
                pending.insert(ack.id, (ack.at, None, None));
            }
        }
        if !pending.is_empty() {
            let ids: Vec<Uuid> = pending.keys().copied().collect();
            let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM traces WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(pool)
                .await?;
            let listed: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM trace_list WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(pool)
                    .await?;
            let now = Instant::now();
            for id in stored {
                if let Some(e) = pending.get_mut(&id) {
                    e.1.get_or_insert(now.duration_since(e.0).as_secs_f64() * 1000.0);
                }
            }
            for id in listed {
                if let Some(e) = pending.get_mut(&id) {
                    e.2.get_or_insert(now.duration_since(e.0).as_secs_f64() * 1000.0);
                }
            }
            pending.retain(|_, e| match (e.1, e.2) {
                (Some(g), Some(l)) => {
                    get_ms.push(g);
                    list_ms.push(l);
                    false
                }
                _ => true,
            });
        }
        if !load_done && load.as_ref().is_some_and(|l| l.is_finished()) {
            load_done = true;
            load_finished_at = Some(Instant::now());
            report = Some(load.take().expect("load").await?);
        }
        if load_done
            && (pending.is_empty()
                || load_finished_at.is_some_and(|t| t.elapsed() > deadline_after_load))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Freshness {
        report: report.expect("load report"),
        get_ms,
        list_ms,
        unseen: pending.len(),
    })
}

/// Time from the POST's answer to visibility in `traces` (GET by id) and `trace_list` (the list).
/// 64 connections, so the client never limits the rate (a POST waits out the producer's linger).
pub async fn freshness(
    env: &StackEnv,
    root: &Path,
    addr: &str,
    rates: &[f64],
    duration: Duration,
) -> anyhow::Result<()> {
    let pool = DbSettings::for_url(&env.database_url).pool()?;
    println!("| rate traces/s | accepted/s | sampled | GET by id p50 ms | p99 ms | max ms | list p50 ms | p99 ms | max ms |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &rate in rates {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Ack>();
        let spec = LoadSpec {
            ack_tx: Some(tx),
            ..stack_load(addr, root, 64, Stop::After(duration), Some(rate), 3)
        };
        let f = load_with_freshness(&pool, spec, rx).await?;
        let (r, mut get_ms, mut list_ms, pending, deadline_after_load) =
            (f.report, f.get_ms, f.list_ms, f.unseen, FRESHNESS_GRACE);
        let (g50, g99, gmax) = quantiles(&mut get_ms);
        let (l50, l99, lmax) = quantiles(&mut list_ms);
        println!(
            "| {rate:.0} | {:.0} | {} | {g50:.0} | {g99:.0} | {gmax:.0} | {l50:.0} | {l99:.0} | {lmax:.0} |",
            r.accepted_per_sec(),
            get_ms.len()
        );
        if pending > 0 {
            println!(
                "({pending} sampled traces not visible within {deadline_after_load:?} after the load)"
            );
        }
    }
    Ok(())
}
