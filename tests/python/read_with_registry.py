"""Reads the `traces` topic the way a downstream team with Confluent tooling would: confluent-kafka's
Consumer, its SchemaRegistryClient pointed at a registry URL, and its AvroDeserializer, which reads
the Confluent wire format (0x00, 4-byte schema id, Avro datum) and fetches each schema by id from
the registry. Nothing from tunix-rt's own decoder is involved.

Usage:
  read_with_registry.py BROKERS TOPIC REGISTRY_URL COUNT [TIMEOUT_S]
      prints one JSON object per record: partition, offset, key, schema_id, value (timestamps as
      ISO-8601, uuids as text); basic auth from $REGISTRY_USER_INFO ("user:password") if set.
      Exits 1 when a record cannot be deserialized (the error on stderr).
"""

import json
import os
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from topic_reading import plain, records


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, topic, registry_url, count = argv[0], argv[1], argv[2], int(argv[3])
    timeout = float(argv[4]) if len(argv) > 4 else 30.0
    conf = {"url": registry_url}
    if os.environ.get("REGISTRY_USER_INFO"):
        conf["basic.auth.user.info"] = os.environ["REGISTRY_USER_INFO"]
    deserializer = AvroDeserializer(SchemaRegistryClient(conf))
    for message in records(brokers, topic, count, timeout):
        raw = message.value()
        if raw is None:
            # A Kafka tombstone: a downstream reader deletes what the key names.
            print(json.dumps({"partition": message.partition(), "offset": message.offset(),
                              "key": message.key().decode("utf-8"), "schema_id": None,
                              "value": None, "tombstone": True}), flush=True)
            continue
        try:
            value = deserializer(raw, SerializationContext(topic, MessageField.VALUE))
        except Exception as e:  # what a downstream team would see
            print("record %d/%d: %s: %s" % (message.partition(), message.offset(), type(e).__name__, e), file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "partition": message.partition(),
                    "offset": message.offset(),
                    "key": message.key().decode("utf-8"),
                    "schema_id": int.from_bytes(raw[1:5], "big") if raw[:1] == b"\x00" else None,
                    "value": plain(value),
                },
                ensure_ascii=False,
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
