-- Progress of a running read-model rebuild, written by `tunix-projector rebuild` about once a
-- second and exported as metrics by the long-running projector, so dashboards show a rebuild
-- without scraping the short-lived rebuild process. All NULL when no rebuild runs.
ALTER TABLE projection_state
    ADD COLUMN rebuild_version    integer,
    ADD COLUMN rebuild_applied    bigint,
    ADD COLUMN rebuild_lag        bigint,
    ADD COLUMN rebuild_started_at timestamptz,
    ADD COLUMN rebuild_updated_at timestamptz;
