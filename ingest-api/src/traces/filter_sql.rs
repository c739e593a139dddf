//! The SQL the list filter selects with: the list page (one statement, or for selective filters a
//! bounded window first and, only when it is sparse, the rest), a dataset's members, the pages of
//! a bulk delete, and (through [`ListQuery::push_matches`]) the statistics. One builder, so the
//! list, datasets, governance and the charts select exactly the same traces for the same filter. This is
//! SQL built at run time on purpose: the filters vary per request, and the list tables are
//! versioned (`trace_list_vN`).
//!
//! **Plans.** The best plan for a filtered page depends on the values (how rare a facet is,
//! how deep an offset), which a cached generic plan cannot know; so every statement built here
//! runs unnamed (`persistent(false)`), and PostgreSQL plans it for its values each time. The one
//! exception is the unfiltered page ([`ListQuery::reuses_plan`]), the hottest list request: it
//! runs as a prepared statement whose generic plan is as good as any (its `LIMIT` is written as
//! a literal so the plan knows the row count), which saves the planning on every request.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use tunix_schemas::{pg_text, search};
use uuid::Uuid;

use super::filter::{ListQuery, ScoreCondition};

impl ListQuery {
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

    /// `SELECT <columns> FROM ... WHERE ...`: every trace the filters match (no order, no
    /// cursor), as list rows named `l`, read from the index that narrows them most: the GIN
    /// indexes for metadata and text (the planner picks or intersects), else the first score
    /// condition's `(name, value)` index, else the list itself (time and version conditions use
    /// their B-tree). What the statistics (`traces::stats`) aggregate over. `from` is the list
    /// view (`trace_list l`) or, to sample it, a version's table with its `TABLESAMPLE` clause
    /// (`trace_list_v1 l TABLESAMPLE ...`); a sample is always read from the list side.
    pub(super) fn push_matches<'a>(
        &'a self,
        b: &mut QueryBuilder<'a, Postgres>,
        columns: &str,
        from: &str,
        sampled: bool,
    ) {
        b.push("SELECT ").push(columns);
        let skip = match self.score_driver() {
            Some(n) if !self.has_gin_filters() && !sampled => {
                // The score's rows first (`OFFSET 0` keeps the planner from reordering the
                // join), then each one's list row by its key.
                b.push(" FROM (SELECT s.trace_id FROM trace_scores s WHERE ");
                self.push_score_driver(b, n);
                b.push(" OFFSET 0) s JOIN ")
                    .push(from)
                    .push(" ON l.id = s.trace_id WHERE true");
                Some(n)
            }
            _ => {
                b.push(" FROM ").push(from).push(" WHERE true");
                None
            }
        };
        // Driven by a score's index, the version and time conditions are checked per candidate
        // (see `sparse_sql`): their B-tree range can hold far more rows than the score's.
        let how = if skip.is_some() {
            Indexable::No
        } else {
            Indexable::Yes
        };
        self.push_time_filters(b, how);
        self.push_gin_filters(b);
        self.push_score_filters(b, skip);
    }

    /// Whether a metadata or text filter is given (their GIN indexes can start a read).
    fn has_gin_filters(&self) -> bool {
        !self.meta.is_empty() || self.q.is_some()
    }

    /// The score condition a read can start from, on the scores table's `(name, value)` index:
    /// the first that is not `missing` (absence cannot be indexed).
    fn score_driver(&self) -> Option<usize> {
        self.scores
            .iter()
            .position(|(_, c)| !matches!(c, ScoreCondition::Missing))
    }

    /// `s.name = $n [AND s.value <op> $v]`: score condition `n` on the scores table `s`.
    fn push_score_driver<'a>(&'a self, b: &mut QueryBuilder<'a, Postgres>, n: usize) {
        let (name, cond) = &self.scores[n];
        b.push("s.name = ")
            .push_bind(pg_text::encode(name).into_owned());
        if let ScoreCondition::Compare(op, v) = cond {
            b.push(" AND s.value ").push(*op).push(" ").push_bind(*v);
        }
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

    /// Whether the page runs as a prepared statement with a cached plan: no filters and no
    /// offset (the newest page, or a cursor page), whose plan does not depend on the values.
    pub fn reuses_plan(&self) -> bool {
        !self.has_filters() && self.offset == 0
    }

    /// The page query in one statement: every filter, newest first, one row more than `limit`
    /// (to tell whether another page follows), with the rows' scores. Used for offset paging and
    /// when only version and time filters are given (their indexes serve the order directly).
    pub fn sql(&self) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new(WITH_SCORES_PREFIX);
        b.push(
            "SELECT l.id, l.created_at, l.trace_version, l.step_count, l.prompt_preview, l.payload_bytes
             FROM trace_list l WHERE true",
        );
        self.push_ordered_filters(&mut b);
        self.push_selective_filters(&mut b);
        // A literal (1..=MAX_LIMIT + 1, validated): a generic plan then knows the row count.
        b.push(format_args!(
            " ORDER BY l.created_at DESC, l.id DESC LIMIT {}",
            self.limit + 1
        ));
        if self.offset > 0 {
            b.push(" OFFSET ").push_bind(self.offset);
        }
        b.push(WITH_SCORES_SUFFIX);
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

    /// The boundary of a sparse page: the key of the `window`-th row (newest first) that the
    /// ordered filters and the cursor admit, read from the B-tree alone; `None` when fewer rows
    /// remain (the window then holds them all). Read only when the window
    /// ([`ListQuery::window_sql`], run first) held less than a page: a dense filter's page costs
    /// the window statement alone, which stops as soon as it has the page.
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

    /// The page within the window (run first): at most `window` rows, newest first, walked in time
    /// order (the inner `LIMIT` makes that the only plan), then filtered.
    pub fn window_sql(&self, window: i64) -> QueryBuilder<'_, Postgres> {
        let mut b = QueryBuilder::new(WITH_SCORES_PREFIX);
        b.push(
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
        b.push(WITH_SCORES_SUFFIX);
        b
    }

    /// The rest of a sparse page: up to `take` matching rows older than `boundary`, read matches first. The
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
    /// Run with sequential scans, hash and merge joins disabled (see `traces::read::page_on`): the window
    /// proved the filter sparse, which the planner's estimates need not know.
    pub fn sparse_sql(
        &self,
        boundary: (DateTime<Utc>, Uuid),
        take: i64,
    ) -> QueryBuilder<'_, Postgres> {
        const COLUMNS: &str =
            "l.id, l.created_at, l.trace_version, l.step_count, l.prompt_preview, l.payload_bytes";
        let score_driver = self.score_driver();
        let mut b = QueryBuilder::new(WITH_SCORES_PREFIX);
        let by_gin = self.has_gin_filters();
        if !by_gin && score_driver.is_none() {
            b.push("SELECT ")
                .push(COLUMNS)
                .push(" FROM trace_list l WHERE true");
            self.push_ordered_filters(&mut b);
            Self::push_key_bound(&mut b, "<", boundary, Indexable::Yes);
            self.push_score_filters(&mut b, None);
            b.push(" ORDER BY l.created_at DESC, l.id DESC LIMIT ")
                .push_bind(take);
            b.push(WITH_SCORES_SUFFIX);
            return b;
        }
        b.push("WITH c AS MATERIALIZED (SELECT ").push(COLUMNS);
        let skip = if by_gin {
            b.push(" FROM trace_list l WHERE true");
            self.push_gin_filters(&mut b);
            None
        } else {
            let n = score_driver.expect("a score driver when there is no GIN filter");
            b.push(" FROM trace_scores s JOIN trace_list l ON l.id = s.trace_id WHERE ");
            self.push_score_driver(&mut b, n);
            Some(n)
        };
        self.push_time_filters(&mut b, Indexable::No);
        Self::push_key_bound(&mut b, "<", boundary, Indexable::No);
        self.push_score_filters(&mut b, skip);
        b.push(") SELECT * FROM c ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(take);
        b.push(WITH_SCORES_SUFFIX);
        b
    }
}

/// A page query, wrapped between [`WITH_SCORES_PREFIX`] and [`WITH_SCORES_SUFFIX`], answers
/// with its rows' scores too (one statement per page; the scores of the page's rows only, read
/// by the scores table's key): the list columns, then one array per score column, the same
/// length and order (NULL when the trace has no scores), then the row's tags and model, read
/// from its metadata facets (`tags`; the first of `gen_ai.request.model`,
/// `gen_ai.response.model`, `model`: string leaves of at most 256 characters, see
/// `tunix_schemas::facets`). `traces::read::ListRow` reads them.
const WITH_SCORES_PREFIX: &str = "SELECT p.id, p.created_at, p.trace_version, p.step_count, \
     p.prompt_preview, p.payload_bytes, sc.names, sc.vals, sc.sources, sc.comments, sc.recorded, \
     fx.tags, fx.model FROM (";

/// See [`WITH_SCORES_PREFIX`].
const WITH_SCORES_SUFFIX: &str = ") p LEFT JOIN LATERAL (\
     SELECT array_agg(s.name) AS names, array_agg(s.value) AS vals, array_agg(s.source) AS sources, \
     array_agg(s.comment) AS comments, array_agg(s.recorded_at) AS recorded \
     FROM trace_scores s WHERE s.trace_id = p.id) sc ON true \
     LEFT JOIN LATERAL (SELECT \
     ARRAY(SELECT substr(f, 8) FROM unnest(t.facets) WITH ORDINALITY AS u(f, n) \
           WHERE starts_with(f, 'tags\u{241F}s:') ORDER BY n) AS tags, \
     (SELECT substr(f, strpos(f, '\u{241F}s:') + 3) FROM unnest(t.facets) AS f \
      WHERE starts_with(f, 'gen_ai.request.model\u{241F}s:') \
         OR starts_with(f, 'gen_ai.response.model\u{241F}s:') OR starts_with(f, 'model\u{241F}s:') \
      ORDER BY starts_with(f, 'model\u{241F}') , starts_with(f, 'gen_ai.response.') LIMIT 1) AS model \
     FROM trace_list t WHERE t.id = p.id) fx ON true \
     ORDER BY p.created_at DESC, p.id DESC";

/// Whether a condition is written so that an index can serve it.
#[derive(Clone, Copy)]
enum Indexable {
    Yes,
    No,
}
