// "Submit a trace": a dialog over any view (pasting JSON is the rarest task).
import { $, el } from '../lib/dom.js';
import { api, describeError, formatLoc } from '../lib/api.js';
import { go, currentFilters } from '../lib/route.js';

function showErrors(items) {
  const ul = $('errors');
  ul.replaceChildren();
  for (const item of items) {
    if (typeof item === 'string') ul.append(el('li', { textContent: item }));
    else ul.append(el('li', {}, el('code', { textContent: formatLoc(item.loc) }), ` ${item.msg} (${item.type})`));
  }
}

async function upload() {
  showErrors([]);
  const raw = $('trace-json').value;
  try { JSON.parse(raw); } catch (e) { showErrors([`not valid JSON: ${e.message}`]); return; }
  const result = $('upload-result');
  result.textContent = 'uploading…';
  const r = await api('/api/traces', { method: 'POST', body: raw, headers: { 'Content-Type': 'application/json' } });
  if (r.status === 202) {
    const id = r.body.id;
    const status = el('span', { textContent: ' — waiting until readable…' });
    result.replaceChildren('accepted ', el('code', { textContent: id }), status);
    // Read-your-writes: the trace is durable in the topic; wait until the writer stored it.
    const got = await api(`/api/traces/${id}?wait_ms=10000`);
    if (got.status === 200) {
      status.textContent = ' — stored';
      $('submit-dialog').close();
      go(`/trace/${id}`, currentFilters());
    } else {
      status.textContent = ` — not readable yet (${got.status})`;
    }
  } else if (r.status === 422 && Array.isArray(r.body?.detail)) {
    result.textContent = 'rejected: fix the fields below';
    showErrors(r.body.detail);
  } else {
    result.textContent = 'failed';
    showErrors([describeError(r.status, r.body)]);
  }
}

async function loadExample() {
  const r = await fetch('/ui/example.json');
  $('trace-json').value = await r.text();
  showErrors([]);
}

export function openSubmit() {
  $('submit-dialog').showModal();
  $('trace-json').focus();
}

export function wireSubmit() {
  $('submit-open').addEventListener('click', openSubmit);
  $('load-example').addEventListener('click', loadExample);
  $('upload').addEventListener('click', upload);
}
