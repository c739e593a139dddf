#!/usr/bin/env python3
"""Real OTel traces from openinference-instrumentation-openai (Arize/Phoenix) -> OTLP/HTTP.

    python produce_openinference.py <otlp_base_url> <stub_base_url> <api_key> [gzip|none]

Same calls, CLI, output line and exit codes as produce_openai_v2.py (see otel_common.py).
OpenInference records content by default as flattened span attributes:
openinference.span.kind=LLM, llm.input_messages.<i>.message.role/content,
llm.output_messages.<i>.message.*, llm.token_count.*, llm.model_name, llm.invocation_parameters,
input.value/output.value (raw request/response JSON). OPENINFERENCE_HIDE_* env vars would hide
content; we force them off.
"""
import os
import sys

for var in ("OPENINFERENCE_HIDE_INPUTS", "OPENINFERENCE_HIDE_OUTPUTS",
            "OPENINFERENCE_HIDE_INPUT_MESSAGES", "OPENINFERENCE_HIDE_OUTPUT_MESSAGES",
            "OPENINFERENCE_HIDE_INPUT_TEXT", "OPENINFERENCE_HIDE_OUTPUT_TEXT"):
    os.environ[var] = "false"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import otel_common as oc  # noqa: E402
    from openinference.instrumentation.openai import OpenAIInstrumentor  # noqa: E402
except ImportError as e:  # exit 4, not 1: a missing package is not a failed export
    sys.stderr.write(f"missing package (pip install -r tests/python/requirements.txt): {e}\n")
    sys.exit(4)


def main():
    otlp, stub, key, compression = oc.parse_args(sys.argv)
    provider, rec = oc.make_provider(otlp, key, compression, "python-openinference-agent")
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    try:
        trace_id = oc.run_calls(provider, stub)
    except Exception as e:
        sys.stderr.write(f"openai call failed: {type(e).__name__}: {e}\n")
        sys.exit(3)
    oc.finish(provider, rec, trace_id)


if __name__ == "__main__":
    main()
