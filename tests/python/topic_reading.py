"""What the test readers share: every record of a topic from the beginning, and decoded Avro
values as plain JSON (timestamps as ISO-8601 in UTC, uuids as text)."""

import datetime
import os
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def records(brokers, topic, count, timeout):
    """Yields up to `count` records of every partition of `topic` from offset 0, for at most
    `timeout` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "tunix-interop-%d" % os.getpid(),
            "enable.auto.commit": False,
        }
    )
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                print("consumer error: %s" % message.error(), file=sys.stderr)
                continue
            seen += 1
            yield message
    finally:
        consumer.close()


def plain(value):
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
