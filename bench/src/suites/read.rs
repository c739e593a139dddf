//! `tunix-bench read`: read latency at depth over a view of many rows: page 1, offset and
//! cursor pages deep in the view, filtered pages (meta, tag, text, scores), GET by id and the
//! charts' statistics (`GET /api/traces/stats`), against ingest-api running in this process over
//! loopback HTTP.
//!
//! Run: `target/release/tunix-bench read --rows 1000000` (`--only stats` for the statistics)

use std::time::Instant;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tunix_schemas::Trace;
use uuid::Uuid;

use tunix_pipeline::db::with_database;

use super::{bench_pool, find_root, quantiles, StackEnv};
use crate::gen;

/// Builds the request path for sample `i`.
type PathFn = Box<dyn Fn(usize) -> String>;

/// How the synthetic read data is spread, so each filter has a known selectivity.
pub mod spread {
    /// Distinct `meta.run` values (each run holds 1/RUNS of the traces).
    pub const RUNS: i64 = 1_000;
    /// Distinct tags; each trace has two.
    pub const TAGS: i64 = 20;
    /// A word in every other trace.
    pub const COMMON_WORD: &str = "answer";
    /// A word in one trace of RARE_EVERY.
    pub const RARE_WORD: &str = "zebra";
    /// A CJK pair in every other trace.
    pub const COMMON_CJK: &str = "推理";
    /// A CJK pair in one trace of RARE_EVERY.
    pub const RARE_CJK: &str = "数学";
    /// 1 in this many traces has the rare terms.
    pub const RARE_EVERY: i64 = 10_000;
    /// Distinct models (`meta.gen_ai.request.model`); every trace names one.
    pub const MODELS: i64 = 4;
    /// Distinct token counts (`meta.gen_ai.usage.input_tokens` and `output_tokens`); every trace
    /// carries both, as OTLP traces do.
    pub const TOKEN_COUNTS: i64 = 50;
}

/// Fills `traces`, `trace_list_v1` and `trace_scores_v1` with `rows` synthetic rows spread over
/// 30 days. List rows are written in time order, as the projector writes them (traces arrive
/// roughly in `created_at` order), so the time index and the table agree. Every list row gets the facets and search terms the projector would compute for one
/// real trace, plus: `meta.run` (one of [`spread::RUNS`]), two tags, a model and input and output
/// token counts (as an OTLP trace's `meta.gen_ai`), common and rare words and CJK pairs; 80% of traces have a `correct` score (0 or 1), 50% a `quality` score in [0, 1).
pub(crate) async fn load_read_rows(pool: &PgPool, rows: i64) -> anyhow::Result<()> {
    use spread::*;
    let root = find_root(&std::env::current_dir()?);
    let trace_json = serde_json::to_string(&gen::dataset(&root)[0])?;
    let trace = Trace::parse_json(trace_json.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = tunix_projector::view::Summary::of(&trace);
    let runs: Vec<String> = (0..RUNS)
        .map(|r| tunix_schemas::facets::facets(&format!(r#"{{"run": {r}}}"#))[0].clone())
        .collect();
    let tags: Vec<String> = (0..TAGS)
        .map(|t| tunix_schemas::facets::facets(&format!(r#"{{"tags": ["t{t}"]}}"#))[0].clone())
        .collect();
    let models: Vec<String> = (0..MODELS)
        .map(|m| {
            let meta = format!(r#"{{"gen_ai": {{"request": {{"model": "model-{m}"}}}}}}"#);
            tunix_schemas::facets::facets(&meta)[0].clone()
        })
        .collect();
    let usage = |kind: &str, scale: i64| -> Vec<String> {
        (0..TOKEN_COUNTS)
            .map(|n| {
                let meta = format!(
                    r#"{{"gen_ai": {{"usage": {{"{kind}": {}}}}}}}"#,
                    (n + 1) * scale
                );
                tunix_schemas::facets::facets(&meta)[0].clone()
            })
            .collect()
    };
    let (input_tokens, output_tokens) = (usage("input_tokens", 40), usage("output_tokens", 10));
    let started = Instant::now();
    eprintln!("loading {rows} rows into traces, trace_list_v1 and trace_scores_v1...");
    // No secondary indexes while loading: build them afterwards, as a rebuild does.
    for idx in [
        "trace_list_v1_created_idx",
        "trace_list_v1_version_idx",
        "trace_list_v1_facets_idx",
        "trace_list_v1_search_idx",
        "trace_scores_v1_value_idx",
    ] {
        sqlx::query(&format!("DROP INDEX IF EXISTS {idx}"))
            .execute(pool)
            .await?;
    }
    let chunk = 500_000i64;
    let mut done = 0;
    while done < rows {
        let n = chunk.min(rows - done);
        sqlx::query(
            "INSERT INTO traces (id, created_at, trace_version, payload)
             SELECT gen_random_uuid(), now() - (random() * interval '30 days'), 'v' || (g % 5), $2::json
             FROM generate_series($3 + 1, $3 + $1) AS g",
        )
        .bind(n)
        .bind(&trace_json)
        .bind(done)
        .execute(pool)
        .await?;
        done += n;
        eprintln!(
            "  traces {done}/{rows} ({:.0}s)",
            started.elapsed().as_secs_f64()
        );
    }
    // The list rows: the same ordinal g drives run, tags and terms, so selectivities are exact.
    sqlx::query(&format!(
        "INSERT INTO trace_list_v1 (id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
         SELECT id, created_at, trace_version, $1, $2, $3,
                ARRAY[($4::text[])[g % {RUNS} + 1], ($5::text[])[g % {TAGS} + 1], ($5::text[])[(g / 7) % {TAGS} + 1],
                      ($7::text[])[g % {MODELS} + 1], ($8::text[])[g % {TOKEN_COUNTS} + 1], ($9::text[])[(g / 3) % {TOKEN_COUNTS} + 1]],
                $6::tsvector
                  || CASE WHEN g % 2 = 0 THEN '{COMMON_WORD} {COMMON_CJK}'::tsvector ELSE ''::tsvector END
                  || CASE WHEN g % {RARE_EVERY} = 17 THEN '{RARE_WORD} {RARE_CJK}'::tsvector ELSE ''::tsvector END
         FROM (SELECT id, created_at, trace_version, row_number() OVER (ORDER BY created_at) AS g FROM traces) t
         ORDER BY created_at"
    ))
    .bind(base.step_count)
    .bind(&base.prompt_preview)
    .bind(base.payload_bytes)
    .bind(&runs)
    .bind(&tags)
    .bind(&base.search)
    .bind(&models)
    .bind(&input_tokens)
    .bind(&output_tokens)
    .execute(pool)
    .await?;
    eprintln!("  list rows ({:.0}s)", started.elapsed().as_secs_f64());
    sqlx::query(
        "INSERT INTO trace_scores_v1 (trace_id, name, value, source, recorded_at)
         SELECT id, 'correct', (random() < 0.5)::int, 'bench', created_at FROM trace_list_v1 WHERE random() < 0.8
         UNION ALL
         SELECT id, 'quality', random(), 'bench', created_at FROM trace_list_v1 WHERE random() < 0.5",
    )
    .execute(pool)
    .await?;
    eprintln!("  scores ({:.0}s)", started.elapsed().as_secs_f64());
    for ddl in tunix_projector::view::create_indexes(1) {
        sqlx::query(&ddl).execute(pool).await?;
        eprintln!(
            "  {} ({:.0}s)",
            ddl.split(" ON ").next().unwrap_or(&ddl),
            started.elapsed().as_secs_f64()
        );
    }
    for table in ["traces", "trace_list_v1", "trace_scores_v1"] {
        sqlx::query(&format!("VACUUM ANALYZE {table}"))
            .execute(pool)
            .await?;
    }
    eprintln!("  loaded in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Read latency over a view of `rows` rows (loaded now, or reused from an earlier run).
pub async fn read(
    env: &StackEnv,
    rows: i64,
    samples: usize,
    reuse: Option<&str>,
    keep: bool,
    only: Option<&str>,
) -> anyhow::Result<()> {
    let (url, pool) = match reuse {
        Some(name) => {
            let url = with_database(&env.database_url, name);
            let pool = bench_pool(&url).await?;
            let have: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_list")
                .fetch_one(&pool)
                .await?;
            anyhow::ensure!(have == rows, "{name} lists {have} rows, not --rows {rows}");
            eprintln!("reusing {name}: {have} rows");
            (url, pool)
        }
        None => {
            let (url, pool) = env.fresh_database("tunix_bench_read").await?;
            load_read_rows(&pool, rows).await?;
            (url, pool)
        }
    };

    // ingest-api in this process, reading from the bench database (the broker is not needed).
    let mut cfg = tunix_ingest_api::IngestConfig::for_tests(&env.brokers, "traces", &url);
    cfg.db.pool_size = 4;
    let state = tunix_ingest_api::AppState::new(cfg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(tunix_ingest_api::run(state, listener, shutdown.clone()));

    let depth = rows / 2;
    let (at, id): (chrono::DateTime<chrono::Utc>, Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM trace_list ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
    )
    .bind(depth - 1)
    .fetch_one(&pool)
    .await?;
    // A deep cursor for a filtered query: the position half-way down the whole view, bound to
    // that query's filters (what a client paging through the filtered results would hold).
    let deep = move |filters: &str| -> String {
        let q = tunix_ingest_api::traces::filter::ListQuery::parse(Some(filters))
            .expect("bench filters parse");
        let cursor = q.cursor_after(&at, &id);
        format!("/api/traces?limit=20&{filters}&cursor={cursor}")
    };
    let cursor = tunix_ingest_api::traces::filter::ListQuery::parse(None)?.cursor_after(&at, &id);
    let mid: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT now() - interval '15 days'")
            .fetch_one(&pool)
            .await?;
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM traces TABLESAMPLE SYSTEM (1) LIMIT $1")
            .bind(samples as i64)
            .fetch_all(&pool)
            .await?;
    let client = reqwest_like::Client::new(&base).await?;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    use spread::*;
    let filters: Vec<(String, String)> = vec![
        (
            format!("meta filter (1 in {RUNS})"),
            "meta.run=417".to_owned(),
        ),
        (format!("tag (2 of {TAGS} per trace)"), "tag=t3".to_owned()),
        (
            "text, common word (1 in 2)".into(),
            format!("q={COMMON_WORD}"),
        ),
        (
            format!("text, rare word (1 in {RARE_EVERY})"),
            format!("q={RARE_WORD}"),
        ),
        (
            "text, common CJK pair (1 in 2)".into(),
            format!("q={}", enc(COMMON_CJK)),
        ),
        (
            format!("text, rare CJK pair (1 in {RARE_EVERY})"),
            format!("q={}", enc(RARE_CJK)),
        ),
        (
            "score equals (correct=1, 2 in 5)".into(),
            "score.correct=1".to_owned(),
        ),
        (
            "score range (quality ≥ 0.95, 1 in 40)".into(),
            "score.quality=gte:0.95".to_owned(),
        ),
        (
            "score missing (no quality, 1 in 2)".into(),
            "score.quality=missing".to_owned(),
        ),
        (
            "meta + text (1 in 1000 and 1 in 2)".into(),
            format!("meta.run=417&q={COMMON_WORD}"),
        ),
    ];
    let mut queries: Vec<(String, PathFn)> = vec![
        (
            "page 1 (limit 20)".into(),
            Box::new(|_| "/api/traces?limit=20".to_owned()),
        ),
        (
            format!("offset page at depth {depth}"),
            Box::new(move |_| format!("/api/traces?limit=20&offset={depth}")),
        ),
        (
            format!("cursor page at depth {depth}"),
            Box::new(move |_| format!("/api/traces?limit=20&cursor={cursor}")),
        ),
        (
            "filtered page (trace_version + created_after)".into(),
            Box::new(move |_| {
                format!(
                    "/api/traces?limit=20&trace_version=v3&created_after={}",
                    mid.format("%Y-%m-%dT%H:%M:%SZ")
                )
            }),
        ),
        (
            "GET /api/traces/{id} (with scores)".into(),
            Box::new(move |i| format!("/api/traces/{}", ids[i % ids.len()])),
        ),
    ];
    for (name, f) in filters {
        let page1 = format!("/api/traces?limit=20&{f}");
        queries.push((format!("{name}: page 1"), Box::new(move |_| page1.clone())));
        let deep_path = deep(&f);
        queries.push((
            format!("{name}: cursor at depth {depth}"),
            Box::new(move |_| deep_path.clone()),
        ));
    }
    // The charts' statistics (`GET /api/traces/stats`): exact up to 25,000 matches, a sample
    // of ~25,000 rows above.
    let last_day = chrono::Utc::now() - chrono::Duration::days(1);
    let stats: Vec<(String, String)> = vec![
        ("no filter (sampled)".into(), String::new()),
        (format!("tag (1 in {}, sampled)", TAGS / 2), "tag=t3".into()),
        (
            format!("meta filter (1 in {RUNS}, exact below {})", rows / RUNS + 1),
            "meta.run=417".into(),
        ),
        (
            format!("text, rare word (1 in {RARE_EVERY}, exact)"),
            format!("q={RARE_WORD}"),
        ),
        (
            "score range (quality ≥ 0.95, 1 in 40)".into(),
            "score.quality=gte:0.95".into(),
        ),
        (
            "score range (quality ≥ 0.999, 1 in 2,000)".into(),
            "score.quality=gte:0.999".into(),
        ),
        (
            "version + last day (1 in 150)".into(),
            format!(
                "trace_version=v3&created_after={}",
                last_day.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ),
    ];
    for (name, f) in stats {
        let path = format!("/api/traces/stats?{f}");
        queries.push((format!("stats: {name}"), Box::new(move |_| path.clone())));
    }
    if let Some(prefix) = only {
        queries.retain(|(name, _)| name.starts_with(prefix));
    }
    println!("view: {rows} rows; {samples} samples per query (30 for the deep offset page and the statistics), measured over loopback HTTP against ingest-api (server time + ~0.1 ms)\n");
    println!("| query | p50 ms | p99 ms | max ms | non-200 answers |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for (name, path) in queries {
        // Warm-up (fewer for the deep offset page, which can take seconds each).
        let warm = if name.starts_with("offset") { 2 } else { 20 };
        for i in 0..warm {
            client.get(&path(i)).await?;
        }
        // Deep offset pages take long by design (the point of keyset paging): fewer samples.
        let n = if name.starts_with("offset") || name.starts_with("stats") {
            samples.min(30)
        } else {
            samples
        };
        let mut times = Vec::with_capacity(n);
        // A query over the read API's 5 s limit answers 503: counted, and its time still kept.
        let mut errors: std::collections::BTreeMap<u16, usize> = Default::default();
        for i in 0..n {
            let t = Instant::now();
            let status = client.get(&path(i)).await?;
            if status != 200 {
                *errors.entry(status).or_default() += 1;
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99, max) = quantiles(&mut times);
        let errors = if errors.is_empty() {
            "none".to_owned()
        } else {
            errors
                .iter()
                .map(|(s, n)| format!("{n} × {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("| {name} | {p50:.2} | {p99:.2} | {max:.2} | {errors} |");
    }
    shutdown.cancel();
    let _ = server.await;
    pool.close().await;
    if reuse.is_none() && !keep {
        env.drop_database(&url).await;
    } else {
        eprintln!(
            "kept the database: --reuse-database {}",
            url.rsplit('/').next().unwrap_or(&url)
        );
    }
    Ok(())
}

/// A minimal keep-alive HTTP/1.1 GET client (hyper), so latency is not inflated by a heavy client.
mod reqwest_like {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper::client::conn::http1;
    use hyper_util::rt::TokioIo;

    pub struct Client {
        host: String,
        sender: tokio::sync::Mutex<http1::SendRequest<Empty<Bytes>>>,
    }

    impl Client {
        pub async fn new(base: &str) -> anyhow::Result<Client> {
            let host = base.trim_start_matches("http://").to_owned();
            let stream = tokio::net::TcpStream::connect(&host).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Client {
                host,
                sender: tokio::sync::Mutex::new(sender),
            })
        }

        pub async fn get(&self, path: &str) -> anyhow::Result<u16> {
            let req = http::Request::get(path)
                .header("host", &self.host)
                .body(Empty::new())?;
            let mut sender = self.sender.lock().await;
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await?;
            Ok(status)
        }
    }
}
