-- The list view (read model) maintained by the projector, and the switch used by rebuilds.
--
-- * One physical table per read-model version (trace_list_v1, _v2, ...). Readers only ever query
--   the view trace_list; a rebuild fills a new version from offset 0 while v1 keeps serving, then
--   redefines the view and flips projection_state in one transaction, so reads switch atomically.
-- * Columns are the cheap summary the UI needs; the payload stays in traces.
-- * (created_at DESC, id DESC) serves "newest first, ties by id" for offset paging and the keyset
--   cursor (row comparison (created_at, id) < ($1, $2)), so page N costs the same as page 1.
-- * (trace_version, created_at DESC, id DESC) serves the version filter with the same order.
-- * The projector code creates later versions with the same DDL (projector::view::create_table);
--   a test compares the two so they cannot drift.
CREATE TABLE trace_list_v1 (
    id             uuid        PRIMARY KEY,
    created_at     timestamptz NOT NULL,
    trace_version  text        NOT NULL,
    step_count     integer     NOT NULL,
    prompt_preview text        NOT NULL,
    payload_bytes  integer     NOT NULL
);
CREATE INDEX trace_list_v1_created_idx ON trace_list_v1 (created_at DESC, id DESC);
CREATE INDEX trace_list_v1_version_idx ON trace_list_v1 (trace_version, created_at DESC, id DESC);

CREATE VIEW trace_list AS
    SELECT id, created_at, trace_version, step_count, prompt_preview, payload_bytes
    FROM trace_list_v1;

-- Which physical version the view points at. Projector batches read it FOR SHARE; the rebuild's
-- switch takes it FOR UPDATE, so no batch straddles a switch.
CREATE TABLE projection_state (
    name           text        PRIMARY KEY,
    active_version integer     NOT NULL CHECK (active_version >= 1),
    switched_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projection_state (name, active_version) VALUES ('trace_list', 1);
