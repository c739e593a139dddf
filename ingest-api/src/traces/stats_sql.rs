//! The statements behind `GET /api/traces/stats` (see `traces::stats`): the bounded count of
//! the matches, the sample's table and size, and the aggregate (matches materialized once, then
//! grouped by hour, model, score name and score bin). Built at run time like the list's
//! (`filter_sql`), whose [`ListQuery::push_matches`] selects the matches.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use tunix_schemas::facets::SEPARATOR;

use super::filter::ListQuery;

/// At most this many matches are aggregated exactly; beyond, a sample is.
pub const EXACT_MAX: i64 = 25_000;
/// Rows of the list table a sample aims to read.
pub const SAMPLE_ROWS: f64 = 25_000.0;
/// Equal-width bins per score histogram.
pub const SCORE_BINS: i32 = 20;
/// Score names charted (the most frequent among the matches).
pub const MAX_SCORE_NAMES: usize = 12;

/// Counts the matches (up to [`EXACT_MAX`] + 1), then aggregates them all or a sample, in one
/// read-only snapshot. `None` when a projection rebuild dropped the sampled table between
/// reading its name and sampling it (`undefined_table`): the next request samples the new one.
pub(super) async fn read_rows(
    conn: &mut PgConnection,
    q: &ListQuery,
) -> Result<Option<(Vec<StatsRow>, Option<Sample>)>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    // One snapshot for the count and the aggregate.
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Matches come from their index one by one (as a sparse list page's do, see
    // `traces::read`), never from a scan of the whole list that the planner's estimates
    // might prefer: the probe stops at EXACT_MAX + 1, an exact aggregate then reads at most
    // EXACT_MAX, and a sample is a sample scan (not a sequential one).
    crate::http::db::read_from_indexes(&mut tx).await?;
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
    let rows: Result<Vec<StatsRow>, sqlx::Error> = aggregate_sql(q, sample.as_ref())
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
    Ok(rows.map(|rows| (rows, sample)))
}

fn undefined_table(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01")
}

/// The list table a sample reads, and the share of its pages.
pub(super) struct Sample {
    pub(super) table: String,
    pub(super) percent: f64,
}

impl Sample {
    /// Multiplies a count from the sample up to an estimate of the whole.
    pub(super) fn scale(&self, n: f64) -> i64 {
        (n * 100.0 / self.percent).round() as i64
    }
}

/// One row of the aggregate: `part` says which (`v` volume per hour, `m` model usage, `s` score
/// summary, `h` histogram bin); `label` is the model or score name.
#[derive(sqlx::FromRow)]
pub(super) struct StatsRow {
    pub(super) part: String,
    pub(super) label: Option<String>,
    pub(super) at: Option<DateTime<Utc>>,
    pub(super) n: i64,
    pub(super) a: Option<f64>,
    pub(super) b: Option<f64>,
    pub(super) c: Option<f64>,
    /// A score's bin edges (`s` rows): the lower edge of each bin, in order.
    pub(super) edges: Option<Vec<f64>>,
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
