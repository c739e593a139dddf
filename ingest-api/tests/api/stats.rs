//! `GET /api/traces/stats` against the real Postgres, over list rows written straight into the
//! read model (through the real pipeline: `tests/tests/find_and_judge.rs`): exact below the
//! limit, estimated from a sample above it, and its parameter errors.

use std::collections::BTreeMap;

use serde_json::Value;
use tunix_ingest_api::traces::stats::EXACT_MAX;
use tunix_schemas::facets::facets;
use tunix_testkit::{TestDb, TestTopic};

use crate::helpers::TestApi;

const ROWS: i64 = 40_000;
/// One row in this many is tagged `rare` (exactly aggregated under the filter).
const RARE_EVERY: i64 = 41;

fn facet(meta: &str) -> String {
    facets(meta).remove(0)
}

/// Row `g`'s model (`None`: names none), input and output tokens, and `quality` score.
fn row(g: i64) -> (Option<&'static str>, i64, i64, Option<f64>) {
    let model = match g % 4 {
        0 => Some("m-a"),
        1 => Some("m-b"),
        _ => None,
    };
    let (input, output) = if model.is_some() {
        ((g % 5 + 1) * 100, (g % 3 + 1) * 10)
    } else {
        (0, 0)
    };
    let quality = (g % 2 == 0).then(|| ((g / 40) % 7) as f64 / 6.0);
    (model, input, output, quality)
}

/// Writes `ROWS` list rows over ten days of January 2026 (hour `g % 24` of day `g % 10`; the
/// prompt preview is `g`), with the facets and scores [`row`] gives, and analyzes the tables.
async fn load(pool: &sqlx::PgPool) {
    let models = [
        facet(r#"{"gen_ai": {"request": {"model": "m-a"}}}"#),
        facet(r#"{"gen_ai": {"request": {"model": "m-b"}}}"#),
    ];
    let usage = |kind: &str, counts: i64, scale: i64| -> Vec<String> {
        (1..=counts)
            .map(|n| {
                let meta = format!(r#"{{"gen_ai": {{"usage": {{"{kind}": {}}}}}}}"#, n * scale);
                facet(&meta)
            })
            .collect()
    };
    let (input, output) = (usage("input_tokens", 5, 100), usage("output_tokens", 3, 10));
    let rare = facet(r#"{"tags": ["rare"]}"#);
    sqlx::query(
        "INSERT INTO trace_list_v1 (id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
         SELECT gen_random_uuid(),
                '2026-01-01T00:00:00Z'::timestamptz + (g % 10) * interval '1 day' + (g % 24) * interval '1 hour',
                'v', 1, g::text, 10,
                CASE WHEN g % 4 < 2 THEN ARRAY[($2::text[])[g % 4 + 1], ($3::text[])[g % 5 + 1], ($4::text[])[g % 3 + 1]]
                     ELSE ARRAY[]::text[] END
                || CASE WHEN g % $6 = 0 THEN ARRAY[$5] ELSE ARRAY[]::text[] END,
                ''::tsvector
         FROM generate_series(1, $1) AS g",
    )
    .bind(ROWS)
    .bind(&models[..])
    .bind(&input)
    .bind(&output)
    .bind(&rare)
    .bind(RARE_EVERY)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO trace_scores_v1 (trace_id, name, value, source, recorded_at)
         SELECT id, 'quality', ((prompt_preview::int / 40) % 7)::float8 / 6.0, 'test', created_at
         FROM trace_list_v1 WHERE prompt_preview::int % 2 = 0",
    )
    .execute(pool)
    .await
    .unwrap();
    for table in ["trace_list_v1", "trace_scores_v1"] {
        sqlx::query(&format!("ANALYZE {table}"))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Per model: (traces, input tokens, output tokens).
type ByModel<M> = BTreeMap<Option<M>, (i64, i64, i64)>;

/// Sums of [`row`] over the rows `pick` selects: traces, per model, and the `quality` values.
fn expected(pick: impl Fn(i64) -> bool) -> (i64, ByModel<&'static str>, Vec<f64>) {
    let mut models: ByModel<&'static str> = BTreeMap::new();
    let mut qualities = Vec::new();
    let mut n = 0;
    for g in (1..=ROWS).filter(|g| pick(*g)) {
        let (model, input, output, quality) = row(g);
        n += 1;
        let m = models.entry(model).or_default();
        *m = (m.0 + 1, m.1 + input, m.2 + output);
        qualities.extend(quality);
    }
    (n, models, qualities)
}

fn models_of(stats: &Value) -> ByModel<String> {
    stats["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model"].as_str().map(str::to_owned),
                (
                    m["traces"].as_i64().unwrap(),
                    m["input_tokens"].as_i64().unwrap(),
                    m["output_tokens"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_are_exact_below_the_limit_and_estimated_from_a_sample_above_it() {
    const { assert!(ROWS > EXACT_MAX && ROWS / RARE_EVERY < EXACT_MAX) };
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    load(&pool).await;
    let api = TestApi::start_on(TestTopic::new(1).await, db, |_| {}).await;

    // Exact: the rare tag's 975 rows, every number equal to a brute-force count.
    let (status, stats) = api.get("/api/traces/stats?tag=rare").await;
    assert_eq!(status, 200, "{stats}");
    let (n, models, qualities) = expected(|g| g % RARE_EVERY == 0);
    assert_eq!(stats["exact"], true);
    assert_eq!(stats["sample_percent"], Value::Null);
    assert_eq!(stats["matched"], n);
    let want: ByModel<String> = models
        .into_iter()
        .map(|(m, v)| (m.map(str::to_owned), v))
        .collect();
    assert_eq!(models_of(&stats), want);
    // Ten days apart: buckets are days, every day from the first to the last, zeros included.
    assert_eq!(stats["bucket"], "day");
    let volume = stats["volume"].as_array().unwrap();
    assert_eq!(
        volume.first().unwrap()["start"],
        "2026-01-01T00:00:00.000000Z"
    );
    let days: Vec<i64> = volume
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .collect();
    let mut want_days = vec![0i64; 10];
    for g in (1..=ROWS).filter(|g| g % RARE_EVERY == 0) {
        want_days[(g % 10) as usize] += 1;
    }
    while want_days.last() == Some(&0) {
        want_days.pop();
    }
    assert_eq!(days, want_days);
    let quality = &stats["scores"][0];
    assert_eq!(quality["name"], "quality");
    assert_eq!(quality["count"], qualities.len());
    let (lo, hi) = qualities
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    assert_eq!(
        (quality["min"].as_f64(), quality["max"].as_f64()),
        (Some(lo), Some(hi))
    );
    let bins = quality["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 20);
    let in_bins: i64 = bins.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(
        in_bins,
        qualities.len() as i64,
        "every value in a bin, max included"
    );
    let top = qualities.iter().filter(|v| **v == hi).count() as i64;
    assert_eq!(bins[19]["count"], top, "the last bin holds the maximum");

    // Hours when the matches span at most 72 hours (one day here, the hours of g % 24).
    let (_, one_day) = api
        .get("/api/traces/stats?tag=rare&created_after=2026-01-01T00:00:00Z&created_before=2026-01-02")
        .await;
    assert_eq!(one_day["bucket"], "hour", "{one_day}");
    let hours: i64 = one_day["volume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(hours, want_days[0]);
    assert_eq!(one_day["matched"], want_days[0]);

    // Above the limit: estimated from a sample of about EXACT_MAX rows, and said so.
    let (status, all) = api.get("/api/traces/stats").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["exact"], false, "{all}");
    let percent = all["sample_percent"].as_f64().unwrap();
    assert!(percent > 0.0 && percent < 100.0, "{percent}");
    let matched = all["matched"].as_i64().unwrap();
    assert!(
        (matched - ROWS).abs() < ROWS / 5,
        "an estimate near {ROWS}: {matched} from a {percent:.1}% sample"
    );
    let models = models_of(&all);
    let m_a = models[&Some("m-a".to_owned())];
    assert!(
        (m_a.0 - ROWS / 4).abs() < ROWS / 20,
        "m-a ≈ a quarter: {m_a:?}"
    );
    assert_eq!(all["scores"][0]["name"], "quality");
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_refuse_an_unknown_bucket_and_too_many_buckets() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO trace_list_v1 (id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
         VALUES (gen_random_uuid(), '2025-01-01T00:00:00Z', 'v', 1, 'p', 1, '{}', ''),
                (gen_random_uuid(), '2026-01-01T00:00:00Z', 'v', 1, 'p', 1, '{}', '')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let api = TestApi::start_on(TestTopic::new(1).await, db, |_| {}).await;
    let (status, body) = api.get("/api/traces/stats?bucket=week").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        serde_json::json!(["query", "bucket"])
    );
    // A year of hours is more than an answer holds; days are fine.
    let (status, body) = api.get("/api/traces/stats?bucket=hour").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("bucket=day"),
        "{body}"
    );
    let (status, days) = api.get("/api/traces/stats?bucket=day").await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(days["volume"].as_array().unwrap().len(), 366);
    assert_eq!(days["matched"], 2);
    // Filters are validated as the list's are.
    let (status, body) = api.get("/api/traces/stats?score.x=big").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        serde_json::json!(["query", "score.x"])
    );
}

/// A histogram bin selects what its range filter selects, values on an edge included (the
/// edges are the statement's own), and no finite score breaks the aggregate: values near the
/// ends of the float range neither overflow the mean nor the bins.
#[tokio::test(flavor = "multi_thread")]
async fn score_bins_equal_their_range_filters_and_extreme_values_aggregate() {
    let db = TestDb::new().await;
    let edge = [0.0, 0.15, 0.15, 0.35, 0.7, 0.95, 1.0];
    let huge = [-1e300, 0.0, 1e300, f64::MAX];
    sqlx::query(
        "WITH l AS (
             INSERT INTO trace_list_v1 (id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
             SELECT gen_random_uuid(), now(), 'v', 1, g::text, 1, '{}', '' FROM generate_series(1, 7) AS g
             RETURNING id, prompt_preview::int AS g)
         INSERT INTO trace_scores_v1 (trace_id, name, value, source, recorded_at)
         SELECT id, 'edge', ($1::float8[])[g], 't', now() FROM l
         UNION ALL SELECT id, 'huge', ($2::float8[])[g], 't', now() FROM l WHERE g <= cardinality($2::float8[])",
    )
    .bind(&edge[..])
    .bind(&huge[..])
    .execute(&db.pool)
    .await
    .unwrap();
    // Token counts: below 10^13 summed, at or above it (or negative) ignored.
    let big: Vec<String> = ["9.99e12", "1e13", "-5"]
        .iter()
        .map(|n| {
            let meta = format!(r#"{{"gen_ai": {{"request": {{"model": "m-big"}}, "usage": {{"input_tokens": {n}}}}}}}"#);
            facets(&meta).join("\u{1}")
        })
        .collect();
    sqlx::query(
        "INSERT INTO trace_list_v1 (id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
         SELECT gen_random_uuid(), now(), 'v', 1, 'big', 1, string_to_array(f, chr(1)), '' FROM unnest($1::text[]) AS f",
    )
    .bind(&big)
    .execute(&db.pool)
    .await
    .unwrap();
    let api = TestApi::start_on(TestTopic::new(1).await, db, |_| {}).await;
    let (status, stats) = api.get("/api/traces/stats").await;
    assert_eq!(status, 200, "{stats}");
    let histogram = |name: &str| {
        stats["scores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {stats}"))
            .clone()
    };
    let h = histogram("huge");
    assert_eq!(
        (h["min"].as_f64(), h["max"].as_f64()),
        (Some(-1e300), Some(f64::MAX))
    );
    assert!(h["mean"].as_f64().unwrap().is_finite(), "{h}");
    let binned: i64 = h["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(binned, huge.len() as i64, "{h}");

    let big = models_of(&stats)[&Some("m-big".to_owned())];
    assert_eq!(big, (3, 9_990_000_000_000, 0), "{stats}");

    let h = histogram("edge");
    let mean = edge.iter().sum::<f64>() / edge.len() as f64;
    assert!((h["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{h}");
    let bins = h["bins"].as_array().unwrap();
    let mut nonempty = 0;
    for (i, bin) in bins.iter().enumerate() {
        let upper = if i + 1 == bins.len() { "lte" } else { "lt" };
        let path = format!(
            "/api/traces/stats?score.edge=gte:{}&score.edge={upper}:{}",
            bin["from"], bin["to"]
        );
        let (status, within) = api.get(&path).await;
        assert_eq!(status, 200, "{within}");
        assert_eq!(within["matched"], bin["count"], "{path}: {bin}");
        nonempty += (bin["count"].as_i64().unwrap() > 0) as usize;
    }
    assert_eq!(
        nonempty, 5,
        "0 | 0.15 twice | 0.35 | 0.7 | 0.95 and 1 (the last bin includes the maximum): {h}"
    );
}
