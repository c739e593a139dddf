"""Produces one event the way a third-party producer with Confluent tooling would: confluent-kafka's
Producer with its AvroSerializer (TopicRecordNameStrategy, schemas registered automatically in the
registry at REGISTRY_URL), so the record has the Confluent wire format, the registry's schema id,
and no tunix headers.

Usage:
  produce_with_registry.py BROKERS TOPIC REGISTRY_URL SCHEMA_FILE KEY VALUE_JSON
      VALUE_JSON fields as the schema names them; timestamps as microseconds since the epoch.
      Basic auth from $REGISTRY_USER_INFO ("user:password") if set. Prints the schema id used.
"""

import json
import os
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, topic, registry_url, schema_file, key, value_json = argv
    conf = {"url": registry_url}
    if os.environ.get("REGISTRY_USER_INFO"):
        conf["basic.auth.user.info"] = os.environ["REGISTRY_USER_INFO"]
    with open(schema_file, encoding="utf-8") as f:
        schema_text = f.read()
    serializer = AvroSerializer(
        SchemaRegistryClient(conf),
        schema_text,
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    value = serializer(json.loads(value_json), SerializationContext(topic, MessageField.VALUE))
    producer = Producer({"bootstrap.servers": brokers, "acks": "all"})
    errors = []
    producer.produce(topic, key=key.encode(), value=value, on_delivery=lambda e, m: e and errors.append(e))
    producer.flush(30)
    if errors:
        print("delivery failed: %s" % errors[0], file=sys.stderr)
        return 1
    print(int.from_bytes(value[1:5], "big"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
