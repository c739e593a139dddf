-- Schema ids an external Schema Registry assigned to our shipped schemas (the "Schema Registry"
-- issue). Events framed with those ids stay in the topic after an operator points
-- SCHEMA_REGISTRY_URL elsewhere (or unsets it, back to the built-in registry), so every service
-- remembers them here: ingest-api when it registers, the consumers when they resolve an id. The
-- built-in registry (`/api/registry`) serves them too, so downstream clients keep resolving old
-- records after a move. Built-in ids (1000000001–1000099999) are constants in code, never here.
--
-- An id means one schema for the life of the topic: ingest-api refuses a registry that assigns
-- an id already recorded here to a different schema.
CREATE TABLE schema_registry_ids (
    schema_id   integer     PRIMARY KEY,
    -- The specification fingerprint (CRC-64-AVRO, little-endian as framed) of the shipped file.
    fingerprint bytea       NOT NULL CHECK (length(fingerprint) = 8),
    schema_file text        NOT NULL,
    -- The registry that assigned it (URL without credentials).
    registry    text        NOT NULL,
    learned_at  timestamptz NOT NULL DEFAULT now()
);
