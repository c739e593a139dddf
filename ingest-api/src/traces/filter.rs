//! The parameters of `GET /api/traces`: parsing (with the original service's messages), the opaque cursor, and
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
use tunix_schemas::search::{self, QueryTerm};
use tunix_schemas::{facets, score};
use uuid::Uuid;

use crate::http::error::ApiError;

/// Default page size (the original service's).
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
    /// Parses the raw query string with the original service's rules and messages.
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
    /// scores. Such pages start with a bounded window ([`ListQuery::boundary_sql`]).
    pub fn has_selective_filters(&self) -> bool {
        !self.meta.is_empty() || self.q.is_some() || !self.scores.is_empty()
    }
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
mod tests;
