// Datasets: every frozen dataset with its filter and counts, and downloads in each format.
import { $, el, fmtBytes, fmtTime } from '../lib/dom.js';
import { api, headers, describeError } from '../lib/api.js';

const FORMATS = ['trace', 'tunix_sft', 'training_example', 'chat', 'parquet'];

async function download(d, format, split) {
  // fetch, not a plain link, so the API key travels in the Authorization header.
  const path = `/api/datasets/${encodeURIComponent(d.name)}/${encodeURIComponent(d.version)}/export?format=${format}&split=${split}`;
  $('datasets-status').textContent = `downloading ${d.name}@${d.version} ${format} (${split})…`;
  const resp = await fetch(path, { headers: headers() });
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch { /* not JSON */ }
    $('datasets-status').textContent = describeError(resp.status, body);
    return;
  }
  const blob = await resp.blob();
  const omitted = resp.headers.get('x-tunix-omitted') || '0';
  const ext = format === 'parquet' ? 'parquet' : `${format}.jsonl`;
  const a = el('a', { href: URL.createObjectURL(blob), download: `${d.name}-${d.version}-${split}.${ext}` });
  document.body.append(a);
  a.click();
  a.remove();
  $('datasets-status').textContent = `downloaded ${fmtBytes(blob.size)}; ${omitted} member(s) omitted (trace deleted)`;
}

export async function refreshDatasets() {
  const r = await api('/api/datasets');
  const tbody = $('datasets').querySelector('tbody');
  tbody.replaceChildren();
  if (r.status !== 200) {
    $('datasets-status').textContent = describeError(r.status, r.body);
    return;
  }
  $('datasets-status').textContent = r.body.length ? '' : 'no datasets yet: save a search from the traces view';
  for (const d of r.body) {
    const split = el('select', {}, ...['all', 'train', 'eval'].map((s) => el('option', { value: s, textContent: s })));
    split.setAttribute('aria-label', `split of ${d.name}@${d.version} to download`);
    const buttons = FORMATS.map((f) => el('button', {
      type: 'button', textContent: f, onclick: () => download(d, f, split.value),
    }));
    buttons.forEach((b) => b.setAttribute('data-testid', `download-${d.name}-${d.version}-${b.textContent}`));
    const row = el('tr', {},
      el('td', { className: 'nowrap', textContent: d.name }), el('td', { className: 'nowrap', textContent: d.version }),
      el('td', { className: 'num', textContent: d.member_count ?? '…' }), el('td', { className: 'num', textContent: d.train_count ?? '…' }),
      el('td', { className: 'num', textContent: d.eval_count ?? '…' }),
      el('td', { className: 'nowrap num', textContent: d.created_at ? fmtTime(d.created_at) : d.state }),
      el('td', { className: 'filter' }, el('code', { textContent: JSON.stringify(d.definition?.filter ?? {}) })),
      el('td', { className: 'downloads' }, split, ...buttons));
    row.setAttribute('data-testid', `dataset-${d.name}-${d.version}`);
    tbody.append(row);
  }
}
