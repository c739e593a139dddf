-- Datasets (the "Datasets" issue): frozen selections of traces, event-sourced like the traces.
--
-- The source of truth is the topic: DatasetMembers chunks, then the DatasetCreated that seals a
-- build, then perhaps a DatasetDeleted (schemas/README.md). The projector folds them into these
-- tables, which are NOT versioned with the list view: a rebuild of the list replays the same
-- events into them idempotently and changes nothing, as a frozen dataset must not change.
--
-- * datasets: one row per (name, version), ever. ingest-api inserts it as 'building' before it
--   writes the events (a claim, so two concurrent creations cannot both succeed, and so that
--   `key` = '<name>-<version>', the original service's identifier, stays unique); the projector
--   marks it 'ready' when it applies the sealing DatasetCreated of the same build, and 'deleted'
--   on DatasetDeleted. A deleted row stays: a name and version are never reused. Replaying the
--   topic into an empty database recreates the rows from the events alone.
-- * dataset_members: one row per member of a build, in the dataset's order (`position`), with
--   its split and its scores as of creation (a json object by name: json, not jsonb, because
--   score names may hold NUL). Members of a deleted dataset are removed; rows of a build that was
--   never sealed (a failed attempt, retried under a new build id) stay unreferenced.
CREATE TABLE datasets (
    name          text        NOT NULL,
    version       text        NOT NULL,
    key           text        NOT NULL UNIQUE,
    build_id      uuid        NOT NULL,
    definition    text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('building', 'ready', 'deleted')),
    member_count  bigint,
    eval_count    bigint,
    digest        text,
    created_at    timestamptz,
    deleted_at    timestamptz,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE dataset_members (
    build_id  uuid    NOT NULL,
    position  bigint  NOT NULL,
    trace_id  uuid    NOT NULL,
    eval      boolean NOT NULL,
    scores    json    NOT NULL,
    PRIMARY KEY (build_id, position)
);
