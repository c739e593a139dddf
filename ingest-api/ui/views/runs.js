// Agent runs: the inference calls of one OTel trace (traces from the OTLP intake share
// meta.otel.trace_id), in start-time order. The reader's "Same run" list, and the runs view
// (#/runs/<OTel trace id>): a timing bar per call on the run's time axis, model and token
// counts, each call a link into the reader.
import { $, el, fmtTime } from '../lib/dom.js';
import { api, describeError } from '../lib/api.js';
import { go } from '../lib/route.js';

const RUN_MAX = 100;

const otelOf = (t) => (t.payload.meta && typeof t.payload.meta === 'object' && t.payload.meta.otel) || {};
const genAiOf = (t) => (t.payload.meta && typeof t.payload.meta === 'object' && t.payload.meta.gen_ai) || {};

// The calls of `traceId`, sorted by start time; `known` (a trace already fetched) is reused.
// The list rows carry no meta, so each call is fetched (at most RUN_MAX).
export async function runCalls(traceId, known) {
  const r = await api(`/api/traces?limit=${RUN_MAX}&meta.otel.trace_id=${encodeURIComponent(traceId)}`);
  if (r.status !== 200) return { error: describeError(r.status, r.body) };
  const calls = await Promise.all(r.body.data.map((row) => (known && row.id === known.id
    ? known : api(`/api/traces/${encodeURIComponent(row.id)}`).then((x) => (x.status === 200 ? x.body : null)))));
  const sorted = calls.filter(Boolean).sort((a, b) => String(otelOf(a).start_time ?? '').localeCompare(String(otelOf(b).start_time ?? '')));
  return { calls: sorted, more: Boolean(r.body.pagination.next_cursor) };
}

// The reader's "Same run" section; hidden for traces that did not come from OTLP.
export async function showSameRun(t, stillCurrent) {
  const section = $('d-run');
  section.hidden = true;
  const traceId = typeof otelOf(t).trace_id === 'string' ? otelOf(t).trace_id : null;
  if (!traceId) return;
  const { calls, more } = await runCalls(traceId, t);
  if (!stillCurrent() || !calls) return;
  const ol = $('d-run-list');
  ol.replaceChildren();
  for (const c of calls) {
    const o = otelOf(c);
    const model = genAiOf(c).request?.model ?? '';
    const when = o.start_time ? new Date(o.start_time).toLocaleTimeString() : '';
    const ms = typeof o.duration_ms === 'number' ? ` · ${Math.round(o.duration_ms)} ms` : '';
    const link = el('a', { href: `#/trace/${c.id}`, textContent: `${when} ${o.name ?? c.id}` });
    link.dataset.id = c.id;
    const li = el('li', {}, link, el('span', { className: 'muted', textContent: ` ${model}${ms}` }));
    li.dataset.testid = 'run-call';
    if (c.id === t.id) { li.className = 'current'; link.setAttribute('aria-current', 'page'); }
    ol.append(li);
  }
  $('d-run-trace').textContent = traceId;
  $('d-run-all').href = `#/runs/${encodeURIComponent(traceId)}`;
  $('d-run-note').textContent = more ? `the first ${RUN_MAX} calls; the run view lists them` : '';
  section.hidden = false;
}

function tokens(c) {
  const u = genAiOf(c).usage || {};
  const parts = [];
  if (u.input_tokens != null) parts.push(`${u.input_tokens} in`);
  if (u.output_tokens != null) parts.push(`${u.output_tokens} out`);
  if (u.reasoning_tokens != null) parts.push(`${u.reasoning_tokens} reasoning`);
  return parts.join(' · ');
}

let shownRun = 0;

// The runs view: a form for an OTel trace id, and the run's calls with timing bars.
export async function showRuns(traceId) {
  const seq = ++shownRun;
  $('run-id').value = traceId || '';
  const table = $('run-calls').querySelector('tbody');
  table.replaceChildren();
  $('run-status').textContent = traceId ? 'loading…' : 'Open a run from a trace that came through the OTLP intake ("Same run"), or paste its OTel trace id.';
  $('run-title').textContent = traceId ? `Run ${traceId}` : 'Runs';
  if (!traceId) return;
  const { calls, more, error } = await runCalls(traceId);
  if (seq !== shownRun) return;
  if (error) { $('run-status').textContent = error; return; }
  if (!calls.length) { $('run-status').textContent = 'no inference calls of this OTel trace are stored'; return; }
  const start = (c) => Date.parse(otelOf(c).start_time ?? '') || 0;
  const end = (c) => Date.parse(otelOf(c).end_time ?? '') || start(c);
  const t0 = Math.min(...calls.map(start));
  const span = Math.max(1, Math.max(...calls.map(end)) - t0);
  for (const c of calls) {
    const o = otelOf(c);
    const left = ((start(c) - t0) / span) * 100;
    const width = Math.max(0.5, ((end(c) - start(c)) / span) * 100);
    const bar = el('div', { className: 'bar' }, el('span', { className: 'fill', title: `${Math.round(o.duration_ms ?? 0)} ms` }));
    bar.firstChild.style.left = `${left}%`;
    bar.firstChild.style.width = `${Math.min(width, 100 - left)}%`;
    const tr = el('tr', {},
      el('td', { className: 'nowrap num', textContent: o.start_time ? fmtTime(o.start_time) : '' }),
      el('td', { className: 'nowrap' }, el('a', { href: `#/trace/${c.id}`, textContent: o.name ?? c.id })),
      el('td', { className: 'nowrap', textContent: genAiOf(c).request?.model ?? genAiOf(c).response?.model ?? '' }),
      el('td', { className: 'nowrap num', textContent: typeof o.duration_ms === 'number' ? `${Math.round(o.duration_ms)} ms` : '' }),
      el('td', { className: 'nowrap num', textContent: tokens(c) }),
      el('td', { className: 'timeline' }, bar));
    tr.dataset.testid = 'run-row';
    table.append(tr);
  }
  const counted = calls.filter((c) => genAiOf(c).usage?.output_tokens != null);
  const total = counted.reduce((n, c) => n + genAiOf(c).usage.output_tokens, 0);
  const tokensNote = counted.length ? `, ${total} output tokens` : '';
  $('run-status').textContent = `${calls.length} inference call${calls.length === 1 ? '' : 's'} over ${Math.round(span)} ms${tokensNote}${more ? ` (the first ${RUN_MAX})` : ''}`;
}

export function wireRuns() {
  $('run-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('run-id').value.trim().toLowerCase();
    if (id) go(`/runs/${encodeURIComponent(id)}`);
  });
}
