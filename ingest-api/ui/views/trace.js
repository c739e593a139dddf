// The reasoning reader: one trace as prompt, steps and answer. Steps are collapsible (long ones
// folded, their text rendered only when opened), coloured by kind (reasoning, tool call, tool
// result, other), with the search's terms marked (steps that match open by themselves), an
// outline to jump between steps, copy buttons, and Markdown and code rendered safely
// (lib/markdown.js: text only, never HTML). Beside them: scores, compare, the OTel run, meta.
import { $, el, fmtTime, copyButton } from '../lib/dom.js';
import { api, describeError } from '../lib/api.js';
import { go, currentFilters, parseHash } from '../lib/route.js';
import { render } from '../lib/markdown.js';
import { termsOf, hasHit } from '../lib/highlight.js';
import { refreshList } from './traces.js';
import { showSameRun } from './runs.js';

export const reader = { current: null };

const FOLD_AT = 600; // characters: longer steps start folded

// The kind of a step type, for its colour: reasoning, tool call, tool result, or other.
export function kindOf(type) {
  const t = String(type).toLowerCase();
  if (t.startsWith('reasoning') || t === 'thinking' || t === 'thought') return 'reasoning';
  if (t.startsWith('tool_call') || t === 'tool-call' || t === 'function_call' || t === 'action') return 'tool-call';
  if (t.startsWith('tool_result') || t === 'observation' || t === 'function_result') return 'tool-result';
  return 'other';
}

function jsonNode(value, key) {
  const span = (cls, text) => el('span', { className: cls, textContent: text });
  const label = key === undefined ? [] : [span('k', JSON.stringify(key)), ': '];
  if (value !== null && typeof value === 'object') {
    const isArray = Array.isArray(value);
    const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
    const details = el('details', { open: true }, el('summary', {}, ...label, isArray ? `[${entries.length}]` : `{${entries.length}}`));
    for (const [k, v] of entries) details.append(jsonNode(v, isArray ? undefined : k));
    return details;
  }
  const cls = typeof value === 'string' ? 's' : typeof value === 'number' ? 'n' : 'b';
  return el('div', {}, ...label, span(cls, JSON.stringify(value)));
}

// One step: a <details> whose summary is "#i type" and the first words; the body (Markdown)
// is built when first opened, so a 200-step trace renders at once.
export function stepItem(s, terms = []) {
  const kind = kindOf(s.type);
  const hit = hasHit(s.content, terms);
  const details = el('details', { className: 'step-body' });
  details.open = s.content.length <= FOLD_AT || hit;
  const preview = s.content.length > FOLD_AT ? `${s.content.slice(0, 160).replace(/\s+/g, ' ')}… (${s.content.length.toLocaleString()} characters)` : '';
  const summary = el('summary', {},
    el('span', { className: 'i', textContent: `#${s.i}` }),
    el('span', { className: `type k-${kind}`, textContent: s.type }),
    el('span', { className: 'preview', textContent: preview }));
  details.append(summary);
  const fill = () => {
    if (details.open && details.childElementCount === 1) details.append(render(s.content, terms));
  };
  details.addEventListener('toggle', fill);
  fill();
  // The copy button sits beside the summary, not in it (no control inside a control).
  const li = el('li', { className: `step k-${kind}${hit ? ' hit' : ''}`, id: `step-${s.i}` }, details, copyButton(`step ${s.i}`, s.content));
  li.dataset.testid = 'step';
  return li;
}

// The outline: one mark per step, coloured by kind, search hits flagged; click to jump.
function outline(steps, terms) {
  const nav = el('nav', { className: 'outline' });
  nav.setAttribute('aria-label', 'steps');
  for (const s of steps) {
    const a = el('a', { href: `#step-${s.i}`, className: `k-${kindOf(s.type)}${hasHit(s.content, terms) ? ' hit' : ''}`, title: `#${s.i} ${s.type}` },
      el('span', { className: 'i', textContent: `#${s.i}` }), ` ${s.type}`);
    a.addEventListener('click', (e) => {
      e.preventDefault();
      const target = document.getElementById(`step-${s.i}`);
      target.querySelector('details').open = true;
      target.scrollIntoView({ block: 'start' });
    });
    nav.append(a);
  }
  return nav;
}

function scoreList(scores, id) {
  const ul = $('d-scores');
  ul.replaceChildren();
  const names = Object.keys(scores || {}).sort();
  if (!names.length) ul.append(el('li', { className: 'muted', textContent: 'none yet' }));
  for (const name of names) {
    const s = scores[name];
    const retract = el('button', { type: 'button', className: 'link', textContent: 'retract', title: `retract ${name}` });
    retract.addEventListener('click', async () => {
      const r = await api(`/api/traces/${id}/scores/${encodeURIComponent(name)}`, { method: 'DELETE' });
      $('score-result').textContent = r.status === 202 ? `retracted ${name}` : describeError(r.status, r.body);
      await waitForScores(id, (got) => !(name in got));
    });
    const li = el('li', {}, el('b', { textContent: name }), ` ${s.value}`, el('span', { className: 'muted', textContent: s.source ? ` · ${s.source}` : '' }), ' ', retract);
    li.dataset.testid = 'score';
    li.dataset.name = name;
    li.title = s.comment || new Date(s.recorded_at).toLocaleString();
    ul.append(li);
  }
}

function fillText(id, text, terms) {
  const e = $(id);
  e.replaceChildren(render(text, terms));
}

function showTrace(t) {
  reader.current = t.id;
  const terms = termsOf(parseHash().params.get('q'));
  const steps = [...t.payload.steps].sort((a, b) => a.i - b.i);
  $('detail-panel').hidden = false;
  $('d-id').textContent = t.id;
  $('d-link').href = `#/trace/${t.id}`;
  $('d-created').textContent = fmtTime(t.created_at);
  $('d-version').textContent = t.trace_version;
  const hits = terms.length ? steps.filter((s) => hasHit(s.content, terms)).length : 0;
  $('d-stepcount').textContent = `${steps.length} steps${terms.length ? ` · ${hits} match “${terms.join(' ')}”` : ''}`;
  fillText('d-prompt', t.payload.prompt, terms);
  fillText('d-answer', t.payload.final_answer, terms);
  $('copy-prompt').replaceWith(Object.assign(copyButton('prompt', t.payload.prompt), { id: 'copy-prompt' }));
  $('copy-answer').replaceWith(Object.assign(copyButton('final answer', t.payload.final_answer), { id: 'copy-answer' }));
  $('d-steps').replaceChildren(...steps.map((s) => stepItem(s, terms)));
  $('d-outline').replaceChildren(outline(steps, terms));
  const meta = $('d-meta');
  meta.replaceChildren(t.payload.meta == null ? el('span', { className: 'muted', textContent: 'none' }) : jsonNode(t.payload.meta));
  scoreList(t.scores, t.id);
  showSameRun(t, () => reader.current === t.id);
  $('score-result').textContent = '';
  window.scrollTo({ top: 0 });
}

export async function openTrace(id) {
  const r = await api(`/api/traces/${encodeURIComponent(id)}`);
  if (r.status === 200) {
    $('fetch-result').textContent = '';
    showTrace(r.body);
    return true;
  }
  reader.current = null;
  $('fetch-result').textContent = describeError(r.status, r.body);
  return false;
}

// Scores are events: poll until the read model shows the change (bounded).
async function waitForScores(id, done) {
  for (let n = 0; n < 40; n++) {
    const r = await api(`/api/traces/${id}`);
    if (r.status === 200 && done(r.body.scores || {})) {
      if (reader.current === id) scoreList(r.body.scores, id);
      refreshList();
      return true;
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  return false;
}

async function recordScore(ev) {
  ev.preventDefault();
  const id = reader.current;
  const name = $('s-name').value.trim();
  const value = Number($('s-value').value);
  const source = $('s-source').value.trim();
  const body = { name, value: $('s-value').value.trim() === '' ? null : value };
  if (source) body.source = source;
  const r = await api(`/api/traces/${id}/scores`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  if (r.status !== 202) {
    $('score-result').textContent = describeError(r.status, r.body);
    return;
  }
  $('score-result').textContent = `recorded ${name} = ${value}`;
  await waitForScores(id, (got) => got[name] && got[name].value === value);
}

async function deleteCurrent() {
  const id = reader.current;
  if (!id) return;
  $('confirm-id').textContent = id;
  const dialog = $('confirm-delete');
  dialog.returnValue = '';
  dialog.showModal();
  dialog.addEventListener('close', async function onClose() {
    dialog.removeEventListener('close', onClose);
    if (dialog.returnValue !== 'delete') return;
    const r = await api(`/api/traces/${id}`, { method: 'DELETE' });
    if (r.status === 202) {
      go('/', currentFilters());
      $('list-status').textContent = `deleted ${id}`;
      // The list view drops it once the projector applied the tombstone.
      for (let n = 0; n < 20; n++) {
        await refreshList();
        if (!document.querySelector(`#list tr[data-id="${id}"]`)) break;
        await new Promise((ok) => setTimeout(ok, 250));
      }
    } else {
      $('list-status').textContent = `delete failed: ${describeError(r.status, r.body)}`;
    }
  });
}

function compareWith(ev) {
  ev.preventDefault();
  const other = $('compare-other').value.trim();
  if (reader.current && other) go('/compare', new URLSearchParams({ base: reader.current, other }));
}

// Expand or fold every step.
function setAllOpen(open) {
  for (const d of $('d-steps').querySelectorAll('details.step-body')) d.open = open;
}

export function wireTrace() {
  $('delete').addEventListener('click', deleteCurrent);
  $('score-form').addEventListener('submit', recordScore);
  $('compare-form').addEventListener('submit', compareWith);
  $('expand-all').addEventListener('click', () => setAllOpen(true));
  $('fold-all').addEventListener('click', () => setAllOpen(false));
}
