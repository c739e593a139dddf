-- Which trace ids the writer has deleted (the "Datasets" issue), so an export can say at once how
-- many of a dataset's members are gone without probing `traces` once per member (a million
-- probes before the first byte).
--
-- * trace_deletions: one row per deleted id, written by the writer in the same transaction as
--   the DELETE from `traces` (and replayed like it). Ids only, no content. A trace re-submitted
--   after its deletion exists again; readers count a member as omitted only when its id is here
--   AND absent from `traces`.
-- * dataset_members(trace_id): finds the members of a deleted id (exports; erasure later).
CREATE TABLE trace_deletions (
    id         uuid        PRIMARY KEY,
    deleted_at timestamptz NOT NULL
);

CREATE INDEX dataset_members_trace_idx ON dataset_members (trace_id);
