-- Positions of the Kafka consumers, kept in Postgres in the same transaction as their effects.
--
-- Both the writer and the projector store here, per partition, the next offset to apply, in the
-- transaction that applies the batch. A crash therefore can never separate "rows written" from
-- "position advanced": there is neither a gap nor a double. Kafka consumer-group commits still
-- happen (after the Postgres commit) but only so standard lag tooling works; on assignment the
-- consumers seek to the offsets stored here.
--
-- * target names the state the offsets describe (a table, e.g. 'traces' or 'trace_list_v1'), not
--   the consumer group: a rebuild writes a new table with its own offsets while the old one keeps
--   being served.
-- * next_offset NULL means "from the beginning of the partition".
-- * Every batch locks its rows (SELECT ... FOR UPDATE) and checks they still hold the position the
--   consumer expects. A consumer that lost its partition in a rebalance and wakes up late finds a
--   different position and rolls back instead of re-applying stale events (a zombie fence).
CREATE TABLE consumer_offsets (
    target      text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, topic, partition)
);
