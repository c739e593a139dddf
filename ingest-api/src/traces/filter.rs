//! The parameters of `GET /api/traces`: parsing (with the seed's messages), the opaque cursor, and
//! the SQL they select with. One type, [`ListQuery`], both parses and documents them.
//!
//! Filters (all combinable, with both paging modes):
//!
//! | parameter | matches |
//! | --- | --- |
//! | `trace_version=v` | exactly that version |
//! | `created_after=t`, `created_before=t` | `created_at` ≥ / < an ISO-8601 instant |
//! | `meta.<key>[.<key>…]=v` (repeatable, ANDed) | `meta` holds that path with the string `v`, or the number or boolean `v` spells (`schemas::facets`) |
//! | `tag=t` (repeatable, ANDed) | `meta.tags` contains `t` (the same as `meta.tags=t`) |
//! | `q=text` | every term of `text` occurs in the prompt, the answer or a step (`schemas::search`) |
//! | `score.<name>=<cond>` (repeatable, ANDed) | `<n>` or `eq:<n>`, `ne:<n>`, `gt:<n>`, `gte:<n>`, `lt:<n>`, `lte:<n>`, `present`, `missing` |
//!
//! Every filter is served by an index of the list view (B-tree for version and time, GIN for
//! facets and search terms, the scores table's keys for scores). A cursor remembers a digest of
//! the filters it was issued for and is refused (422) with any others.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder};
use tunix_schemas::search::{self, QueryTerm};
use tunix_schemas::{facets, pg_text, score};
use uuid::Uuid;

use crate::error::ApiError;

/// Default page size (the seed's).
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest `limit`.
pub const MAX_LIMIT: i64 = 100;
/// Longest `q`, in characters.
pub const Q_MAX_CHARS: usize = 500;
/// Most `meta.*`, `tag` and `score.*` filters in one request.
pub const MAX_FILTERS: usize = 16;

/// The earliest instant PostgreSQL's `timestamptz` holds (4714-11-24 00:00 UTC BC, Julian day 0),
/// in microseconds since the Unix epoch. The latest (294276 AD) is beyond every instant chrono
/// parses, so only this bound needs checking.
pub const PG_MIN_MICROS: i64 = -210_866_803_200_000_000;

/// A condition on one score.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreCondition {
    /// The score compares with a value (`=`, `<>`, `>`, `>=`, `<`, `<=`).
    Compare(&'static str, f64),
    /// The trace has the score.
    Present,
    /// The trace does not have the score.
    Missing,
}

/// A metadata filter: its facet candidates (any may match).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaFilter {
    /// The parameter as given (`meta.run` or `tag`), for messages and the cursor digest.
    pub param: String,
    /// The value as given.
    pub value: String,
    /// `pg_text`-encoded facets; a trace matches when it has any of them.
    pub candidates: Vec<String>,
}

/// Parsed `GET /api/traces` parameters.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    /// `limit`.
    pub limit: i64,
    /// `offset`.
    pub offset: i64,
    /// Decoded `cursor`: list strictly after this `(created_at, id)`.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    /// `trace_version`.
    pub trace_version: Option<String>,
    /// `created_after` (inclusive).
    pub created_after: Option<DateTime<Utc>>,
    /// `created_before` (exclusive).
    pub created_before: Option<DateTime<Utc>>,
    /// `meta.*` and `tag` filters.
    pub meta: Vec<MetaFilter>,
    /// `q`, as given, and its terms.
    pub q: Option<(String, Vec<QueryTerm>)>,
    /// `score.*` filters: (name, condition).
    pub scores: Vec<(String, ScoreCondition)>,
}

fn param_error(param: impl Into<Cow<'static, str>>, msg: impl Into<String>) -> ApiError {
    ApiError::InvalidParam {
        param: param.into(),
        msg: msg.into(),
        location: "query",
    }
}

/// Parses an integer parameter within bounds.
pub fn parse_int(
    param: &'static str,
    v: &str,
    min: i64,
    max: Option<i64>,
) -> Result<i64, ApiError> {
    let n: i64 = v.trim().parse().map_err(|_| {
        param_error(
            param,
            format!("Input should be a valid integer, unable to parse string as an integer ({param}={v:?})"),
        )
    })?;
    if n < min {
        return Err(param_error(
            param,
            format!("Input should be greater than or equal to {min} ({param}={n})"),
        ));
    }
    if let Some(max) = max {
        if n > max {
            return Err(param_error(
                param,
                format!("Input should be less than or equal to {max} ({param}={n})"),
            ));
        }
    }
    Ok(n)
}

/// 422 unless `t` is an instant PostgreSQL can compare with (checked before any query, so a
/// client's out-of-range value never reaches the database and is never mistaken for an outage).
fn representable(param: &'static str, t: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if t.timestamp_micros() < PG_MIN_MICROS {
        return Err(param_error(
            param,
            format!("Input should be on or after 4714-11-24T00:00:00Z BC, the earliest instant stored ({param}={})", t.to_rfc3339()),
        ));
    }
    Ok(t)
}

/// Parses an ISO-8601 instant: RFC 3339 with an offset, a UTC date-time without one, or a date.
/// Instants before PostgreSQL's earliest are refused with 422.
pub fn parse_instant(param: &'static str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return representable(param, t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f") {
        return representable(param, t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return representable(
            param,
            d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
        );
    }
    Err(param_error(
        param,
        format!(
            "Input should be an ISO-8601 datetime such as 2026-11-22T09:30:00Z ({param}={v:?})"
        ),
    ))
}

fn parse_score_condition(param: &str, v: &str) -> Result<ScoreCondition, ApiError> {
    let bad = || {
        param_error(
            param.to_owned(),
            format!("Input should be a number, <op>:<number> with op eq, ne, gt, gte, lt or lte, present, or missing ({param}={v:?})"),
        )
    };
    let number = |s: &str| -> Result<f64, ApiError> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(bad)
    };
    match v.trim() {
        "present" => return Ok(ScoreCondition::Present),
        "missing" => return Ok(ScoreCondition::Missing),
        _ => {}
    }
    let Some((op, n)) = v.split_once(':') else {
        return Ok(ScoreCondition::Compare("=", number(v)?));
    };
    let op = match op.trim() {
        "eq" => "=",
        "ne" => "<>",
        "gt" => ">",
        "gte" => ">=",
        "lt" => "<",
        "lte" => "<=",
        _ => return Err(bad()),
    };
    Ok(ScoreCondition::Compare(op, number(n)?))
}

impl ListQuery {
    /// Parses the raw query string with the seed's rules and messages.
    pub fn parse(raw: Option<&str>) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery {
            limit: DEFAULT_LIMIT,
            ..ListQuery::default()
        };
        let mut offset_given = false;
        let mut cursor: Option<String> = None;
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "limit" => q.limit = parse_int("limit", &v, 1, Some(MAX_LIMIT))?,
                "offset" => {
                    q.offset = parse_int("offset", &v, 0, None)?;
                    offset_given = q.offset > 0;
                }
                "cursor" if !v.trim().is_empty() => cursor = Some(v.into_owned()),
                "trace_version" if !v.is_empty() => {
                    if v.chars().count() > tunix_schemas::TRACE_VERSION_MAX_CHARS {
                        return Err(param_error(
                            "trace_version",
                            "String should have at most 64 characters",
                        ));
                    }
                    q.trace_version = Some(v.into_owned());
                }
                "created_after" if !v.is_empty() => {
                    q.created_after = Some(parse_instant("created_after", &v)?)
                }
                "created_before" if !v.is_empty() => {
                    q.created_before = Some(parse_instant("created_before", &v)?)
                }
                "q" if !v.trim().is_empty() => {
                    if v.chars().count() > Q_MAX_CHARS {
                        return Err(param_error(
                            "q",
                            format!("String should have at most {Q_MAX_CHARS} characters"),
                        ));
                    }
                    let terms = search::query_terms(&v).map_err(|e| param_error("q", e))?;
                    q.q = Some((v.into_owned(), terms));
                }
                "tag" => {
                    if v.is_empty() {
                        return Err(param_error(
                            "tag",
                            "String should have at least 1 character",
                        ));
                    }
                    q.meta.push(MetaFilter {
                        param: "tag".to_owned(),
                        candidates: facets::filter_facets(&["tags"], &v),
                        value: v.into_owned(),
                    });
                }
                key if key.starts_with("meta.") => {
                    let path = facets::parse_path(&key["meta.".len()..])
                        .map_err(|e| param_error(key.to_owned(), e))?;
                    q.meta.push(MetaFilter {
                        param: key.to_owned(),
                        candidates: facets::filter_facets(&path, &v),
                        value: v.into_owned(),
                    });
                }
                key if key.starts_with("score.") => {
                    let name = &key["score.".len()..];
                    score::check_name(name).map_err(|e| {
                        param_error(
                            key.to_owned(),
                            format!("the score name {name:?}: {}", e.errors()[0].msg),
                        )
                    })?;
                    q.scores
                        .push((name.to_owned(), parse_score_condition(key, &v)?));
                }
                _ => {} // unknown parameters are ignored, as FastAPI does
            }
        }
        if q.meta.len() + q.scores.len() > MAX_FILTERS {
            return Err(param_error(
                "meta",
                format!("at most {MAX_FILTERS} meta, tag and score filters per request"),
            ));
        }
        if let Some(c) = cursor {
            q.after = Some(decode_cursor(&c, &q.digest()).ok_or_else(|| {
                param_error(
                    "cursor",
                    "invalid cursor: pass back next_cursor from a previous page unchanged, with the same filters",
                )
            })?);
        }
        if q.after.is_some() && offset_given {
            return Err(param_error(
                "offset",
                "offset cannot be combined with cursor; use one paging mode",
            ));
        }
        Ok(q)
    }

    /// Whether any of the filters added by "Find and judge" is present.
    pub fn has_filters(&self) -> bool {
        self.trace_version.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || !self.meta.is_empty()
            || self.q.is_some()
            || !self.scores.is_empty()
    }

    /// A digest of the filters (not the paging), bound into cursors.
    pub fn digest(&self) -> String {
        let mut parts: Vec<String> = vec![
            format!("v={:?}", self.trace_version),
            format!("a={:?}", self.created_after.map(|t| t.timestamp_micros())),
            format!("b={:?}", self.created_before.map(|t| t.timestamp_micros())),
            format!("q={:?}", self.q.as_ref().map(|(q, _)| q)),
        ];
        let mut meta: Vec<String> = self
            .meta
            .iter()
            .map(|m| format!("m={:?}={:?}", m.param, m.value))
            .collect();
        let mut scores: Vec<String> = self
            .scores
            .iter()
            .map(|(n, c)| format!("s={n:?}={c:?}"))
            .collect();
        meta.sort();
        scores.sort();
        parts.extend(meta);
        parts.extend(scores);
        let hash = Sha256::digest(parts.join("\n").as_bytes());
        hash[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cursor for the page after `(created_at, id)` under these filters.
    pub fn cursor_after(&self, created_at: &DateTime<Utc>, id: &Uuid) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v2:{}:{id}:{}",
            created_at.timestamp_micros(),
            self.digest()
        ))
    }

    /// Whether a filter that an ordered index walk cannot serve is present: metadata, text or
    /// scores. Such pages run in two phases ([`ListQuery::boundary_sql`]).
    pub fn has_selective_filters(&self) -> bool {
        !self.meta.is_empty() || self.q.is_some() || !self.scores.is_empty()
    }

    /// ` AND ...` for the filters B-tree indexes serve in newest-first order (version, time), and
    /// the cursor.
    fn push_ordered_filters<'a>(&'a self, b: &mut QueryBuilder<'a, Postgres>) {
        self.push_time_filters(b, Indexable::Yes);
    }

    /// The version, time and cursor conditions; with [`Indexable::No`] each is written as a
    /// test on the row (`(...) IS TRUE` is no index condition), so that no plan combines their
    /// B-tree range (millions of rows at depth) into a bitmap with a selective index.
    fn push_time_filters<'a>(&'a self, b: &mut QueryBuilder<'a, Postgres>, how: Indexable) {
        let (open, close) = match how {
            Indexable::Yes => (" AND ", ""),
            Indexable::No => (" AND (", ") IS TRUE"),
        };
        if let Some(v) = &self.trace_version {
            // The column holds pg_text-encoded values (NUL escaped): encode to compare exactly.
            b.push(open)
                .push("l.trace_version = ")
                .push_bind(pg_text::encode(v).into_owned())
                .push(close);
        }
        if let Some(t) = &self.created_after {
            b.push(open)
                .push("l.created_at >= ")
                .push_bind(*t)
                .push(close);
        }
        if let Some(t) = &self.created_before {
            b.push(open)
                .push("l.created_at < ")
                .push_bind(*t)
                .push(close);
        }
        if let Some(key) = self.after {
            Self::push_key_bound(b, "<", key, how);
        }
    }

    /// ` AND ...` for metadata (GIN over facets) and text (GIN over terms).
    fn push_gin_filters<'a>(&'a self, b: &mut QueryBuilder<'a, Postgres>) {
        for m in &self.meta {
            b.push(" AND l.facets && ")
                .push_bind(m.candidates.clone())
                .push("::text[]");
        }
        if let Some((_, terms)) = &self.q {
            b.push(" AND l.search @@ ")
                .push_bind(search::tsquery_text(terms))
                .push("::tsquery");
        }
    }

    /// ` AND ...` for score conditions, each a scalar subquery on the scores table's key (at most
    /// one row per trace and name): evaluated per candidate row by an index probe, never turned
    /// into a join that reads every score of that name.
    fn push_score_filters<'a>(&'a self, b: &mut QueryBuilder<'a, Postgres>, skip: Option<usize>) {
        for (n, (name, cond)) in self.scores.iter().enumerate() {
            if skip == Some(n) {
                continue;
            }
            let name = pg_text::encode(name).into_owned();
            let (select, test) = match cond {
                ScoreCondition::Compare(..) => ("s.value", ""),
                ScoreCondition::Present => ("1", " IS NOT NULL"),
                ScoreCondition::Missing => ("1", " IS NULL"),
            };
            b.push(" AND (SELECT ")
                .push(select)
                .push(" FROM trace_scores s WHERE s.trace_id = l.id AND s.name = ")
                .push_bind(name)
                .push(")")
                .push(test);
            if let ScoreCondition::Compare(op, v) = cond {
                b.push(" ").push(*op).push(" ").push_bind(*v);
            }
        }
    }

    fn push_selective_filters<'a>(&'a self, b: &mut QueryBuilder<'a, Postgres>) {
        self.push_gin_filters(b);
        self.push_score_filters(b, None);
    }

    fn push_key_bound<'a>(
        b: &mut QueryBuilder<'a, Postgres>,
        op: &'static str,
        key: (DateTime<Utc>, Uuid),
        how: Indexable,
    ) {
        let (open, close) = match how {
            Indexable::Yes => (" AND ", ""),
            Indexable::No => (" AND (", ") IS TRUE"),
        };
        b.push(open)
            .push("(l.created_at, l.id) ")
            .push(op)
            .push(" (")
            .push_bind(key.0)
            .push(", ")
            .push_bind(key.1)
            .push(")")
            .push(close);
    }

    /// The page query in one statement: every filter, newest first, one row more than `limit`
    /// (to tell whether another page follows). Used for offset paging and when only version and
    /// time filters are given (their indexes serve the order directly).
    pub fn sql(&self) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new(
            "SELECT l.id, l.created_at, l.trace_version, l.step_count, l.prompt_preview, l.payload_bytes
             FROM trace_list l WHERE true",
        );
        self.push_ordered_filters(&mut b);
        self.push_selective_filters(&mut b);
        b.push(" ORDER BY l.created_at DESC, l.id DESC LIMIT ")
            .push_bind(self.limit + 1);
        if self.offset > 0 {
            b.push(" OFFSET ").push_bind(self.offset);
        }
        b
    }

    /// The next `limit` matching traces a bulk delete or retention sweep erases: filters only,
    /// newest first, skipping ids already recorded as deleted (the list view drops them only
    /// when the projector catches up), so a resumed operation continues where it stopped.
    pub fn erasure_page_sql(&self, limit: i64) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new("SELECT l.id FROM trace_list l WHERE true");
        self.push_ordered_filters(&mut b);
        self.push_selective_filters(&mut b);
        b.push(" AND NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = l.id)");
        b.push(" ORDER BY l.created_at DESC, l.id DESC LIMIT ")
            .push_bind(limit);
        b
    }

    /// How many traces [`ListQuery::erasure_page_sql`] would erase in all.
    pub fn erasure_count_sql(&self) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new("SELECT count(*) FROM trace_list l WHERE true");
        self.push_ordered_filters(&mut b);
        self.push_selective_filters(&mut b);
        b.push(" AND NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = l.id)");
        b
    }

    /// Every matching trace id (filters only; paging parameters are ignored), in a dataset
    /// selection's order: newest first, or with `random_seed` by `md5("<seed>:<id>")`; at most
    /// `limit`. One statement over the indexes; run without the read limit.
    pub fn members_sql(
        &self,
        random_seed: Option<i64>,
        limit: Option<i64>,
    ) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new("SELECT l.id FROM trace_list l WHERE true");
        self.push_ordered_filters(&mut b);
        self.push_selective_filters(&mut b);
        match random_seed {
            Some(seed) => {
                b.push(" ORDER BY md5(")
                    .push_bind(format!("{seed}:"))
                    .push(" || l.id::text), l.id");
            }
            None => {
                b.push(" ORDER BY l.created_at DESC, l.id DESC");
            }
        }
        if let Some(n) = limit {
            b.push(" LIMIT ").push_bind(n);
        }
        b
    }

    /// Phase 0 of a selective page: the key of the `window`-th row (newest first) that the
    /// ordered filters and the cursor admit, read from the B-tree alone; `None` when fewer rows
    /// remain (the window then holds them all).
    ///
    /// Why phases: the fastest plan for "the newest N rows matching a filter" depends on how
    /// many rows match, which PostgreSQL can only guess (a prefix query's estimate is floored;
    /// facet statistics are sampled). Walking the time index is right when matches are dense and
    /// ruinous when they are rare; collecting the matches first is the reverse. So a page first
    /// walks a bounded window of the newest rows ([`ListQuery::window_sql`]); only if that window
    /// holds too few matches, the filter is known to be sparse (fewer than `limit` in `window`
    /// rows) and the rest is read matches-first ([`ListQuery::sparse_sql`]). Either way the work
    /// is bounded by the window plus the matches of one filter's index, never by the table.
    pub fn boundary_sql(&self, window: i64) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new("SELECT l.created_at, l.id FROM trace_list l WHERE true");
        self.push_ordered_filters(&mut b);
        b.push(" ORDER BY l.created_at DESC, l.id DESC OFFSET ")
            .push_bind(window - 1)
            .push(" LIMIT 1");
        b
    }

    /// Phase 1: the page within the window: at most `window` rows, newest first, walked in time
    /// order (the inner `LIMIT` makes that the only plan), then filtered.
    pub fn window_sql(&self, window: i64) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new(
            "SELECT l.id, l.created_at, l.trace_version, l.step_count, l.prompt_preview, l.payload_bytes
             FROM (SELECT * FROM trace_list l WHERE true",
        );
        self.push_ordered_filters(&mut b);
        b.push(" ORDER BY l.created_at DESC, l.id DESC LIMIT ")
            .push_bind(window)
            .push(") l WHERE true");
        self.push_selective_filters(&mut b);
        b.push(" ORDER BY l.created_at DESC, l.id DESC LIMIT ")
            .push_bind(self.limit + 1);
        b
    }

    /// Phase 2: up to `take` matching rows older than `boundary`, read matches first. The
    /// candidates come from the GIN indexes (metadata facets, text terms; the planner picks one
    /// or intersects several) or, with neither, from the first score condition's `(name,
    /// value)` index. They are materialized with the list columns, so no plan can walk the
    /// whole time index instead and none joins back; the time, version and cursor conditions
    /// and the score conditions are checked on each candidate (written so no index serves
    /// them: at depth the time range holds millions of rows, and a bitmap of it costs more
    /// than the candidates), then the candidates are sorted. A page whose filters are all
    /// `score.*=missing` has no index to start from (absence cannot be indexed) and walks on
    /// from the boundary in time order.
    ///
    /// Run with sequential scans, hash and merge joins disabled (see `read::page`): the window
    /// proved the filter sparse, which the planner's estimates need not know.
    pub fn sparse_sql(
        &self,
        boundary: (DateTime<Utc>, Uuid),
        take: i64,
    ) -> QueryBuilder<'_, Postgres> {
        const COLUMNS: &str =
            "l.id, l.created_at, l.trace_version, l.step_count, l.prompt_preview, l.payload_bytes";
        let score_driver = self
            .scores
            .iter()
            .position(|(_, c)| !matches!(c, ScoreCondition::Missing));
        let mut b = QueryBuilder::new("");
        let by_gin = !self.meta.is_empty() || self.q.is_some();
        if !by_gin && score_driver.is_none() {
            b.push("SELECT ")
                .push(COLUMNS)
                .push(" FROM trace_list l WHERE true");
            self.push_ordered_filters(&mut b);
            Self::push_key_bound(&mut b, "<", boundary, Indexable::Yes);
            self.push_score_filters(&mut b, None);
            b.push(" ORDER BY l.created_at DESC, l.id DESC LIMIT ")
                .push_bind(take);
            return b;
        }
        b.push("WITH c AS MATERIALIZED (SELECT ").push(COLUMNS);
        let skip = if by_gin {
            b.push(" FROM trace_list l WHERE true");
            self.push_gin_filters(&mut b);
            None
        } else {
            let n = score_driver.expect("a score driver when there is no GIN filter");
            let (name, cond) = &self.scores[n];
            b.push(" FROM trace_scores s JOIN trace_list l ON l.id = s.trace_id WHERE s.name = ")
                .push_bind(pg_text::encode(name).into_owned());
            if let ScoreCondition::Compare(op, v) = cond {
                b.push(" AND s.value ").push(*op).push(" ").push_bind(*v);
            }
            Some(n)
        };
        self.push_time_filters(&mut b, Indexable::No);
        Self::push_key_bound(&mut b, "<", boundary, Indexable::No);
        self.push_score_filters(&mut b, skip);
        b.push(") SELECT * FROM c ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(take);
        b
    }
}

/// Whether a condition is written so that an index can serve it.
#[derive(Clone, Copy)]
enum Indexable {
    Yes,
    No,
}

/// Decodes a cursor: `v2` cursors must carry `digest` (the same filters); `v1` cursors, issued
/// before filters were bound, are accepted with any filters.
fn decode_cursor(v: &str, digest: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let raw = URL_SAFE_NO_PAD.decode(v.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(4, ':');
    let version = parts.next()?;
    let micros: i64 = parts.next()?.parse().ok()?;
    let id = Uuid::parse_str(parts.next()?).ok()?;
    match (version, parts.next()) {
        ("v1", None) => {}
        ("v2", Some(d)) if d == digest => {}
        _ => return None,
    }
    // Our cursors hold stored instants; one outside PostgreSQL's range was forged.
    if micros < PG_MIN_MICROS {
        return None;
    }
    Some((DateTime::<Utc>::from_timestamp_micros(micros)?, id))
}

/// The list parameters are documented from the same type that parses them, with the same limits.
impl utoipa::IntoParams for ListQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Type};
        let param = |name: &str, description: &str, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        let int = |min: i64, max: Option<i64>, default: i64| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min as f64))
                .maximum(max.map(|m| m as f64))
                .default(Some(default.into()))
        };
        let text = || ObjectBuilder::new().schema_type(Type::String);
        vec![
            param("limit", "Page size.", int(1, Some(MAX_LIMIT), DEFAULT_LIMIT)),
            param(
                "offset",
                "Rows to skip (offset paging); not with cursor.",
                int(0, None, 0),
            ),
            param(
                "cursor",
                "next_cursor of the previous page (keyset paging: page N costs the same as page 1); valid only with the same filters.",
                text(),
            ),
            param(
                "trace_version",
                "Only this trace_version (exact match, at most 64 characters).",
                text().max_length(Some(tunix_schemas::TRACE_VERSION_MAX_CHARS)),
            ),
            param(
                "created_after",
                "Only traces created at or after this ISO-8601 instant.",
                text(),
            ),
            param(
                "created_before",
                "Only traces created before this ISO-8601 instant.",
                text(),
            ),
            param(
                "meta.<key>",
                "meta.<key>[.<key>...]=<value>, repeatable (ANDed): meta holds that path with the string value, or the number or boolean it spells.",
                text(),
            ),
            param("tag", "tag=<t>, repeatable (ANDed): meta.tags contains t.", text()),
            param(
                "q",
                "Text search: every word (as a prefix, case and accents ignored) or CJK character pair occurs in the prompt, the answer or a step.",
                text().max_length(Some(Q_MAX_CHARS)),
            ),
            param(
                "score.<name>",
                "score.<name>=<n> | eq:<n> | ne:<n> | gt:<n> | gte:<n> | lt:<n> | lte:<n> | present | missing, repeatable (ANDed).",
                text(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(raw: &str) -> String {
        match ListQuery::parse(Some(raw)) {
            Err(ApiError::InvalidParam { param, .. }) => param.into_owned(),
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn parameters_follow_the_seed_rules() {
        let q = ListQuery::parse(None).unwrap();
        assert_eq!((q.limit, q.offset), (20, 0));
        let q = ListQuery::parse(Some(
            "limit=100&offset=5&trace_version=1.0&created_after=2026-01-01",
        ))
        .unwrap();
        assert_eq!(
            (q.limit, q.offset, q.trace_version.as_deref()),
            (100, 5, Some("1.0"))
        );
        assert_eq!(
            q.created_after.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        for (raw, param) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=abc", "limit"),
            ("offset=-1", "offset"),
            ("created_before=yesterday", "created_before"),
            ("cursor=garbage", "cursor"),
        ] {
            assert_eq!(param_of(raw), param, "{raw}");
        }
    }

    #[test]
    fn filters_parse_and_bad_syntax_names_the_parameter() {
        let q = ListQuery::parse(Some(
            "meta.run=17&meta.model.name=gpt&tag=math&q=Paris%20推理&score.correct=1&score.quality=gte:0.8&score.judge=missing",
        ))
        .unwrap();
        assert_eq!(q.meta.len(), 3);
        assert_eq!(q.meta[2].param, "tag");
        assert_eq!(q.q.as_ref().unwrap().1.len(), 2);
        assert_eq!(
            q.scores,
            vec![
                ("correct".into(), ScoreCondition::Compare("=", 1.0)),
                ("quality".into(), ScoreCondition::Compare(">=", 0.8)),
                ("judge".into(), ScoreCondition::Missing),
            ]
        );
        for (raw, param) in [
            ("meta.=x", "meta."),
            ("meta.a..b=x", "meta.a..b"),
            ("tag=", "tag"),
            ("q=%20%2C%2C", "q"),
            ("score.correct=maybe", "score.correct"),
            ("score.correct=gte:x", "score.correct"),
            ("score.correct=between:1", "score.correct"),
            ("score.=1", "score."),
            ("score.q=inf", "score.q"),
        ] {
            assert_eq!(param_of(raw), param, "{raw}");
        }
    }

    #[test]
    fn a_cursor_is_bound_to_its_filters() {
        let t = DateTime::<Utc>::from_timestamp_micros(1_763_786_096_123_456).unwrap();
        let id = Uuid::now_v7();
        let filtered = ListQuery::parse(Some("meta.run=17&q=paris")).unwrap();
        let c = filtered.cursor_after(&t, &id);
        // The same filters, in another order: accepted.
        let again = ListQuery::parse(Some(&format!("q=paris&meta.run=17&cursor={c}"))).unwrap();
        assert_eq!(again.after, Some((t, id)));
        // Other filters, or none: refused.
        for other in [
            "meta.run=18&q=paris",
            "q=paris",
            "meta.run=17&q=paris&tag=x",
            "",
        ] {
            assert_eq!(
                param_of(&format!("{other}&cursor={c}")),
                "cursor",
                "{other}"
            );
        }
        // Cursors from before filters were bound still work.
        let v1 = URL_SAFE_NO_PAD.encode(format!("v1:{}:{id}", t.timestamp_micros()));
        assert!(ListQuery::parse(Some(&format!("cursor={v1}&meta.run=1"))).is_ok());
        assert!(
            ListQuery::parse(Some(&format!("cursor={c}&offset=10&meta.run=17&q=paris"))).is_err()
        );
    }

    #[test]
    fn instants_are_refused_below_what_postgres_stores() {
        let min = DateTime::<Utc>::from_timestamp_micros(PG_MIN_MICROS).unwrap();
        assert_eq!(
            min.to_rfc3339(),
            "-4713-11-24T00:00:00+00:00",
            "Julian day 0"
        );
        let q = ListQuery::parse(Some("created_after=-4713-11-24")).unwrap();
        assert_eq!(q.created_after, Some(min));
        for raw in [
            "created_after=-4713-11-23",
            "created_before=-4713-11-23T23:59:59.999999",
            "created_before=-9999-01-01",
        ] {
            assert_eq!(param_of(raw), raw.split('=').next().unwrap(), "{raw}");
        }
        let forged = |micros: i64| URL_SAFE_NO_PAD.encode(format!("v1:{micros}:{}", Uuid::nil()));
        assert!(ListQuery::parse(Some(&format!("cursor={}", forged(PG_MIN_MICROS)))).is_ok());
        for micros in [PG_MIN_MICROS - 1, i64::MIN, i64::MAX] {
            assert_eq!(param_of(&format!("cursor={}", forged(micros))), "cursor");
        }
    }
}
