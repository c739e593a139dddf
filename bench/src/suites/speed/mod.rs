//! `tunix-bench speed`: every hot request of ingest-api next to what the box and Postgres can do,
//! as same-run ratios (medians over rounds). Each round measures, back to back:
//! - the anchors: the no-op HTTP service (`tunix-noop`, same HTTP stack, no work), pgbench on the
//!   same rows (15 clients, as the anchor: the primary-key select of the GET's row, and
//!   for the pages the very statements ingest-api runs), the raw idempotent producer into the
//!   same broker and, when `--original-addr` is given, the original service;
//! - tunix-rt: GET by id, the first list page, filtered pages (meta, tag, text), single POSTs
//!   (full pipeline: writer and projector running) and batches of 100.
//!
//! HTTP load is `wrk -t1 -c64` (apt: `wrk`), Postgres load is `pgbench` (PostgreSQL's client
//! package). The filtered pages' pgbench scripts are the statements `ListQuery` builds, with the
//! values checked against the API's own page first, so the anchor runs exactly what the API
//! runs.
//!
//! Run: `target/release/tunix-bench speed` (the stack up, `cargo build --release -p tunix-bench`)

mod scripts;
mod tools;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::PgPool;
use tunix_ingest_api::traces::filter::ListQuery;
use uuid::Uuid;

use super::{find_root, produce_raw, StackEnv};
use crate::gen::Shape;
use crate::load::{self, LoadSpec, Stop};
use scripts::Scripts;
use tools::{fetch, pgbench, post_ndjson, which, wrk, Noop, WorkDir};

/// What one run measures.
pub struct SpeedSpec {
    /// ingest-api address.
    pub addr: String,
    /// The original service's address, when it runs (`bench/original/serve.sh`).
    pub original_addr: Option<String>,
    /// Seconds per measurement.
    pub seconds: u64,
    /// Rounds (medians are reported).
    pub rounds: usize,
}

/// Traces the suite adds at the start (tagged, so the filtered pages have known matches).
const SEED_TRACES: usize = 5_500;
/// Tags spread over the seeded traces (each has one: a tag filter matches 1 in TAGS).
const TAGS: usize = 20;
/// The filtered pages: meta (every seeded trace), tag (1 in 20), text (a word of many prompts).
pub(super) const FILTERS: [(&str, &str); 3] = [
    ("list, meta filter", "meta.bench=speed"),
    ("list, tag filter", "tag=t3"),
    ("list, text filter (q)", "q=cost"),
];

/// Runs the suite and prints the table.
pub async fn speed(env: &StackEnv, spec: SpeedSpec) -> anyhow::Result<()> {
    for tool in ["wrk", "pgbench"] {
        if which(tool).is_none() {
            bail!("`{tool}` is not on PATH (Debian: apt-get install wrk postgresql-client)");
        }
    }
    let root = find_root(&std::env::current_dir()?);
    let http = format!("http://{}", spec.addr);
    let pool = PgPool::connect(&env.database_url).await?;
    seed(&root, &spec.addr, &pool).await?;
    let id: Uuid = sqlx::query_scalar(
        "SELECT id FROM trace_list ORDER BY created_at DESC, id DESC OFFSET 100 LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let work = WorkDir::create()?;
    let work = work.0.as_path();
    let get_body = work.join("get.json");
    std::fs::write(&get_body, fetch(&format!("{http}/api/traces/{id}")).await?)?;
    let scripts = Scripts::write(work, &pool, &http, id).await?;
    let noop = Noop::start(&root, &get_body).await?;
    let post_lua = root.join("bench/wrk/post.lua");

    let mut rows: Vec<Row3> = Vec::new();
    let mut add = |name: &str, ours: Measure, anchor: Measure, goal: Goal| match rows
        .iter_mut()
        .find(|r| r.name == name)
    {
        Some(r) => {
            r.ours.push(ours);
            r.anchor.push(anchor);
        }
        None => rows.push(Row3 {
            name: name.to_owned(),
            ours: vec![ours],
            anchor: vec![anchor],
            goal,
        }),
    };
    let secs = spec.seconds;
    // Reads first, every round, then the writes: the writes add rows on top of the seeded ones.
    let mut ours_get = Vec::new();
    let mut ours_page = Vec::new();
    for round in 1..=spec.rounds {
        eprintln!("reads, round {round}/{}...", spec.rounds);
        let get = wrk(&format!("{http}/api/traces/{id}"), None, secs).await?;
        let pk = pgbench(
            &env.database_url,
            &scripts.pk,
            "prepared",
            &scripts.vars,
            secs,
        )
        .await?;
        add("GET by id", get, pk, Goal::Ratio(0.5));
        let page = wrk(&format!("{http}/api/traces?limit=20"), None, secs).await?;
        let pg_page = pgbench(&env.database_url, &scripts.page, "prepared", &[], secs).await?;
        add("list, first page of 20", page, pg_page, Goal::Ratio(0.5));
        for ((name, filter), script) in FILTERS.iter().zip(&scripts.filtered) {
            let ours = wrk(&format!("{http}/api/traces?limit=20&{filter}"), None, secs).await?;
            let anchor = pgbench(
                &env.database_url,
                &script.path,
                "extended",
                &script.vars,
                secs,
            )
            .await?;
            add(name, ours, anchor, Goal::Ratio(0.5));
        }
        let noop_get = wrk(&format!("{}/api/traces/{id}", noop.url), None, secs).await?;
        add("GET by id vs the no-op service", get, noop_get, Goal::None);
        ours_get.push(get);
        ours_page.push(page);
    }
    for round in 1..=spec.rounds {
        eprintln!("writes, round {round}/{}...", spec.rounds);
        settle(&pool).await?;
        let post = wrk(&format!("{http}/api/traces"), Some(&post_lua), secs).await?;
        settle(&pool).await?;
        let noop_post = wrk(&format!("{}/api/traces", noop.url), Some(&post_lua), secs).await?;
        add(
            "single POST (full pipeline)",
            post,
            noop_post,
            Goal::RatioAndP99(0.3, 20.0),
        );
        let batch = batches(&root, &spec.addr, secs).await?;
        settle(&pool).await?;
        let raw = produce_raw(env, 200_000).await?;
        add(
            "batch of 100 (traces/s) vs raw producer",
            batch,
            Measure::rate(raw),
            Goal::Ratio(0.9),
        );
        if let Some(original) = &spec.original_addr {
            let o = format!("http://{original}");
            let oid = original_id(&o).await?;
            settle(&pool).await?;
            let i = round - 1;
            let o_post = wrk(&format!("{o}/api/traces"), Some(&post_lua), secs).await?;
            add("POST vs the original", post, o_post, Goal::Times(25.0));
            let o_get = wrk(&format!("{o}/api/traces/{oid}"), None, secs).await?;
            add(
                "GET by id vs the original",
                ours_get[i],
                o_get,
                Goal::Times(20.0),
            );
            let o_list = wrk(&format!("{o}/api/traces?limit=20"), None, secs).await?;
            add(
                "list vs the original",
                ours_page[i],
                o_list,
                Goal::Times(20.0),
            );
        }
    }
    drop(noop);
    print(&rows, spec.rounds);
    Ok(())
}

/// One measurement: requests (or traces) per second and the p99 latency when known.
#[derive(Clone, Copy)]
pub(super) struct Measure {
    rate: f64,
    p99_ms: Option<f64>,
}

impl Measure {
    fn rate(rate: f64) -> Measure {
        Measure { rate, p99_ms: None }
    }
}

/// What a row must reach.
#[derive(Clone, Copy)]
enum Goal {
    /// ours / anchor.
    Ratio(f64),
    /// ours / anchor, and ours' p99 at most this many ms.
    RatioAndP99(f64, f64),
    /// ours at least this many times the anchor.
    Times(f64),
    /// Shown for context.
    None,
}

struct Row3 {
    name: String,
    ours: Vec<Measure>,
    anchor: Vec<Measure>,
    goal: Goal,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Waits until the writer and projector caught up (the list stops growing for a second), so
/// an anchor measured after a write load does not share the box with their backlog.
async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM trace_list")
            .fetch_one(pool)
            .await
    };
    let mut last = count().await?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count().await?;
        if now == last {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("the consumers did not catch up within 300 s ({now} rows listed)");
        }
        last = now;
    }
}

fn print(rows: &[Row3], rounds: usize) {
    println!();
    println!("speed: medians of {rounds} rounds; ratio = median of the rounds' ratios (same run)");
    println!(
        "{:<42} {:>11} {:>9} {:>11} {:>8}  goal",
        "measure", "tunix-rt/s", "p99 ms", "anchor/s", "ratio"
    );
    for r in rows {
        let ours = median(r.ours.iter().map(|m| m.rate).collect());
        let anchor = median(r.anchor.iter().map(|m| m.rate).collect());
        let ratio = median(
            r.ours
                .iter()
                .zip(&r.anchor)
                .map(|(o, a)| o.rate / a.rate)
                .collect(),
        );
        let p99: Vec<f64> = r.ours.iter().filter_map(|m| m.p99_ms).collect();
        let p99 = if p99.is_empty() {
            f64::NAN
        } else {
            median(p99)
        };
        let (shown, goal, met) = match r.goal {
            Goal::Ratio(g) => (
                format!("{:.0}%", ratio * 100.0),
                format!(">= {:.0}%", g * 100.0),
                ratio >= g,
            ),
            Goal::RatioAndP99(g, ms) => (
                format!("{:.0}%", ratio * 100.0),
                format!(">= {:.0}%, p99 <= {ms} ms", g * 100.0),
                ratio >= g && p99 <= ms,
            ),
            Goal::Times(g) => (format!("{ratio:.1}x"), format!(">= {g}x"), ratio >= g),
            Goal::None => (format!("{:.0}%", ratio * 100.0), "(context)".into(), true),
        };
        let verdict = match r.goal {
            Goal::None => "",
            _ if met => "  met",
            _ => "  NOT met",
        };
        println!(
            "{:<42} {:>11.0} {:>9.1} {:>11.0} {:>8}  {goal}{verdict}",
            r.name, ours, p99, anchor, shown
        );
    }
}

/// Adds [`SEED_TRACES`] tagged traces (the real dataset, each with `meta.bench = "speed"` and
/// one of [`TAGS`] tags) and waits until they are listed: they are the newest rows, so the
/// filtered pages are dense (served by the window statement) whatever the store held before.
async fn seed(root: &Path, addr: &str, pool: &PgPool) -> anyhow::Result<()> {
    let marker = ListQuery::parse(Some(FILTERS[0].1)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let seeded = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM trace_list WHERE facets && $1::text[]")
            .bind(&marker.meta[0].candidates)
            .fetch_one(pool)
            .await
    };
    let have = seeded().await?;
    eprintln!("seeding {SEED_TRACES} traces through the API...");
    let traces = crate::gen::dataset(root);
    let mut lines = Vec::with_capacity(SEED_TRACES);
    for i in 0..SEED_TRACES {
        let mut t = serde_json::to_value(&traces[i % traces.len()])?;
        let meta = t["meta"]
            .as_object_mut()
            .context("dataset traces have meta")?;
        meta.insert("bench".into(), "speed".into());
        meta.insert("tags".into(), serde_json::json!([format!("t{}", i % TAGS)]));
        lines.push(serde_json::to_string(&t)?);
    }
    for chunk in lines.chunks(500) {
        let status = post_ndjson(addr, &chunk.join("\n")).await?;
        if status != 202 {
            bail!("seeding: POST /api/traces/batch answered {status}");
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = seeded().await?;
        if n >= have + SEED_TRACES as i64 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("seeded traces not listed after 60 s ({n} rows); are the writer and projector running?");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The id of a trace in the original service (the newest of its first page).
async fn original_id(base: &str) -> anyhow::Result<String> {
    let body: serde_json::Value =
        serde_json::from_slice(&fetch(&format!("{base}/api/traces?limit=1")).await?)?;
    match body["data"][0]["id"].as_str() {
        Some(id) => Ok(id.to_owned()),
        None => bail!("the original service holds no trace: POST one first"),
    }
}

/// Batches of 100 (the 550 real traces), 16 connections, for `secs`: accepted traces/s. Any
/// answer but 202 fails the run.
async fn batches(root: &Path, addr: &str, secs: u64) -> anyhow::Result<Measure> {
    let r = load::run(LoadSpec {
        addr: addr.to_owned(),
        concurrency: 16,
        stop: Stop::After(Duration::from_secs(secs)),
        rate: None,
        batch: 100,
        shape: Shape::Dataset,
        api_key: None,
        idempotency_keys: false,
        collect_ids: false,
        seed: 7,
        repo_root: root.to_owned(),
        ack_tx: None,
    })
    .await;
    if r.errors() != "none" {
        bail!("batches of 100: errors {}", r.errors());
    }
    Ok(Measure {
        rate: r.accepted_per_sec(),
        p99_ms: Some(r.latency_ms(0.99)),
    })
}
