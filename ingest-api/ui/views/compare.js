// Two traces side by side with their baseline scores (#/compare?base=<id>&other=<id>).
import { $, el, fmtTime } from '../lib/dom.js';
import { api, describeError } from '../lib/api.js';
import { stepItem } from './trace.js';

function side(t, label) {
  const steps = el('ol', { className: 'steps' });
  for (const s of [...t.payload.steps].sort((a, b) => a.i - b.i)) steps.append(stepItem(s));
  const link = el('a', { href: `#/trace/${t.id}`, textContent: t.id });
  return el('div', { className: 'side' },
    el('h3', { textContent: label }),
    el('p', {}, el('code', {}, link), el('br'), el('span', { className: 'muted', textContent: `${fmtTime(t.created_at)} · version ${t.trace_version}` })),
    el('p', { className: 'big' }, 'baseline score ', el('b', { className: 'score', textContent: String(t.score) })),
    el('h3', { textContent: 'Prompt' }), el('pre', { className: 'text', textContent: t.payload.prompt }),
    el('h3', { textContent: `Reasoning (${t.payload.steps.length} steps)` }), steps,
    el('h3', { textContent: 'Final answer' }), el('pre', { className: 'text answer', textContent: t.payload.final_answer }));
}

export async function showCompare(base, other) {
  $('c-base').replaceChildren();
  $('c-other').replaceChildren();
  const r = await api(`/api/traces/compare?${new URLSearchParams({ base: base || '', other: other || '' })}`);
  if (r.status !== 200) {
    $('compare-status').textContent = describeError(r.status, r.body);
    return;
  }
  $('compare-status').textContent = '';
  $('c-base').append(side(r.body.base, 'Base'));
  $('c-other').append(side(r.body.other, 'Other'));
}
