//! The list view: its shape, the summary it keeps per trace, and the sink that maintains it.
//!
//! Each shape version lives in its own tables, `trace_list_v{N}` (one row per trace: the summary,
//! its metadata facets and search terms) and `trace_scores_v{N}` (see [`crate::scores`]). Readers
//! only ever query the views `trace_list` and `trace_scores`, which point at the active version
//! (`projection_state.active_version`). A new shape ships by changing [`create_tables`] and
//! [`Summary`], then running a rebuild.

use std::io::Write;

use std::collections::HashSet;

use sqlx::PgConnection;
use tunix_pipeline::consumer::{fold, Applied, Record, Sink};
use tunix_pipeline::erasure;
use tunix_schemas::{facets, pg_text, search, Tombstone, Trace};
use uuid::Uuid;

use crate::scores;

/// `projection_state.name` of the list view.
pub const VIEW_NAME: &str = "trace_list";
/// The view over the active scores table.
pub const SCORES_VIEW: &str = "trace_scores";

/// Characters of the prompt kept for the list.
pub const PROMPT_PREVIEW_CHARS: usize = 120;

/// The list table of version `version`.
pub fn table_name(version: i32) -> String {
    format!("trace_list_v{version}")
}

/// The scores table of version `version`.
pub fn scores_table_name(version: i32) -> String {
    format!("trace_scores_v{version}")
}

/// The scores table that belongs with the list table `list` (`trace_list_vN`).
pub fn scores_table_of(list: &str) -> String {
    let version = list.strip_prefix("trace_list_v").unwrap_or_default();
    format!("trace_scores_v{version}")
}

/// DDL for version `version`: the same shape the migrations give `trace_list_v1` (a test compares
/// them). Secondary indexes come separately ([`create_indexes`]) so a rebuild can add them after
/// its bulk load.
pub fn create_tables(version: i32) -> Vec<String> {
    let t = table_name(version);
    let s = scores_table_name(version);
    vec![
        format!(
            "CREATE TABLE {t} (
                id             uuid        PRIMARY KEY,
                created_at     timestamptz NOT NULL,
                trace_version  text        NOT NULL,
                step_count     integer     NOT NULL,
                prompt_preview text        NOT NULL,
                payload_bytes  integer     NOT NULL,
                facets         text[]      NOT NULL DEFAULT '{{}}',
                search         tsvector    NOT NULL DEFAULT ''
            )"
        ),
        format!(
            "CREATE TABLE {s} (
                trace_id    uuid             NOT NULL,
                name        text             NOT NULL,
                value       double precision NOT NULL,
                source      text,
                comment     text,
                recorded_at timestamptz      NOT NULL,
                PRIMARY KEY (trace_id, name)
            )"
        ),
    ]
}

/// The secondary indexes of version `version`: newest-first paging, the version filter, the
/// metadata facets, text search, and score values.
pub fn create_indexes(version: i32) -> Vec<String> {
    let t = table_name(version);
    let s = scores_table_name(version);
    vec![
        format!("CREATE INDEX {t}_created_idx ON {t} (created_at DESC, id DESC)"),
        format!("CREATE INDEX {t}_version_idx ON {t} (trace_version, created_at DESC, id DESC)"),
        format!("CREATE INDEX {t}_facets_idx ON {t} USING gin (facets)"),
        format!("CREATE INDEX {t}_search_idx ON {t} USING gin (search)"),
        format!("CREATE INDEX {s}_value_idx ON {s} (name, value)"),
    ]
}

/// `CREATE VIEW` statements pointing readers at version `version`.
pub fn create_views(version: i32) -> Vec<String> {
    vec![
        format!(
            "CREATE VIEW {VIEW_NAME} AS
                SELECT id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search
                FROM {}",
            table_name(version)
        ),
        format!(
            "CREATE VIEW {SCORES_VIEW} AS
                SELECT trace_id, name, value, source, comment, recorded_at FROM {}",
            scores_table_name(version)
        ),
    ]
}

/// What the list keeps for one trace: the summary it shows, and what filters look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Number of steps.
    pub step_count: i32,
    /// The first [`PROMPT_PREVIEW_CHARS`] characters of the prompt, whitespace collapsed.
    pub prompt_preview: String,
    /// Size of the trace's JSON payload (as `GET /api/traces/{id}` returns it) in bytes.
    pub payload_bytes: i32,
    /// The metadata facets (`schemas::facets`).
    pub facets: Vec<String>,
    /// The search terms as `tsvector` input (`schemas::search`).
    pub search: String,
}

struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Summary {
    /// Summarizes a trace.
    pub fn of(trace: &Trace) -> Summary {
        let mut preview = String::with_capacity(PROMPT_PREVIEW_CHARS + 4);
        let mut kept = 0;
        let mut last_space = true; // drops leading whitespace
        for c in trace.prompt().chars() {
            let space = c.is_whitespace();
            if space && last_space {
                continue;
            }
            if kept == PROMPT_PREVIEW_CHARS {
                preview.push('…');
                break;
            }
            preview.push(if space { ' ' } else { c });
            kept += 1;
            last_space = space;
        }
        let mut size = Counter(0);
        serde_json::to_writer(&mut size, trace).expect("counting never fails");
        let texts = [trace.prompt(), trace.final_answer()]
            .into_iter()
            .chain(trace.steps().iter().map(|s| s.content.as_str()));
        Summary {
            step_count: trace.steps().len() as i32,
            prompt_preview: preview.trim().to_owned(),
            payload_bytes: size.0.min(i32::MAX as usize) as i32,
            facets: trace
                .meta()
                .map(|m| facets::facets(m.as_str()))
                .unwrap_or_default(),
            search: search::tsvector_text(&search::index_terms(texts)),
        }
    }
}

/// The list view as a consumer sink. Its target is whatever version is active, read inside each
/// batch's transaction with a share lock, so a rebuild's switch never splits a batch.
pub struct ViewSink {
    scores: metrics::Counter,
    ignored: metrics::Counter,
}

impl Default for ViewSink {
    fn default() -> Self {
        ViewSink {
            scores: metrics::counter!(crate::metric_names::SCORES_APPLIED),
            ignored: metrics::counter!(crate::metric_names::SCORES_IGNORED),
        }
    }
}

/// The active version, read with `FOR SHARE` (held until the caller's transaction ends).
pub async fn active_version(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT active_version FROM projection_state WHERE name = $1 FOR SHARE",
        VIEW_NAME
    )
    .fetch_one(conn)
    .await
}

/// Applies records to the view table `table` (a `trace_list_v{N}` name) and its scores table.
///
/// With `erase` (the live sink, not a rebuild), queues the tombstones that make a deleted
/// trace's records collectable under compaction (see `tunix_pipeline::erasure`): every score key
/// of a trace deleted in this batch, and the key of any record of an already deleted trace (a
/// submission or score that raced the deletion).
pub async fn apply_to(
    conn: &mut PgConnection,
    table: &str,
    records: &[Record],
    erase: bool,
) -> Result<Applied, sqlx::Error> {
    debug_assert!(
        table.starts_with("trace_list_v") && table[12..].bytes().all(|b| b.is_ascii_digit())
    );
    let scores_table = scores_table_of(table);
    let plan = fold(records);
    let mut applied = Applied::default();
    let mut tombstones: Vec<Tombstone> = Vec::new();
    if !plan.delete.is_empty() {
        erasure::record_deletions(conn, &plan.delete).await?;
        crate::datasets::forget_scores_of(conn, &plan.delete).await?;
        if erase {
            let names: Vec<(Uuid, String)> = sqlx::query_as(&format!(
                "SELECT trace_id, name FROM {scores_table} WHERE trace_id = ANY($1)"
            ))
            .bind(&plan.delete)
            .fetch_all(&mut *conn)
            .await?;
            tombstones.extend(
                names
                    .iter()
                    .map(|(id, name)| Tombstone::score(*id, &pg_text::decode(name))),
            );
        }
        let result = sqlx::query(&format!("DELETE FROM {table} WHERE id = ANY($1)"))
            .bind(&plan.delete)
            .execute(&mut *conn)
            .await?;
        applied.deleted = result.rows_affected();
        scores::delete_for(conn, &scores_table, &plan.delete).await?;
    }
    if !plan.insert.is_empty() {
        let n = plan.insert.len();
        let (mut ids, mut created, mut versions) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut steps, mut previews, mut sizes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut facet_lists, mut searches) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for s in &plan.insert {
            let summary = Summary::of(&s.trace);
            ids.push(s.id);
            created.push(s.created_at);
            // Text columns cannot hold NUL: both go through the injective `pg_text` escape, and
            // the read API decodes them (a trace_version filter encodes its value the same way).
            versions.push(pg_text::encode(s.trace.trace_version()));
            steps.push(summary.step_count);
            previews.push(pg_text::encode(&summary.prompt_preview).into_owned());
            sizes.push(summary.payload_bytes);
            // A text[][] cannot be ragged, so each trace's facets travel as one JSON array.
            facet_lists.push(serde_json::to_string(&summary.facets).expect("strings serialize"));
            searches.push(summary.search);
        }
        let result: Vec<(Uuid, bool)> = sqlx::query_as(&format!(
            "INSERT INTO {table} (id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
             SELECT u.id, u.created_at, u.trace_version, u.step_count, u.prompt_preview, u.payload_bytes,
                    ARRAY(SELECT jsonb_array_elements_text(u.facets::jsonb)), u.search::tsvector
             FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int[], $5::text[], $6::int[], $7::text[], $8::text[])
                  AS u(id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search)
             WHERE NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = u.id)
             ON CONFLICT (id) DO UPDATE
             SET created_at = excluded.created_at, trace_version = excluded.trace_version,
                 step_count = excluded.step_count, prompt_preview = excluded.prompt_preview,
                 payload_bytes = excluded.payload_bytes, facets = excluded.facets,
                 search = excluded.search
             RETURNING id, (xmax = 0) AS inserted"
        ))
        .bind(&ids)
        .bind(&created)
        .bind(&versions)
        .bind(&steps)
        .bind(&previews)
        .bind(&sizes)
        .bind(&facet_lists)
        .bind(&searches)
        .fetch_all(&mut *conn)
        .await?;
        let written: HashSet<Uuid> = result.iter().map(|(id, _)| *id).collect();
        applied.inserted = result.iter().filter(|(_, inserted)| *inserted).count() as u64;
        applied.duplicates = n as u64 - applied.inserted;
        if erase {
            // Not written: the id is deleted, and this submission raced its deletion.
            tombstones.extend(
                ids.iter()
                    .filter(|id| !written.contains(id))
                    .map(|id| Tombstone::trace(*id)),
            );
        }
    }
    applied.duplicates += plan.in_batch_duplicates;
    crate::datasets::apply(conn, records).await?;
    crate::audit::apply(conn, records).await?;
    let score_plan = scores::fold_scores(records);
    if !score_plan.upsert.is_empty() || !score_plan.retract.is_empty() {
        let (scored, ignored) = scores::apply(conn, &scores_table, &score_plan).await?;
        applied.scores = scored;
        applied.orphan_scores = ignored;
    }
    if erase {
        tombstones.extend(scores::tombstones_for_deleted(conn, records).await?);
        erasure::queue_tombstones(conn, &tombstones).await?;
    }
    Ok(applied)
}

impl Sink for ViewSink {
    async fn target(&self, conn: &mut PgConnection) -> Result<String, sqlx::Error> {
        Ok(table_name(active_version(conn).await?))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        target: &str,
        records: &[Record],
    ) -> Result<Applied, sqlx::Error> {
        let applied = apply_to(conn, target, records, true).await?;
        // Counted before commit, like the writer's row counters: a retried batch counts again.
        self.scores.increment(applied.scores);
        self.ignored.increment(applied.orphan_scores);
        Ok(applied)
    }
}

/// A sink bound to one version of the view, for rebuilds.
pub struct VersionSink {
    /// The table being filled.
    pub table: String,
}

impl Sink for VersionSink {
    async fn target(&self, _conn: &mut PgConnection) -> Result<String, sqlx::Error> {
        Ok(self.table.clone())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        target: &str,
        records: &[Record],
    ) -> Result<Applied, sqlx::Error> {
        apply_to(conn, target, records, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_characters_and_bytes() {
        let long = "é ".repeat(200);
        let body = format!(
            r#"{{"trace_version":"1","prompt":"  {long}","final_answer":"a","steps":[{{"i":0,"type":"t","content":"c"}},{{"i":1,"type":"t","content":"d"}}]}}"#
        );
        let trace = Trace::parse_json(body.as_bytes()).unwrap();
        let s = Summary::of(&trace);
        assert_eq!(s.step_count, 2);
        assert!(s.prompt_preview.ends_with('…'));
        assert_eq!(
            s.prompt_preview.chars().count(),
            PROMPT_PREVIEW_CHARS + 1,
            "{:?}",
            s.prompt_preview
        );
        assert!(
            s.prompt_preview.starts_with("é é"),
            "leading whitespace dropped, runs collapsed"
        );
        assert_eq!(s.payload_bytes as usize, trace.to_json().len());
    }
}
