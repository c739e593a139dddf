-- The writer's table: one row per trace, the full payload, the source of GET /api/traces/{id}.
--
-- * id is the primary key because every consumer guarantee rests on it: the writer inserts with
--   ON CONFLICT (id) DO NOTHING, so a redelivered event or a retried POST (same Idempotency-Key, same
--   id) never creates a second row and never fails a batch.
-- * payload is jsonb, not json or text: it is validated and normalised on the way in, can be
--   queried (payload->'meta'->>'dataset') without a migration, and TOAST-compresses large traces.
--   "Equivalent as JSON" is the contract, not byte equality; ingest refuses what jsonb cannot hold.
-- * created_at and trace_version are copied out of the event so that common filters never parse
--   jsonb. No secondary index here: listing is the projector's job (trace_list), and every index
--   would slow the writer's hot path.
-- * stored_at records when the writer committed the row; now() - created_at is ingest freshness.
CREATE TABLE traces (
    id            uuid        PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    trace_version text        NOT NULL,
    payload       jsonb       NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now()
);
