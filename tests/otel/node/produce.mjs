#!/usr/bin/env node
// Real OpenTelemetry JS SDK + OTLP/HTTP exporter -> ingest-api's POST /v1/traces.
//
//   node produce.mjs <otlp_base_url> <api_key> <json|proto>
//
// json  = @opentelemetry/exporter-trace-otlp-http  (Content-Type: application/json, OTLP/JSON)
// proto = @opentelemetry/exporter-trace-otlp-proto (Content-Type: application/x-protobuf)
//
// Emits one trace: a parent span `invoke_agent` and two child `chat stub-model` spans whose
// attributes are set BY HAND following the OpenTelemetry GenAI semantic conventions as of
// open-telemetry/semantic-conventions tag v1.41.1 (commit ead83b9b0fa36540c1642fce46e874f002ac23f1),
// the last release whose docs/gen-ai/ still held the spec and the JSON schemas
// gen-ai-{input,output}-messages.json / gen-ai-system-instructions.json (GenAI conventions have
// since moved to open-telemetry/semantic-conventions-genai; attribute names are unchanged).
// Message attributes are JSON strings, as the spec asks when an SDK cannot record structured
// (AnyValue map/array) attributes on spans.
//
// Prints one JSON line: {"trace_id": "<32 hex>", "spans": [{"model","span_id","trace_id","name"}, ...]}
// for the two chat spans. Exit codes: 0 ok, 1 export failed (any non-2xx such as 401, connection
// refused, timeout), 2 bad usage.

import { context, trace, SpanKind } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';

const EXPORT_TIMEOUT_MS = 10_000; // per export request (retries included); everything is bounded

const [base, apiKey, encoding] = process.argv.slice(2);
if (!base || !apiKey || !['json', 'proto'].includes(encoding)) {
  process.stderr.write('usage: node produce.mjs <otlp_base_url> <api_key> <json|proto>\n');
  process.exit(2);
}

// Wraps the real exporter: records every exported span and every export result.
class RecordingExporter {
  constructor(inner) { this.inner = inner; this.spans = []; this.results = []; }
  export(spans, resultCallback) {
    this.inner.export(spans, (result) => {
      this.spans.push(...spans);
      this.results.push(result);
      resultCallback(result);
    });
  }
  shutdown() { return this.inner.shutdown(); }
  forceFlush() { return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve(); }
}

const Exporter = encoding === 'json' ? JsonExporter : ProtoExporter;
const recorder = new RecordingExporter(new Exporter({
  url: `${base.replace(/\/+$/, '')}/v1/traces`,
  headers: { Authorization: `Bearer ${apiKey}` },
  timeoutMillis: EXPORT_TIMEOUT_MS,
}));
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'node-agent' }),
  // Long delay: nothing leaves before forceFlush, so the whole trace goes in one request.
  spanProcessors: [new BatchSpanProcessor(recorder, {
    scheduledDelayMillis: 60_000, exportTimeoutMillis: EXPORT_TIMEOUT_MS,
  })],
});
const tracer = provider.getTracer('tunix-rt.tests.otel.node', '0.0.0');

const j = (v) => JSON.stringify(v);
const SYSTEM = [{ type: 'text', content: 'You are terse.' }];

// Common attributes of an inference (chat) span, per gen-ai-spans.md "Inference".
function chatAttributes(n, { input, output, finish, usage }) {
  return {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'stub-model',
    'gen_ai.response.model': 'stub-model-2026',
    'gen_ai.response.id': `chatcmpl-node-${n}`,
    'gen_ai.response.finish_reasons': [finish],
    'gen_ai.usage.input_tokens': usage[0],
    'gen_ai.usage.output_tokens': usage[1],
    'gen_ai.usage.reasoning.output_tokens': usage[2],
    'gen_ai.system_instructions': j(SYSTEM),
    'gen_ai.input.messages': j(input),
    'gen_ai.output.messages': j(output),
  };
}

const turns = [
  {
    input: [{ role: 'user', parts: [{ type: 'text', content: 'What is 6*7?' }] }],
    output: [{
      role: 'assistant',
      parts: [{ type: 'reasoning', content: '6*7 is 42.' }, { type: 'text', content: '42' }],
      finish_reason: 'stop',
    }],
    finish: 'stop',
    usage: [12, 9, 5],
  },
  {
    // Second turn: history includes an earlier tool call and its result (ToolCallResponsePart
    // uses `response` per gen-ai-input-messages.json), then the model calls a tool again.
    input: [
      { role: 'user', parts: [{ type: 'text', content: 'Weather in Paris?' }] },
      { role: 'assistant', parts: [{ type: 'tool_call', id: 'call_0', name: 'get_time', arguments: { city: 'Paris' } }] },
      { role: 'tool', parts: [{ type: 'tool_call_response', id: 'call_0', response: '14:00' }] },
    ],
    output: [{
      role: 'assistant',
      parts: [
        { type: 'reasoning', content: 'I need the weather.' },
        { type: 'tool_call', id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } },
      ],
      finish_reason: 'tool_calls',
    }],
    finish: 'tool_calls',
    usage: [40, 22, 8],
  },
];

const parent = tracer.startSpan('invoke_agent', {
  kind: SpanKind.INTERNAL,
  attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.provider.name': 'openai' },
});
const parentCtx = trace.setSpan(context.active(), parent); // explicit context: no global needed
turns.forEach((t, i) => {
  const span = tracer.startSpan('chat stub-model', { kind: SpanKind.CLIENT, attributes: chatAttributes(i + 1, t) }, parentCtx);
  span.end();
});
parent.end();

let failure = null;
try {
  await provider.forceFlush(); // rejects if the export failed
} catch (e) {
  failure = e;
}
await provider.shutdown().catch(() => {});
const bad = recorder.results.filter((r) => r.code !== ExportResultCode.SUCCESS);
if (failure || bad.length || recorder.results.length === 0) {
  const err = failure ?? bad[0]?.error;
  process.stderr.write(`export failed: ${err?.message ?? err ?? 'nothing exported'}\n`);
  process.exit(1);
}

const hex = (s) => s.spanContext();
const chats = recorder.spans.filter((s) => s.name === 'chat stub-model')
  .sort((a, b) => (a.startTime[0] - b.startTime[0]) || (a.startTime[1] - b.startTime[1]));
const traceId = parent.spanContext().traceId;
process.stdout.write(JSON.stringify({
  trace_id: traceId,
  spans: chats.map((s) => ({ model: 'stub-model', span_id: hex(s).spanId, trace_id: hex(s).traceId, name: s.name })),
}) + '\n');
process.exit(0);
