//! The answer of `GET /api/traces/stats` (see `traces::stats`), built from the aggregate's rows
//! ([`stats_sql`](super::stats_sql)): hours rolled up into the chosen bucket with empty ones as
//! zeros, score bins on the statement's own edges, models ordered by tokens; a sample's counts
//! scaled up to estimates.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;

use super::stats_sql::{Sample, StatsRow, EXACT_MAX, MAX_SCORE_NAMES};
use crate::http::common::iso;
use crate::http::error::ApiError;

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
pub(super) fn assemble(
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
