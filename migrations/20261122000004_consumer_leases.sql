-- Partition ownership for writer and projector instances, coordinated through Postgres.
--
-- Why not the Kafka consumer-group protocol: the positions already live here, so assignment only
-- has to say *who* works on a partition, and the zombie fence in consumer_offsets makes a wrong
-- answer harmless (a stale owner's batch rolls back). Leases behave the same on every broker. The
-- Tansu broker used for local runs loses track of the group leader after a member is killed and
-- then never completes a rebalance again (docs/OPERATIONS.md), which would stall a restarted
-- consumer forever.
--
-- * consumer_members: live instances of a group, by heartbeat. Each instance's fair share is
--   computed from the live members (sorted by id) and the partition count.
-- * consumer_leases: one row per partition. An instance renews its leases every ttl/3; a lease
--   not renewed within the ttl (a killed instance) may be taken by any live member. On clean
--   shutdown an instance releases its leases so others take over at once.
CREATE TABLE consumer_members (
    group_id  text        NOT NULL,
    topic     text        NOT NULL,
    member    text        NOT NULL,
    seen_at   timestamptz NOT NULL,
    PRIMARY KEY (group_id, topic, member)
);

CREATE TABLE consumer_leases (
    group_id   text        NOT NULL,
    topic      text        NOT NULL,
    partition  integer     NOT NULL CHECK (partition >= 0),
    owner      text,
    expires_at timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (group_id, topic, partition)
);
