"""Reads the `traces` topic the way a downstream team would, with tools we did not write.

Every record is consumed with confluent-kafka (librdkafka's Python client) and decoded with
fastavro: bytes 2-9 are looked up among the fingerprints fastavro itself computes for the
`.avsc` files (CRC-64-AVRO of the Parsing Canonical Form, per the Avro specification), and the rest
is decoded with `schemaless_reader`. Nothing from tunix-rt's own decoder is involved.

Usage:
  read_events.py fingerprints SCHEMA_DIR
      prints {"<file>": "<hex>"} as fastavro computes them
  read_events.py consume SCHEMA_DIR BROKERS TOPIC COUNT [TIMEOUT_S]
      prints one JSON object per record: key, file, fingerprint, value (timestamps as ISO-8601,
      uuids as text); exits 1 when a record's fingerprint matches no schema file
"""

import glob
import io
import json
import os
import sys

import fastavro
import fastavro.schema

from topic_reading import plain, records


def schemas(schema_dir):
    out = {}
    for path in sorted(glob.glob(os.path.join(schema_dir, "*.avsc"))):
        with open(path, encoding="utf-8") as f:
            parsed = fastavro.schema.parse_schema(json.load(f))
        pcf = fastavro.schema.to_parsing_canonical_form(parsed)
        fp = fastavro.schema.fingerprint(pcf, "CRC-64-AVRO")
        out[fp] = (os.path.basename(path), parsed)
    return out


def main(argv):
    if len(argv) >= 2 and argv[0] == "fingerprints":
        print(json.dumps({name: fp for fp, (name, _) in schemas(argv[1]).items()}))
        return 0
    if len(argv) >= 5 and argv[0] == "consume":
        known = schemas(argv[1])
        timeout = float(argv[5]) if len(argv) > 5 else 30.0
        status = 0
        for message in records(argv[2], argv[3], int(argv[4]), timeout):
            value = message.value()
            if value is None:
                # A Kafka tombstone (a deletion's, or a retraction's): no schema, nothing to decode.
                print(json.dumps({"key": message.key().decode("utf-8"), "file": None, "tombstone": True}))
                continue
            fingerprint = value[2:10].hex()
            if value[:2] != b"\xc3\x01" or fingerprint not in known:
                print("record %s/%s: no schema has fingerprint %s" % (message.partition(), message.offset(), fingerprint), file=sys.stderr)
                status = 1
                continue
            name, schema = known[fingerprint]
            datum = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
            print(
                json.dumps(
                    {
                        "key": message.key().decode("utf-8"),
                        "file": name,
                        "fingerprint": fingerprint,
                        "value": plain(datum),
                    },
                    ensure_ascii=False,
                )
            )
        return status
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
