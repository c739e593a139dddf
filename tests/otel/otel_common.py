"""Shared plumbing for produce_openai_v2.py and produce_openinference.py (not run on its own).

Both scripts: build a real OTel SDK TracerProvider whose OTLPSpanExporter (protobuf over HTTP)
posts to <otlp_base_url>/v1/traces with `Authorization: Bearer <api_key>`, instrument the real
`openai` client with some third-party instrumentation, call the stub server three times under one
parent span `agent-run`, flush, and print one JSON line naming the exported inference spans.
Exit codes: 0 ok, 1 the export failed (non-success from the exporter, or nothing exported),
2 bad usage, 3 the OpenAI calls themselves failed, 4 a package is missing (in the scripts).
"""
import json
import sys
import threading

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

# Every network call is bounded: the exporter's per-export timeout (its retries stop within it)
# and the OpenAI client's timeout (no retries).
EXPORT_TIMEOUT_S = 10
OPENAI_TIMEOUT_S = 10
MODELS = ["stub-plain", "stub-tool", "stub-reasoning"]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class RecordingExporter(SpanExporter):
    """Wraps the real exporter: remembers every span handed to it and every export result."""

    def __init__(self, inner):
        self.inner = inner
        self.spans = []
        self.results = []
        self._lock = threading.Lock()

    def export(self, spans):
        result = self.inner.export(spans)
        with self._lock:
            self.spans.extend(spans)
            self.results.append(result)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def parse_args(argv):
    if len(argv) not in (4, 5) or (len(argv) == 5 and argv[4] not in ("gzip", "none")):
        sys.stderr.write(f"usage: {argv[0]} <otlp_base_url> <stub_base_url> <api_key> [gzip|none]\n")
        sys.exit(2)
    otlp, stub, key = argv[1].rstrip("/"), argv[2].rstrip("/"), argv[3]
    compression = argv[4] if len(argv) == 5 else "none"
    return otlp, stub, key, compression


def make_provider(otlp_base, api_key, compression, service_name):
    exporter = OTLPSpanExporter(
        endpoint=f"{otlp_base}/v1/traces",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=EXPORT_TIMEOUT_S,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )
    rec = RecordingExporter(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    # Batch with a long delay: nothing leaves before finish()'s force_flush, so one run = one
    # OTLP request holding all four spans (two instrumentation scopes), as a real app would send.
    provider.add_span_processor(BatchSpanProcessor(rec, schedule_delay_millis=60_000,
                                                   export_timeout_millis=EXPORT_TIMEOUT_S * 1000))
    return provider, rec


def run_calls(provider, stub_base):
    """Three chat completions under one `agent-run` parent span. Returns the parent's trace id."""
    import openai  # imported after instrumentation is set up by the caller

    client = openai.OpenAI(base_url=f"{stub_base}/v1", api_key="sk-stub",
                           timeout=OPENAI_TIMEOUT_S, max_retries=0)
    tracer = provider.get_tracer("tunix-rt.tests.otel")
    with tracer.start_as_current_span("agent-run") as parent:
        for model in MODELS:
            kwargs = {}
            if model == "stub-tool":
                kwargs["tools"] = [WEATHER_TOOL]
            client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "What is the capital of France?" if model != "stub-reasoning"
                     else "What is 6*7?"},
                ],
                **kwargs,
            )
        return format(parent.get_span_context().trace_id, "032x")


def finish(provider, rec, trace_id):
    """Flush, check every export result, print the one JSON line, exit accordingly."""
    flushed = provider.force_flush(EXPORT_TIMEOUT_S * 1000 * 2)
    provider.shutdown()
    if not flushed:
        sys.stderr.write("export failed: force_flush timed out\n")
        sys.exit(1)
    failed = [r for r in rec.results if r != SpanExportResult.SUCCESS]
    if failed or not rec.results:
        sys.stderr.write(f"export failed: {len(failed)} of {len(rec.results)} exports not SUCCESS\n")
        sys.exit(1)
    parent = next((s for s in rec.spans if s.name == "agent-run"), None)
    children = sorted((s for s in rec.spans if parent and s.parent is not None
                       and s.parent.span_id == parent.context.span_id),
                      key=lambda s: s.start_time)
    if len(children) != len(MODELS):
        sys.stderr.write(f"expected {len(MODELS)} inference spans under agent-run, got "
                         f"{[s.name for s in rec.spans]}\n")
        sys.exit(1)
    for s in rec.spans:  # a human-readable digest on stderr: name and attribute keys
        sys.stderr.write(f"span {s.name!r} keys={sorted(s.attributes or {})} "
                         f"events={[e.name for e in s.events]}\n")
    out = {"trace_id": trace_id, "spans": [
        {"model": m, "span_id": format(s.context.span_id, "016x"), "trace_id": format(s.context.trace_id, "032x"),
         "name": s.name}
        for m, s in zip(MODELS, children)]}
    print(json.dumps(out), flush=True)
