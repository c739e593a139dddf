//! Search, metadata and tag filters, and scores over the real pipeline, each checked against a
//! reference written here: random traces with random meta, tags, texts (Latin, accented,
//! Cyrillic, CJK) and scores; random filter combinations; the API's answer, page by page with the
//! cursor while new traces arrive, equals the same filter applied in the test to what was posted.
//! A rebuild from offset 0 gives the same answers.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use tunix_e2e::{metric_sum, Stack, StackOptions};
use tunix_testkit::{eventually, CONVERGE};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

const WORDS: &[&str] = &[
    "paris",
    "Paris",
    "london",
    "café",
    "Crème",
    "brûlée",
    "answer",
    "reasoning",
    "step",
    "model",
    "Привет",
    "мир",
    "задача",
    "Ελληνικά",
    "λόγος",
    "théorème",
    "naïve",
    "résumé",
    "17",
    "513",
];
const CJK: &[&str] = &[
    "推理",
    "数学",
    "问题",
    "答案",
    "文章",
    "日本語",
    "한국어",
    "문장",
];

/// A posted trace as the reference sees it.
#[derive(Debug, Clone)]
struct Posted {
    id: String,
    created_at: String,
    texts: Vec<String>,
    meta: Value,
}

fn random_text(rng: &mut StdRng) -> String {
    let n = rng.random_range(1..8);
    (0..n)
        .map(|_| {
            if rng.random_bool(0.25) {
                CJK.choose(rng).unwrap().to_string()
            } else {
                WORDS.choose(rng).unwrap().to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(if rng.random_bool(0.5) { " " } else { ", " })
}

fn random_meta(rng: &mut StdRng, i: usize) -> Value {
    let mut meta = serde_json::Map::new();
    if rng.random_bool(0.8) {
        let run = rng.random_range(1..6);
        // Numbers and the strings that spell them.
        meta.insert(
            "run".into(),
            if rng.random_bool(0.5) {
                json!(run)
            } else {
                json!(run.to_string())
            },
        );
    }
    if rng.random_bool(0.6) {
        meta.insert(
            "ok".into(),
            if rng.random_bool(0.5) {
                json!(true)
            } else {
                json!("false")
            },
        );
    }
    if rng.random_bool(0.7) {
        let tags: Vec<&str> = ["math", "geo", "hard", "中文", "naïve"]
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.4))
            .collect();
        meta.insert("tags".into(), json!(tags));
    }
    if rng.random_bool(0.5) {
        let name = ["m-a", "m-b", "m\u{0}c"][i % 3];
        let temp = [0.5, 0.7, 1.0][i % 3];
        meta.insert("model".into(), json!({"name": name, "temp": temp}));
    }
    Value::Object(meta)
}

// ---- the reference ---------------------------------------------------------------------------

fn leaves<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return match v {
            Value::Array(items) => items.iter().flat_map(|i| leaves(i, &[])).collect(),
            Value::Object(_) | Value::Null => vec![],
            scalar => vec![scalar],
        };
    };
    match v {
        Value::Object(m) => m.get(*first).map(|c| leaves(c, rest)).unwrap_or_default(),
        Value::Array(items) => items.iter().flat_map(|i| leaves(i, path)).collect(),
        _ => vec![],
    }
}

/// `meta.<path>=value`: a string equal to it, or the number or boolean it spells.
fn meta_matches(meta: &Value, path: &[&str], value: &str) -> bool {
    leaves(meta, path).into_iter().any(|leaf| match leaf {
        Value::String(s) => s == value,
        Value::Bool(b) => value == b.to_string(),
        Value::Number(n) => value
            .parse::<f64>()
            .is_ok_and(|f| serde_json::from_str::<Value>(value).is_ok() && n.as_f64() == Some(f)),
        _ => false,
    })
}

/// Case and accents folded; CJK characters kept as written.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(|c| -> Vec<char> {
            if is_cjk(c) {
                vec![c]
            } else {
                c.to_lowercase()
                    .nfd()
                    .filter(|d| !is_combining_mark(*d))
                    .collect()
            }
        })
        .collect()
}

fn is_cjk(c: char) -> bool {
    tunix_schemas::search::is_cjk(c)
}

/// `q`: every alphabetic word of q begins some word of the texts (case and accents folded);
/// every CJK run of q occurs (as pairs) in some text.
fn text_matches(texts: &[String], q: &str) -> bool {
    let folded: Vec<String> = texts.iter().map(|t| fold(t)).collect();
    let words: HashSet<String> = folded
        .iter()
        .flat_map(|t| {
            t.split(|c: char| !c.is_alphanumeric() || is_cjk(c))
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let q = fold(q);
    let q_words: Vec<&str> = q
        .split(|c: char| !c.is_alphanumeric() || is_cjk(c))
        .filter(|w| !w.is_empty())
        .collect();
    let cjk_runs: Vec<String> = q
        .split(|c: char| !is_cjk(c))
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    q_words
        .iter()
        .all(|w| words.iter().any(|t| t.starts_with(w)))
        && cjk_runs.iter().all(|run| {
            let chars: Vec<char> = run.chars().collect();
            if chars.len() == 1 {
                return folded.iter().any(|t| t.contains(chars[0]));
            }
            chars.windows(2).all(|pair| {
                folded
                    .iter()
                    .any(|t| t.contains(&pair.iter().collect::<String>()))
            })
        })
}

type Scores = HashMap<String, HashMap<String, f64>>;

#[derive(Debug, Clone)]
enum Filter {
    Meta(Vec<&'static str>, String),
    Tag(String),
    Q(String),
    Score(String, &'static str, f64),
    ScoreMissing(String),
}

impl Filter {
    fn query(&self) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        match self {
            Filter::Meta(path, v) => format!("meta.{}={}", path.join("."), enc(v)),
            Filter::Tag(t) => format!("tag={}", enc(t)),
            Filter::Q(q) => format!("q={}", enc(q)),
            Filter::Score(n, op, v) => format!("score.{n}={op}:{v}"),
            Filter::ScoreMissing(n) => format!("score.{n}=missing"),
        }
    }

    fn matches(&self, p: &Posted, scores: &Scores) -> bool {
        let mine = scores.get(&p.id);
        match self {
            Filter::Meta(path, v) => meta_matches(&p.meta, path, v),
            Filter::Tag(t) => meta_matches(&p.meta, &["tags"], t),
            Filter::Q(q) => text_matches(&p.texts, q),
            Filter::Score(n, op, v) => mine.and_then(|s| s.get(n)).is_some_and(|x| match *op {
                "eq" => x == v,
                "ne" => x != v,
                "gt" => x > v,
                "gte" => x >= v,
                "lt" => x < v,
                _ => x <= v,
            }),
            Filter::ScoreMissing(n) => !mine.is_some_and(|s| s.contains_key(n)),
        }
    }
}

fn random_filter(rng: &mut StdRng) -> Filter {
    match rng.random_range(0..7) {
        0 => Filter::Meta(vec!["run"], rng.random_range(1..6).to_string()),
        1 => Filter::Meta(
            vec!["ok"],
            ["true", "false"].choose(rng).unwrap().to_string(),
        ),
        2 => Filter::Meta(
            vec!["model", "name"],
            ["m-a", "m-b", "m\u{0}c"].choose(rng).unwrap().to_string(),
        ),
        3 => Filter::Tag(
            ["math", "geo", "hard", "中文", "naïve"]
                .choose(rng)
                .unwrap()
                .to_string(),
        ),
        4 => {
            let q = match rng.random_range(0..4) {
                0 => WORDS.choose(rng).unwrap().to_string(),
                1 => CJK.choose(rng).unwrap().to_string(),
                2 => WORDS.choose(rng).unwrap().chars().take(3).collect(),
                _ => format!(
                    "{} {}",
                    WORDS.choose(rng).unwrap(),
                    CJK.choose(rng).unwrap()
                ),
            };
            Filter::Q(q)
        }
        5 => Filter::Score(
            ["correct", "quality"].choose(rng).unwrap().to_string(),
            ["eq", "ne", "gt", "gte", "lt", "lte"].choose(rng).unwrap(),
            [0.0, 0.5, 1.0].choose(rng).copied().unwrap(),
        ),
        _ => Filter::ScoreMissing(["correct", "quality"].choose(rng).unwrap().to_string()),
    }
}

async fn post_trace(stack: &Stack, rng: &mut StdRng, i: usize) -> Posted {
    let prompt = random_text(rng);
    let answer = random_text(rng);
    let step = random_text(rng);
    let meta = random_meta(rng, i);
    let body = json!({"trace_version": "1", "prompt": prompt, "final_answer": answer,
                      "steps": [{"i": 0, "type": "t", "content": step}], "meta": meta});
    let (status, ack) = stack.post(&body).await;
    assert_eq!(status, 202, "{ack}");
    Posted {
        id: ack["id"].as_str().unwrap().to_owned(),
        created_at: ack["created_at"].as_str().unwrap().to_owned(),
        texts: vec![prompt, answer, step],
        meta,
    }
}

async fn record(stack: &Stack, id: &str, name: &str, value: f64) {
    let path = format!("/api/traces/{id}/scores");
    let body = json!({"name": name, "value": value, "source": "test"});
    assert_eq!(stack.client().post(&path, &body).await.0, 202);
}

/// Every id the API lists for `query`, walking pages with the cursor; `between` runs after each
/// page (new traces arriving mid-walk).
async fn walk(stack: &Stack, query: &str, mut between: impl AsyncFnMut()) -> Vec<String> {
    let mut got = Vec::new();
    let mut next = String::new();
    loop {
        let (status, page) = stack
            .get(&format!("/api/traces?limit=9&{query}{next}"))
            .await;
        assert_eq!(status, 200, "{query}: {page}");
        for item in page["data"].as_array().unwrap() {
            got.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => next = format!("&cursor={c}"),
            None => break,
        }
        between().await;
    }
    got
}

fn expected(posted: &[Posted], scores: &Scores, filters: &[Filter]) -> Vec<String> {
    let mut hits: Vec<&Posted> = posted
        .iter()
        .filter(|p| filters.iter().all(|f| f.matches(p, scores)))
        .collect();
    hits.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    hits.into_iter().map(|p| p.id.clone()).collect()
}

/// The query string of `filters`.
fn query_of(filters: &[Filter]) -> String {
    filters
        .iter()
        .map(Filter::query)
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_search_and_scores_equal_a_reference_across_pages_and_a_rebuild() {
    let stack = Stack::start(StackOptions::default()).await;
    let mut rng = StdRng::seed_from_u64(17);
    let (mut posted, scores) = random_traces_get_random_scores(&stack, &mut rng).await;
    let expected_rows: i64 = scores.values().map(|s| s.len() as i64).sum();
    eventually(CONVERGE, "every score applied", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_scores")
            .fetch_one(&stack.db.pool)
            .await
            .ok()?;
        (n == expected_rows).then_some(())
    })
    .await;
    items_and_get_carry_the_scores(&stack, &posted, &scores).await;
    let cases = random_filters_walked_while_traces_arrive_equal_the_reference(
        &stack,
        &mut rng,
        &mut posted,
        &scores,
    )
    .await;
    stats_equal_the_reference(&stack, &posted, &scores, &cases).await;
    a_rebuild_gives_the_same_answers_and_scores(&stack, &cases, expected_rows).await;
}

/// `GET /api/traces/stats` selects what the list selects: for no filter and every combination,
/// the matches (all exact: far below the sampling limit), the hours they fall in, and each score
/// name's count, range and bins equal the reference.
async fn stats_equal_the_reference(
    stack: &Stack,
    posted: &[Posted],
    scores: &Scores,
    cases: &[Vec<Filter>],
) {
    let no_filter: Vec<Filter> = Vec::new();
    for filters in std::iter::once(&no_filter).chain(cases) {
        let query = query_of(filters);
        let want = expected(posted, scores, filters);
        let (status, stats) = stack.get(&format!("/api/traces/stats?{query}")).await;
        assert_eq!(status, 200, "{query}: {stats}");
        assert_eq!(stats["exact"], true, "{query}");
        assert_eq!(stats["matched"], want.len(), "{query}: {stats}");
        let in_buckets: i64 = stats["volume"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum();
        assert_eq!(in_buckets, want.len() as i64, "{query}: {stats}");
        let mut by_name: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for id in &want {
            for (name, v) in scores.get(id).into_iter().flatten() {
                by_name.entry(name.clone()).or_default().push(*v);
            }
        }
        let charted: BTreeMap<String, (i64, f64, f64, i64)> = stats["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let binned = h["bins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b["count"].as_i64().unwrap())
                    .sum();
                let name = h["name"].as_str().unwrap().to_owned();
                let count = h["count"].as_i64().unwrap();
                (
                    name,
                    (
                        count,
                        h["min"].as_f64().unwrap(),
                        h["max"].as_f64().unwrap(),
                        binned,
                    ),
                )
            })
            .collect();
        let reference: BTreeMap<String, (i64, f64, f64, i64)> = by_name
            .into_iter()
            .map(|(name, vs)| {
                let lo = vs.iter().copied().fold(f64::MAX, f64::min);
                let hi = vs.iter().copied().fold(f64::MIN, f64::max);
                (name, (vs.len() as i64, lo, hi, vs.len() as i64))
            })
            .collect();
        assert_eq!(charted, reference, "{query}");
    }
}

/// 160 random traces; most get scores, some are overwritten or retracted. Returns what was
/// posted and the scores each trace should have, once both read models hold every trace.
async fn random_traces_get_random_scores(stack: &Stack, rng: &mut StdRng) -> (Vec<Posted>, Scores) {
    let mut posted = Vec::new();
    for i in 0..160 {
        posted.push(post_trace(stack, rng, i).await);
    }
    // Scores: most traces get some, some are overwritten or retracted.
    let mut scores: Scores = HashMap::new();
    for p in &posted {
        for name in ["correct", "quality"] {
            if rng.random_bool(0.6) {
                let v = [0.0, 0.5, 1.0].choose(rng).copied().unwrap();
                record(stack, &p.id, name, v).await;
                scores
                    .entry(p.id.clone())
                    .or_default()
                    .insert(name.into(), v);
            }
        }
        if rng.random_bool(0.1) {
            let v = 0.25;
            record(stack, &p.id, "quality", v).await;
            scores
                .entry(p.id.clone())
                .or_default()
                .insert("quality".into(), v);
        }
        if rng.random_bool(0.1) {
            let path = format!("/api/traces/{}/scores/correct", p.id);
            assert_eq!(stack.client().delete(&path).await.0, 202);
            scores.entry(p.id.clone()).or_default().remove("correct");
        }
    }
    stack.wait_converged(posted.len(), CONVERGE).await;
    (posted, scores)
}

/// Items and GET carry the scores.
async fn items_and_get_carry_the_scores(stack: &Stack, posted: &[Posted], scores: &Scores) {
    let sample = &posted[3];
    let (_, one) = stack.get(&format!("/api/traces/{}", sample.id)).await;
    let got: BTreeMap<String, f64> = one["scores"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["value"].as_f64().unwrap()))
        .collect();
    let want: BTreeMap<String, f64> = scores
        .get(&sample.id)
        .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    assert_eq!(got, want);
}

/// Random filter combinations, walked with the cursor while new traces arrive: each answer
/// equals the reference, and enough of them select something. The late traces join `posted`.
/// Returns the combinations.
async fn random_filters_walked_while_traces_arrive_equal_the_reference(
    stack: &Stack,
    rng: &mut StdRng,
    posted: &mut Vec<Posted>,
    scores: &Scores,
) -> Vec<Vec<Filter>> {
    let mut cases: Vec<Vec<Filter>> = Vec::new();
    for _ in 0..36 {
        let n = rng.random_range(1..4);
        cases.push((0..n).map(|_| random_filter(rng)).collect());
    }
    let mut seen_nonempty = 0;
    for (n, filters) in cases.iter().enumerate() {
        let query = query_of(filters);
        let want = expected(posted, scores, filters);
        let mut extra_rng = StdRng::seed_from_u64(n as u64);
        let mut late = Vec::new();
        let got = walk(stack, &query, async || {
            // A newer trace mid-walk: keyset pages continue below the cursor, so it is not seen.
            late.push(post_trace(stack, &mut extra_rng, 1000 + late.len()).await);
        })
        .await;
        assert_eq!(got, want, "{query}");
        if !want.is_empty() {
            seen_nonempty += 1;
        }
        // From the next walk on, the late traces are part of what was posted.
        posted.extend(late);
        stack.wait_converged(posted.len(), CONVERGE).await;
    }
    assert!(
        seen_nonempty >= 12,
        "the cases must select something: {seen_nonempty}"
    );
    cases
}

/// A rebuild from offset 0 gives the same answers and scores.
async fn a_rebuild_gives_the_same_answers_and_scores(
    stack: &Stack,
    cases: &[Vec<Filter>],
    expected_rows: i64,
) {
    let mut before: Vec<Vec<String>> = Vec::new();
    for filters in cases {
        before.push(walk(stack, &query_of(filters), async || {}).await);
    }
    stack.rebuild_into(&stack.db.url).await;
    for (filters, before) in cases.iter().zip(before) {
        let q = query_of(filters);
        assert_eq!(
            walk(stack, &q, async || {}).await,
            before,
            "after rebuild: {q}"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_scores")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(n, expected_rows, "scores survive the rebuild");
}

/// A score for an id no trace has, or for a deleted trace, is accepted (the ingest path cannot
/// know, and a harness often scores before the read models have the trace) and ignored by the
/// read models, counted; a deleted trace's scores vanish with it.
#[tokio::test(flavor = "multi_thread")]
async fn scores_for_unknown_or_deleted_traces_are_ignored_and_deletes_take_scores_along() {
    let stack = Stack::start(StackOptions::default()).await;
    let mut rng = StdRng::seed_from_u64(5);
    let kept = post_trace(&stack, &mut rng, 0).await;
    let doomed = post_trace(&stack, &mut rng, 1).await;
    // Right after the 202: same partition, so the projector sees the submission first.
    record(&stack, &kept.id, "correct", 1.0).await;
    record(&stack, &doomed.id, "correct", 0.0).await;
    let unknown = Uuid::new_v4().to_string();
    record(&stack, &unknown, "correct", 1.0).await;
    stack.wait_converged(2, CONVERGE).await;
    let path = format!("/api/traces/{}", doomed.id);
    assert_eq!(stack.client().delete(&path).await.0, 202);
    record(&stack, &doomed.id, "quality", 1.0).await; // after the delete
    stack.wait_converged(1, CONVERGE).await;
    let ignored = eventually(CONVERGE, "the late score ignored", || async {
        let text = stack.scrape(&stack.projector_ops).await?;
        let n = metric_sum(&text, "tunix_projector_scores_ignored_total")?;
        (n >= 1.0).then_some(n)
    })
    .await;
    assert_eq!(ignored, 1.0, "the deleted trace's late score");
    // The unknown id's score is kept (on a compacted topic a score can precede its trace's
    // surviving submission) but shows nowhere until a trace with that id is listed.
    let mut rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT trace_id, name FROM trace_scores ORDER BY trace_id")
            .fetch_all(&stack.db.pool)
            .await
            .unwrap();
    rows.sort();
    let mut want = vec![
        (kept.id.parse().unwrap(), "correct".to_owned()),
        (unknown.parse().unwrap(), "correct".to_owned()),
    ];
    want.sort();
    assert_eq!(rows, want);
    assert_eq!(stack.get(&format!("/api/traces/{unknown}")).await.0, 404);
    let (status, page) = stack.get("/api/traces?score.correct=1").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"][0]["id"], kept.id.as_str());
    assert_eq!(page["data"][0]["scores"]["correct"]["value"], 1.0);
    assert_eq!(page["data"][0]["scores"]["correct"]["source"], "test");
}

/// The seed API's scoring: `POST /api/traces/{id}/score` computes and records the `baseline`
/// score; `GET /api/traces/compare` answers both sides with their scores (computed, not stored,
/// when none is recorded).
#[tokio::test(flavor = "multi_thread")]
async fn baseline_score_and_compare_follow_the_seed_api() {
    let stack = Stack::start(StackOptions::default()).await;
    let steps: Vec<Value> = (0..4)
        .map(|i| json!({"i": i, "type": "t", "content": "x".repeat(250)}))
        .collect();
    let (_, a) = stack
        .post(&json!({"trace_version": "1", "prompt": "p", "final_answer": "a", "steps": steps}))
        .await;
    let (_, b) = stack
        .post(
            &json!({"trace_version": "1", "prompt": "p", "final_answer": "a",
                      "steps": [{"i": 0, "type": "t", "content": "short"}]}),
        )
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    stack.wait_converged(2, CONVERGE).await;

    let api = stack.client();
    let (status, body) = api
        .post(
            &format!("/api/traces/{a}/score"),
            &json!({"criteria": "baseline"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["trace_id"], a);
    // 4 steps: 0.4 * 50 = 20; average 250 characters: 0.5 * 50 = 25.
    assert_eq!(body["score"], 45.0);
    let d = &body["details"];
    assert_eq!(
        (
            d["step_count"].as_u64(),
            d["avg_step_length"].as_f64(),
            d["total_chars"].as_u64()
        ),
        (Some(4), Some(250.0), Some(1000))
    );
    assert_eq!(
        (d["step_score"].as_f64(), d["length_score"].as_f64()),
        (Some(20.0), Some(25.0))
    );
    assert_eq!(d["criteria"], "baseline");
    assert!(d["scored_at"].is_string());
    // Recorded as the score named baseline.
    let recorded = eventually(CONVERGE, "the baseline score is readable", || async {
        let (_, t) = stack.get(&format!("/api/traces/{a}")).await;
        t["scores"]["baseline"]["value"].as_f64()
    })
    .await;
    assert_eq!(recorded, 45.0);

    // An empty body means baseline too; other criteria are refused.
    let vibes = json!({"criteria": "vibes"});
    let (status, _) = api.post(&format!("/api/traces/{a}/score"), &vibes).await;
    assert_eq!(status, 422);
    let unknown_score = format!("/api/traces/{}/score", Uuid::new_v4());
    let (status, _) = api.send(reqwest::Method::POST, &unknown_score, None).await;
    assert_eq!(status, 404);

    // compare: a has a recorded score; b's is computed for the answer and not stored.
    let (status, cmp) = stack
        .get(&format!("/api/traces/compare?base={a}&other={b}"))
        .await;
    assert_eq!(status, 200, "{cmp}");
    assert_eq!(cmp["base"]["id"], a);
    assert_eq!(cmp["base"]["score"], 45.0);
    assert_eq!(cmp["other"]["id"], b);
    // 1 step: 5; "short" is 5 characters: 0.01 * 50 = 0.5.
    assert_eq!(cmp["other"]["score"], 5.5);
    assert_eq!(cmp["other"]["payload"]["steps"][0]["content"], "short");
    assert!(cmp["base"]["created_at"].is_string() && cmp["base"]["trace_version"] == "1");
    let (_, tb) = stack.get(&format!("/api/traces/{b}")).await;
    assert_eq!(tb["scores"], json!({}), "a GET never writes");

    let unknown = Uuid::new_v4();
    let (status, body) = stack
        .get(&format!("/api/traces/compare?base={a}&other={unknown}"))
        .await;
    assert_eq!(status, 404);
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("other trace {unknown}")));
    let (status, body) = stack.get(&format!("/api/traces/compare?base={a}")).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "other"]));
}
