-- Search, metadata filters and scores for the list view (the "Find and judge" issue).
--
-- The projector's read model gains, per version N (the active one is altered here; rebuilds create
-- later versions with the same shape from projector::view):
--
-- * trace_list_vN.facets text[]: one entry per scalar leaf of meta, 'path␟type:value'
--   (schemas/src/facets.rs), pg_text-encoded. A GIN index serves `meta.<path>=<value>` and
--   `tag=<t>` (array containment and overlap use per-element statistics, so the planner can tell
--   a common value from a rare one).
-- * trace_list_vN.search tsvector: the trace's terms (words; CJK characters and pairs), built by
--   schemas/src/search.rs, never by a text-search configuration. A GIN index serves `q`.
-- * trace_scores_vN: the latest score per (trace, name), maintained from score events in log
--   order; rows go with their trace on delete. (trace_id, name) is the key; (name, value) serves
--   score filters. The view trace_scores points at the active version, like trace_list.
--
-- Existing rows get empty facets and search (filters and q do not find them) until the view is
-- rebuilt: run `tunix-projector rebuild` after upgrading (docs/OPERATIONS.md). New traces are
-- indexed at once. Adding the columns with constant defaults does not rewrite the table; the
-- indexes are built over the existing rows (empty values, so quickly).
DO $$
DECLARE
    v integer;
BEGIN
    SELECT active_version INTO v FROM projection_state WHERE name = 'trace_list';
    EXECUTE format(
        'ALTER TABLE trace_list_v%s
             ADD COLUMN facets text[]   NOT NULL DEFAULT ''{}'',
             ADD COLUMN search tsvector NOT NULL DEFAULT ''''', v);
    EXECUTE format('CREATE INDEX trace_list_v%s_facets_idx ON trace_list_v%s USING gin (facets)', v, v);
    EXECUTE format('CREATE INDEX trace_list_v%s_search_idx ON trace_list_v%s USING gin (search)', v, v);
    EXECUTE format(
        'CREATE TABLE trace_scores_v%s (
             trace_id    uuid             NOT NULL,
             name        text             NOT NULL,
             value       double precision NOT NULL,
             source      text,
             comment     text,
             recorded_at timestamptz      NOT NULL,
             PRIMARY KEY (trace_id, name)
         )', v);
    EXECUTE format('CREATE INDEX trace_scores_v%s_value_idx ON trace_scores_v%s (name, value)', v, v);
    DROP VIEW trace_list;
    EXECUTE format(
        'CREATE VIEW trace_list AS
             SELECT id, created_at, trace_version, step_count, prompt_preview, payload_bytes, facets, search
             FROM trace_list_v%s', v);
    EXECUTE format(
        'CREATE VIEW trace_scores AS
             SELECT trace_id, name, value, source, comment, recorded_at FROM trace_scores_v%s', v);
END
$$;
