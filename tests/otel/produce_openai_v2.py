#!/usr/bin/env python3
"""Real OTel traces from opentelemetry-instrumentation-openai-v2 (the official OTel one) -> OTLP/HTTP.

    python produce_openai_v2.py <otlp_base_url> <stub_base_url> <api_key> [gzip|none]

Calls the real `openai` client against stub_openai.py (models stub-plain, stub-tool with a
get_weather tool definition, stub-reasoning) under one parent span `agent-run`, exports protobuf
to <otlp_base_url>/v1/traces, and prints one JSON line:
  {"trace_id": "<32 hex>", "spans": [{"model", "span_id", "trace_id", "name"}, ...]}
Exit codes: 0 ok, 1 export failed, 2 usage, 3 OpenAI call failed, 4 package missing.

Content capture (checked against opentelemetry-instrumentation-openai-v2 2.4b0 with
opentelemetry-util-genai 1.3b0):
  OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=span_only
With these, prompts and completions land ON THE SPAN as the JSON-string attributes
gen_ai.system_instructions / gen_ai.input.messages / gen_ai.output.messages (latest GenAI semconv).
`event_only`/`span_and_event` additionally emit a gen_ai.client.inference.operation.details
event through the OTel *Logs* API (a log record, not a span event) -- useless to a traces-only
endpoint, so we don't. Note: in this version `=true` (the legacy value) is NOT a valid mode any
more: util-genai logs a warning and captures nothing. See NOTES.md.
"""
import os
import sys

# Must be set before the instrumentation reads them (at instrument() / first call).
os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import otel_common as oc  # noqa: E402
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor  # noqa: E402
except ImportError as e:  # exit 4, not 1: a missing package is not a failed export
    sys.stderr.write(f"missing package (pip install -r tests/python/requirements.txt): {e}\n")
    sys.exit(4)


def main():
    otlp, stub, key, compression = oc.parse_args(sys.argv)
    provider, rec = oc.make_provider(otlp, key, compression, "python-openai-v2-agent")
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    try:
        trace_id = oc.run_calls(provider, stub)
    except Exception as e:  # the OpenAI call (stub) failed, not the export
        sys.stderr.write(f"openai call failed: {type(e).__name__}: {e}\n")
        sys.exit(3)
    oc.finish(provider, rec, trace_id)


if __name__ == "__main__":
    main()
