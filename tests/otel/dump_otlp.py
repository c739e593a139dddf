#!/usr/bin/env python3
"""Prints an OTLP ExportTraceServiceRequest (protobuf .pb / .pb.gz, or OTLP/JSON .json) as text.

    python dump_otlp.py <file>

Protobuf is decoded with the generated classes of the `opentelemetry-proto` package (comes with
opentelemetry-exporter-otlp-proto-http). For each span: name, ids, parent, kind, then every
attribute as `key = value` (string values printed as JSON strings, arrays as JSON lists) and every
span event with its attributes. Resource and scope attributes are printed per block.
"""
import gzip
import json
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def value(v):
    """An OTLP AnyValue (as MessageToDict gives it) -> plain Python."""
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return v["doubleValue"]
    if "arrayValue" in v:
        return [value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])}
    if "bytesValue" in v:
        return "bytes:" + v["bytesValue"]
    return None


def attrs(lst, indent):
    for kv in lst or []:
        print(f"{indent}{kv['key']} = {json.dumps(value(kv.get('value', {})), ensure_ascii=False)}")


def load(path):
    data = open(path, "rb").read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
        path = path[:-3]
    req = ExportTraceServiceRequest()
    if path.endswith(".json"):
        # OTLP/JSON carries ids as hex, which protobuf's JSON parser would read as base64,
        # so it is walked as plain JSON (same field names as MessageToDict gives).
        return json.loads(data), "json"
    req.ParseFromString(data)
    return MessageToDict(req), "pb"


def hexid(s, enc):
    if not s:
        return ""
    if enc == "json":
        return s  # OTLP/JSON already carries lowercase hex
    import base64
    return base64.b64decode(s).hex()


def main():
    doc, enc = load(sys.argv[1])
    print(f"# {sys.argv[1]} ({'OTLP/JSON' if enc == 'json' else 'OTLP protobuf'})")
    for rs in doc.get("resourceSpans", []):
        print("resource:")
        attrs(rs.get("resource", {}).get("attributes"), "  ")
        for ss in rs.get("scopeSpans", []):
            sc = ss.get("scope", {})
            print(f"  scope: {sc.get('name', '')} {sc.get('version', '')} schema_url={ss.get('schemaUrl', '')!r}")
            attrs(sc.get("attributes"), "    ")
            for sp in ss.get("spans", []):
                print(f"    span {sp.get('name')!r} kind={sp.get('kind')} trace_id={hexid(sp.get('traceId'), enc)} "
                      f"span_id={hexid(sp.get('spanId'), enc)} parent={hexid(sp.get('parentSpanId'), enc) or '-'} "
                      f"status={sp.get('status', {})}")
                attrs(sp.get("attributes"), "      ")
                for ev in sp.get("events", []):
                    print(f"      event {ev.get('name')!r}")
                    attrs(ev.get("attributes"), "        ")


if __name__ == "__main__":
    main()
