//! `GET /api/traces/stats`: what the UI's charts draw for the list's current filter: traces per
//! hour or day, a histogram per score name, and token usage by model.
//!
//! **Cost is bounded, not proportional to the view.** Aggregating a trace's metadata facets and
//! scores costs ~10 µs of Postgres time per trace, so 10M traces would take minutes. A request
//! therefore first counts the matches up to [`EXACT_MAX`] (one bounded index walk):
//!
//! - at most [`EXACT_MAX`] match: the statistics are **exact**, over every match;
//! - more: they are **estimated** from a sample of the list table (`TABLESAMPLE SYSTEM`, whole
//!   pages, a fixed seed so the charts do not flicker between refreshes) sized to read about
//!   [`SAMPLE_ROWS`] rows, with the same filters; counts and token sums are scaled up by the
//!   sampled fraction, and the answer says so (`exact: false`, `sample_percent`).
//!
//! Either way one statement reads the matches once (materialized), then groups them four ways.
//! Buckets are UTC hours (`date_bin`, independent of the session's time zone), rolled up into
//! days here; empty buckets between the first and the last are filled with zeros.
//!
//! Token usage comes from `meta.gen_ai.usage.input_tokens` and `output_tokens` (what the OTLP
//! intake writes; any producer may send them) and the model from the list's precedence
//! (`gen_ai.request.model`, `gen_ai.response.model`, `model`), all read from the facets (numbers
//! in their canonical form; a negative count, or one of 10^13 or more, is ignored).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use sqlx::{Connection, Postgres, QueryBuilder};
use tunix_schemas::facets::SEPARATOR;

use super::filter::ListQuery;
use crate::http::common::iso;
use crate::http::db::bounded;
use crate::http::error::ApiError;
use crate::AppState;

/// At most this many matches are aggregated exactly; beyond, a sample is.
pub const EXACT_MAX: i64 = 25_000;
/// Rows of the list table a sample aims to read.
pub const SAMPLE_ROWS: f64 = 25_000.0;
/// Equal-width bins per score histogram.
pub const SCORE_BINS: i32 = 20;
/// Score names charted (the most frequent among the matches).
pub const MAX_SCORE_NAMES: usize = 12;
/// Models listed (the most tokens, then the most traces).
pub const MAX_MODELS: usize = 20;
/// Most buckets in one answer (zeros included).
pub const MAX_BUCKETS: i64 = 5_000;
/// With `bucket=auto`, hours when the matches span at most this long, else days.
pub const AUTO_HOURS_SPAN: Duration = Duration::hours(72);

/// The bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// UTC hours.
    Hour,
    /// UTC days.
    Day,
}

impl Bucket {
    fn width(self) -> Duration {
        match self {
            Bucket::Hour => Duration::hours(1),
            Bucket::Day => Duration::days(1),
        }
    }
}

/// `GET /api/traces/stats` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Traces matching the filter (estimated when `exact` is false).
    pub matched: i64,
    /// Whether every match was aggregated (at most [`EXACT_MAX`] matched); otherwise the
    /// numbers are estimates from a sample.
    pub exact: bool,
    /// The share of the list table sampled, in percent; `null` when exact.
    pub sample_percent: Option<f64>,
    /// The bucket width used.
    pub bucket: Bucket,
    /// Traces per bucket, oldest first, from the first match's bucket to the last's.
    pub volume: Vec<VolumeBucket>,
    /// One histogram per score name, the most frequent first (at most [`MAX_SCORE_NAMES`]).
    pub scores: Vec<ScoreHistogram>,
    /// Whether more score names occur than are charted.
    pub scores_truncated: bool,
    /// Traces and tokens per model, the most tokens first (at most [`MAX_MODELS`]); `model` is
    /// `null` for traces that name none.
    pub models: Vec<ModelUsage>,
    /// Whether more models occur than are listed.
    pub models_truncated: bool,
}

/// One time bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VolumeBucket {
    /// Its start (UTC, ISO-8601).
    pub start: String,
    /// Traces created within it.
    pub count: i64,
}

/// The distribution of one score among the matches.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreHistogram {
    /// Score name.
    pub name: String,
    /// Matching traces with this score.
    pub count: i64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value.
    pub mean: f64,
    /// [`SCORE_BINS`] equal-width bins from `min` to `max` (one when they are equal); the last
    /// bin includes `max`.
    pub bins: Vec<ScoreBin>,
}

/// One histogram bin: values in `[from, to)` (the last: `[from, to]`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreBin {
    /// Lower edge.
    pub from: f64,
    /// Upper edge.
    pub to: f64,
    /// Values within.
    pub count: i64,
}

/// Token usage of one model among the matches.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelUsage {
    /// The model (`null`: traces naming none).
    pub model: Option<String>,
    /// Matching traces.
    pub traces: i64,
    /// Sum of `meta.gen_ai.usage.input_tokens`.
    pub input_tokens: i64,
    /// Sum of `meta.gen_ai.usage.output_tokens`.
    pub output_tokens: i64,
}

/// `GET /api/traces/stats`.
#[utoipa::path(
    get,
    path = "/api/traces/stats",
    tag = "read",
    summary = "Statistics of the traces a list filter matches, for charts",
    description = "Takes the list's filters (limit, offset and cursor are validated as for the list, then ignored) and `bucket` (`hour`, `day`, or `auto`: hours when the matches span at most 72 h). Exact when at most 25,000 traces match; beyond, estimated from a sample of about 25,000 rows (`exact: false`, `sample_percent`), so the cost stays bounded at any size.",
    params(
        ListQuery,
        ("bucket" = Option<String>, Query, description = "hour, day or auto (default)"),
    ),
    responses(
        (status = 200, body = Stats),
        (status = 422, description = "A parameter is invalid; loc names it", body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn stats(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Stats>, ApiError> {
    let mut q = ListQuery::parse(raw.as_deref())?;
    q.after = None;
    let bucket = parse_bucket(raw.as_deref())?;
    let (rows, sample) = bounded(&state, async {
        let mut conn = state.reads.acquire().await?;
        let mut tx = conn.begin().await?;
        // One snapshot for the count and the aggregate.
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    // Matches come from their index one by one (as a sparse list page's do, see
    // `traces::read`), never from a scan of the whole list that the planner's estimates
    // might prefer: the probe stops at EXACT_MAX + 1, an exact aggregate then reads at most
    // EXACT_MAX, and a sample is a sample scan (not a sequential one).
        sqlx::query!(
            "SELECT set_config('enable_seqscan', 'off', true) AS seqscan,
                    set_config('enable_hashjoin', 'off', true) AS hashjoin,
                    set_config('enable_mergejoin', 'off', true) AS mergejoin"
        )
        .fetch_one(&mut *tx)
        .await?;
        let mut probe = QueryBuilder::new("SELECT count(*) FROM (");
        q.push_matches(&mut probe, "1", "trace_list l", false);
        probe.push(format_args!(" LIMIT {}) m", EXACT_MAX + 1));
        let found: i64 = probe
            .build_query_scalar()
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
        let sample = if found > EXACT_MAX {
            let t = sqlx::query!(
                r#"SELECT 'trace_list_v' || p.active_version AS "table!",
                          CASE WHEN c.relpages > 0 AND c.reltuples > 0
                               THEN c.reltuples / c.relpages
                                    * (pg_relation_size(c.oid) / current_setting('block_size')::int)
                               ELSE (pg_relation_size(c.oid) / current_setting('block_size')::int) * 20.0
                          END::float8 AS "rows!"
                   FROM projection_state p
                   JOIN pg_class c ON c.relname = 'trace_list_v' || p.active_version
                   WHERE p.name = 'trace_list'"#
            )
            .fetch_one(&mut *tx)
            .await?;
            Some(Sample {
                table: t.table,
                percent: (100.0 * SAMPLE_ROWS / t.rows.max(1.0)).clamp(0.000_1, 100.0),
            })
        } else {
            None
        };
        let rows: Result<Vec<StatsRow>, sqlx::Error> = aggregate_sql(&q, sample.as_ref())
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await;
        let rows = match rows {
            Ok(rows) => Some(rows),
            // A projection rebuild dropped the sampled table between reading its name and
            // sampling it (undefined_table): the next request samples the new one.
            Err(e) if sample.is_some() && undefined_table(&e) => None,
            Err(e) => return Err(e),
        };
        tx.rollback().await?; // read only: nothing to keep
        conn.release();
        Ok(rows.map(|rows| (rows, sample)))
    })
    .await?
    .ok_or_else(|| {
        ApiError::unavailable(
            "the list view was rebuilt during the request; retry",
            state.cfg.retry_after_secs,
        )
    })?;
    Ok(Json(assemble(rows, sample.as_ref(), bucket)?))
}

fn undefined_table(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01")
}

/// The `bucket` parameter: `Some` width, or `None` for auto.
fn parse_bucket(raw: Option<&str>) -> Result<Option<Bucket>, ApiError> {
    let mut bucket = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if k == "bucket" {
            bucket = match v.trim() {
                "hour" => Some(Bucket::Hour),
                "day" => Some(Bucket::Day),
                "auto" | "" => None,
                other => {
                    return Err(ApiError::InvalidParam {
                        param: "bucket".into(),
                        msg: format!("Input should be 'hour', 'day' or 'auto' (bucket={other:?})"),
                        location: "query",
                    })
                }
            };
        }
    }
    Ok(bucket)
}

/// The list table a sample reads, and the share of its pages.
struct Sample {
    table: String,
    percent: f64,
}

impl Sample {
    /// Multiplies a count from the sample up to an estimate of the whole.
    fn scale(&self, n: f64) -> i64 {
        (n * 100.0 / self.percent).round() as i64
    }
}

/// One row of the aggregate: `part` says which (`v` volume per hour, `m` model usage, `s` score
/// summary, `h` histogram bin); `label` is the model or score name.
#[derive(sqlx::FromRow)]
struct StatsRow {
    part: String,
    label: Option<String>,
    at: Option<DateTime<Utc>>,
    n: i64,
    a: Option<f64>,
    b: Option<f64>,
    c: Option<f64>,
    /// A score's bin edges (`s` rows): the lower edge of each bin, in order.
    edges: Option<Vec<f64>>,
}

/// The aggregate statement (see the module docs): matches materialized once, then grouped into
/// hours, models, score summaries and score bins. Any finite score aggregates: the mean is taken
/// in numeric through text (a float8 avg overflows on its sum of squares near the ends of the
/// range, and float8 -> numeric keeps only 15 digits), and the bins' edges are convex
/// combinations of min and max, returned with the summary so that a bin's range filter selects
/// exactly its values.
fn aggregate_sql<'a>(q: &'a ListQuery, sample: Option<&Sample>) -> QueryBuilder<'a, Postgres> {
    let mut b = QueryBuilder::new("WITH m AS MATERIALIZED (");
    let columns = "l.id, l.created_at, l.facets";
    match sample {
        // The table name comes from `projection_state` (`trace_list_v<integer>`), the percent
        // is a float we computed: neither is client input.
        Some(s) => {
            let from = format!(
                "{} l TABLESAMPLE SYSTEM ({}) REPEATABLE (7)",
                s.table, s.percent
            );
            q.push_matches(&mut b, columns, &from, true);
        }
        None => q.push_matches(&mut b, columns, "trace_list l", false),
    };
    let model = |key: &str| format!("starts_with(f, '{key}{SEPARATOR}s:')");
    let tokens = |key: &str| {
        let prefix = format!("gen_ai.usage.{key}{SEPARATOR}n:");
        let at = prefix.chars().count() + 1;
        format!(
            "sum(substr(f, {at})::numeric) FILTER (WHERE starts_with(f, '{prefix}') \
             AND substr(f, {at}) ~ '^([0-9](\\.[0-9]+)?e([0-9]|1[0-2])|0)$')"
        )
    };
    // Byte order, as the facets are stored: with several values under one key, the list's
    // `model` (the first facet) and this one agree.
    let value = format!("substr(f, strpos(f, '{SEPARATOR}s:') + 3) COLLATE \"C\"");
    b.push(format_args!(
        "), sc AS MATERIALIZED (SELECT s.name, s.value FROM m CROSS JOIN LATERAL \
             (SELECT s.name, s.value FROM trace_scores s WHERE s.trace_id = m.id OFFSET 0) s), \
         names AS (SELECT name, count(*) AS n, min(value) AS lo, max(value) AS hi, \
                 avg(value::text::numeric)::float8 AS mean \
             FROM sc GROUP BY name ORDER BY count(*) DESC, name LIMIT {names}), \
         bounds AS (SELECT names.*, CASE WHEN hi > lo THEN ARRAY(SELECT lo * (1 - k / {bins}.0::float8) + hi * (k / {bins}.0::float8) \
                 FROM generate_series(0, {bins} - 1) AS k) ELSE ARRAY[lo] END AS edges FROM names) \
         SELECT 'v' AS part, NULL::text AS label, date_bin('1 hour', m.created_at, '2000-01-01 00:00:00+00') AS at, \
             count(*) AS n, NULL::float8 AS a, NULL::float8 AS b, NULL::float8 AS c, NULL::float8[] AS edges \
             FROM m GROUP BY 3 \
         UNION ALL SELECT 'm', u.model, NULL, count(*), sum(u.input)::float8, sum(u.output)::float8, NULL, NULL \
             FROM m CROSS JOIN LATERAL (SELECT \
                 coalesce(min({value}) FILTER (WHERE {req}), min({value}) FILTER (WHERE {resp}), \
                          min({value}) FILTER (WHERE {plain})) AS model, \
                 {input} AS input, {output} AS output \
                 FROM unnest(m.facets) f) u GROUP BY u.model \
         UNION ALL SELECT 's', name, NULL, n, lo, hi, mean, edges FROM bounds \
         UNION ALL SELECT 'h', b.name, NULL, count(*), width_bucket(sc.value, b.edges)::float8, NULL, NULL, NULL \
             FROM sc JOIN bounds b USING (name) GROUP BY 2, 5",
        names = MAX_SCORE_NAMES + 1,
        req = model("gen_ai.request.model"),
        resp = model("gen_ai.response.model"),
        plain = model("model"),
        input = tokens("input_tokens"),
        output = tokens("output_tokens"),
        bins = SCORE_BINS,
    ));
    b
}

/// One score name's summary row.
struct Summary {
    name: String,
    n: i64,
    lo: f64,
    hi: f64,
    mean: f64,
    edges: Vec<f64>,
}

/// Builds the answer from the aggregate's rows.
fn assemble(
    rows: Vec<StatsRow>,
    sample: Option<&Sample>,
    bucket: Option<Bucket>,
) -> Result<Stats, ApiError> {
    let scale = |n: f64| sample.map_or(n.round() as i64, |s| s.scale(n));
    let text = |v: String| tunix_schemas::pg_text::decode(&v).into_owned();
    let mut hours: BTreeMap<DateTime<Utc>, i64> = BTreeMap::new();
    let mut models = Vec::new();
    let mut summaries = Vec::new();
    let mut bins: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for r in rows {
        match r.part.as_str() {
            "v" => {
                if let Some(at) = r.at {
                    hours.insert(at, r.n);
                }
            }
            "m" => models.push(ModelUsage {
                model: r.label.map(text),
                traces: scale(r.n as f64),
                input_tokens: scale(r.a.unwrap_or(0.0)),
                output_tokens: scale(r.b.unwrap_or(0.0)),
            }),
            "s" => summaries.push(Summary {
                name: r.label.unwrap_or_default(),
                n: r.n,
                lo: r.a.unwrap_or(0.0),
                hi: r.b.unwrap_or(0.0),
                mean: r.c.unwrap_or(0.0),
                edges: r.edges.unwrap_or_default(),
            }),
            "h" => {
                *bins
                    .entry(r.label.unwrap_or_default())
                    .or_default()
                    .entry(r.a.unwrap_or(1.0) as i32)
                    .or_default() += r.n;
            }
            _ => {}
        }
    }
    let matched_in_rows: i64 = hours.values().sum();
    // A sample of a filter whose matches cluster in time can hold few or none of them; the
    // count taken before sampling proved more than EXACT_MAX.
    let matched = match sample {
        Some(_) => scale(matched_in_rows as f64).max(EXACT_MAX + 1),
        None => matched_in_rows,
    };
    let span = match (hours.keys().next(), hours.keys().next_back()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::zero(),
    };
    let bucket = bucket.unwrap_or(if span <= AUTO_HOURS_SPAN {
        Bucket::Hour
    } else {
        Bucket::Day
    });
    let volume = fill_buckets(&hours, bucket, |n| scale(n as f64))?;

    // Most frequent first (the statement's order is lost in the UNION).
    summaries.sort_by(|x, y| y.n.cmp(&x.n).then_with(|| x.name.cmp(&y.name)));
    let scores_truncated = summaries.len() > MAX_SCORE_NAMES;
    summaries.truncate(MAX_SCORE_NAMES);
    let scores = summaries
        .into_iter()
        .map(|h| {
            let counts = bins.remove(&h.name).unwrap_or_default();
            // The statement's own edges, so that a bin's range is exactly what `score.<name>=
            // gte:<from>&score.<name>=lt:<to>` selects (the last bin: `lte:<max>`).
            let bins = (0..h.edges.len())
                .map(|i| ScoreBin {
                    from: h.edges[i],
                    to: h.edges.get(i + 1).copied().unwrap_or(h.hi),
                    count: scale(*counts.get(&(i as i32 + 1)).unwrap_or(&0) as f64),
                })
                .collect();
            ScoreHistogram {
                name: text(h.name),
                count: scale(h.n as f64),
                min: h.lo,
                max: h.hi,
                mean: h.mean,
                bins,
            }
        })
        .collect();

    models.sort_by(|x, y| {
        (y.input_tokens.saturating_add(y.output_tokens))
            .cmp(&(x.input_tokens.saturating_add(x.output_tokens)))
            .then(y.traces.cmp(&x.traces))
            .then_with(|| x.model.cmp(&y.model))
    });
    let models_truncated = models.len() > MAX_MODELS;
    models.truncate(MAX_MODELS);
    Ok(Stats {
        matched,
        exact: sample.is_none(),
        sample_percent: sample.map(|s| s.percent),
        bucket,
        volume,
        scores,
        scores_truncated,
        models,
        models_truncated,
    })
}

/// Rolls hourly counts up into `bucket`s and fills the empty ones between the first and the
/// last with zeros; 422 beyond [`MAX_BUCKETS`].
fn fill_buckets(
    hours: &BTreeMap<DateTime<Utc>, i64>,
    bucket: Bucket,
    scale: impl Fn(i64) -> i64,
) -> Result<Vec<VolumeBucket>, ApiError> {
    let width = bucket.width();
    let mut rolled: BTreeMap<DateTime<Utc>, i64> = BTreeMap::new();
    for (at, n) in hours {
        let start = at.duration_trunc(width).unwrap_or(*at);
        *rolled.entry(start).or_default() += n;
    }
    let (Some(first), Some(last)) = (rolled.keys().next(), rolled.keys().next_back()) else {
        return Ok(Vec::new());
    };
    let count = (*last - *first).num_seconds() / width.num_seconds() + 1;
    if count > MAX_BUCKETS {
        return Err(ApiError::InvalidParam {
            param: "bucket".into(),
            msg: format!(
                "the matches span {count} buckets of a {}, more than {MAX_BUCKETS}: use bucket=day or narrow created_after/created_before",
                if bucket == Bucket::Hour { "hour" } else { "day" }
            ),
            location: "query",
        });
    }
    Ok((0..count)
        .map(|i| {
            let start = *first + width * i as i32;
            VolumeBucket {
                start: iso(&start),
                count: scale(*rolled.get(&start).unwrap_or(&0)),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn hours_roll_up_into_days_with_the_empty_ones_as_zeros() {
        let hours = BTreeMap::from([
            (at("2026-01-01T05:00:00Z"), 2),
            (at("2026-01-01T23:00:00Z"), 3),
            (at("2026-01-03T00:00:00Z"), 4),
        ]);
        let days = fill_buckets(&hours, Bucket::Day, |n| n).unwrap();
        let got: Vec<(&str, i64)> = days.iter().map(|b| (b.start.as_str(), b.count)).collect();
        assert_eq!(
            got,
            [
                ("2026-01-01T00:00:00.000000Z", 5),
                ("2026-01-02T00:00:00.000000Z", 0),
                ("2026-01-03T00:00:00.000000Z", 4),
            ]
        );
        let hourly = fill_buckets(&hours, Bucket::Hour, |n| n * 10).unwrap();
        assert_eq!(hourly.len(), 44, "05:00 on the 1st to 00:00 on the 3rd");
        assert_eq!(hourly.iter().map(|b| b.count).sum::<i64>(), 90, "scaled");
        assert!(fill_buckets(&BTreeMap::new(), Bucket::Hour, |n| n)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn too_many_buckets_is_the_clients_to_narrow() {
        let hours = BTreeMap::from([
            (at("2025-01-01T00:00:00Z"), 1),
            (at("2026-01-01T00:00:00Z"), 1),
        ]);
        let err = fill_buckets(&hours, Bucket::Hour, |n| n).unwrap_err();
        assert!(matches!(err, ApiError::InvalidParam { ref param, .. } if param == "bucket"));
        assert_eq!(fill_buckets(&hours, Bucket::Day, |n| n).unwrap().len(), 366);
    }

    #[test]
    fn bucket_parameter() {
        assert_eq!(parse_bucket(None).unwrap(), None);
        assert_eq!(parse_bucket(Some("bucket=auto")).unwrap(), None);
        assert_eq!(
            parse_bucket(Some("tag=a&bucket=hour")).unwrap(),
            Some(Bucket::Hour)
        );
        assert_eq!(parse_bucket(Some("bucket=day")).unwrap(), Some(Bucket::Day));
        assert!(parse_bucket(Some("bucket=week")).is_err());
    }

    #[test]
    fn a_sample_that_holds_no_match_still_reports_more_than_the_exact_limit() {
        let s = Sample {
            table: "trace_list_v1".into(),
            percent: 0.25,
        };
        let stats = assemble(Vec::new(), Some(&s), None).unwrap();
        assert_eq!(stats.matched, EXACT_MAX + 1);
        assert!(!stats.exact && stats.volume.is_empty());
        let exact = assemble(Vec::new(), None, None).unwrap();
        assert_eq!((exact.matched, exact.exact), (0, true));
    }

    #[test]
    fn a_sample_scales_counts_by_its_share() {
        let s = Sample {
            table: "trace_list_v1".into(),
            percent: 0.25,
        };
        assert_eq!(s.scale(1.0), 400);
        assert_eq!(s.scale(2_500.0), 1_000_000);
    }
}
