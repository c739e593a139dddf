-- Erasure that erases (the "Governance" issue).
--
-- * trace_deletions becomes the rule "a deleted trace stays deleted": ingest-api records an id
--   here before answering a DELETE's 202 (so GET stops returning it at once, and a keyed POST
--   that would bring it back answers 410), and the writer and the projector record it in the
--   same transaction as their own deletion and never insert an id recorded here.
-- * erasure_outbox: tombstones the projector owes the topic, written in the transaction that
--   applies a deletion (the trace's score keys) or drops a record of a deleted trace (a late
--   score or submission), and removed once the broker acknowledged the tombstone. Keys only.
-- * audit_log: the ErasureRequested events, for GET /api/audit.
-- * erasure_operations: bulk deletes by filter: the dry run's plan (its token's digest, the
--   cutoff, the count), then the resource the caller polls, and what a restarted ingest-api
--   resumes.
CREATE TABLE erasure_outbox (
    key       text        PRIMARY KEY,
    trace_id  uuid        NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id             uuid        PRIMARY KEY,
    action         text        NOT NULL,
    requested_by   text        NOT NULL,
    requested_at   timestamptz NOT NULL,
    trace_id       uuid,
    filter         jsonb,
    created_before timestamptz,
    count          bigint,
    reason         text
);
CREATE INDEX audit_log_time_idx ON audit_log (requested_at DESC, id DESC);

CREATE TABLE erasure_operations (
    id             uuid        PRIMARY KEY,
    -- The list filter as JSON (the datasets' encoding).
    filter         jsonb       NOT NULL,
    created_before timestamptz NOT NULL,
    requested_by   text        NOT NULL,
    reason         text,
    -- 'planned' (a dry run: token and expires_at set), 'running', 'done', 'failed' or
    -- 'cancelled'.
    state          text        NOT NULL,
    -- sha256 (hex) of the confirmation token the dry run answered; the token itself is not kept.
    token_digest   text        UNIQUE,
    expires_at     timestamptz,
    matched        bigint      NOT NULL,
    deleted        bigint      NOT NULL DEFAULT 0,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
