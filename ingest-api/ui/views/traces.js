// Traces: the search, filters and chips, the charts (views/charts.js), the list (full width: created, version, steps, model,
// tags, prompt, scores, size), paging, picking two to compare, and saving the search as a
// dataset. Keyboard: j/k move, Enter opens, / focuses the search.
import { $, el, fmtBytes, fmtTime } from '../lib/dom.js';
import { api, describeError } from '../lib/api.js';
import { go, currentFilters, isChip } from '../lib/route.js';
import { refreshCharts } from './charts.js';

export const list = {
  cursors: [null], page: 0, nextCursor: null, key: null, picked: [],
  seq: 0, shown: null,  // the newest list request, and the query whose rows are on screen
  cursor: -1,           // the row j/k selected
};

function toIso(localValue) {
  return localValue ? new Date(localValue).toISOString() : '';
}

function fromIso(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// Filter inputs the user has typed into since their values were last read into the URL. A
// navigation (e.g. the one a change of the version field starts while the user moves on to the
// search box) must not overwrite what is being typed.
const FILTER_INPUTS = ['f-q', 'f-version', 'f-after', 'f-before'];

function showInput(id, value) {
  const input = $(id);
  if (input.dataset.dirty !== '1') input.value = value;
}

export function showFilters(filters) {
  showInput('f-q', filters.get('q') || '');
  showInput('f-version', filters.get('trace_version') || '');
  showInput('f-after', fromIso(filters.get('created_after')));
  showInput('f-before', fromIso(filters.get('created_before')));
  const chips = $('chips');
  chips.replaceChildren();
  for (const [k, v] of filters) {
    if (!isChip(k)) continue;
    const remove = el('button', { type: 'button', className: 'link', textContent: '×', title: `remove the filter ${k}=${v}` });
    remove.setAttribute('aria-label', `remove the filter ${k}=${v}`);
    remove.addEventListener('click', () => {
      go('/', new URLSearchParams([...currentFilters()].filter(([k2, v2]) => !(k2 === k && v2 === v))));
    });
    const chip = el('span', { className: 'chip' }, `${k}=${v} `, remove);
    chip.dataset.testid = 'chip';
    chips.append(chip);
  }
}

function filtersFromInputs() {
  for (const id of FILTER_INPUTS) delete $(id).dataset.dirty;
  const p = new URLSearchParams();
  const put = (k, v) => { if (v) p.set(k, v); };
  put('q', $('f-q').value.trim());
  put('trace_version', $('f-version').value.trim());
  put('created_after', toIso($('f-after').value));
  put('created_before', toIso($('f-before').value));
  for (const [k, v] of currentFilters()) if (isChip(k)) p.append(k, v);
  return p;
}

function applyFilters(ev) {
  ev?.preventDefault();
  go('/', filtersFromInputs());
}

function addChip(ev) {
  ev.preventDefault();
  const text = $('f-chip').value.trim();
  const eq = text.indexOf('=');
  if (eq < 1) { $('list-status').textContent = 'write a filter as key=value, e.g. meta.run=17, tag=math or score.correct=1'; return; }
  const key = text.slice(0, eq).trim();
  if (!isChip(key)) { $('list-status').textContent = `unknown filter ${key}: use meta.<key>, tag or score.<name>`; return; }
  const p = filtersFromInputs();
  p.append(key, text.slice(eq + 1).trim());
  $('f-chip').value = '';
  go('/', p);
}

function chipList(items, cls) {
  return el('span', { className: 'pills' }, ...items.map((t) => el('span', { className: `pill ${cls}`, textContent: t })));
}

function scoreChips(scores) {
  return chipList(Object.keys(scores || {}).sort().map((name) => `${name} ${scores[name].value}`), 'score');
}

function updatePicked() {
  $('compare-selected').disabled = list.picked.length !== 2;
}

function rowOf(item) {
  const tr = el('tr');
  tr.dataset.id = item.id;
  tr.dataset.testid = 'list-row';
  tr.tabIndex = -1;
  const pick = el('input', { type: 'checkbox', checked: list.picked.includes(item.id), title: 'select to compare' });
  pick.setAttribute('aria-label', `select ${item.id} to compare`);
  pick.dataset.testid = 'compare-check';
  pick.addEventListener('click', (e) => e.stopPropagation());
  pick.addEventListener('change', () => {
    list.picked = list.picked.filter((x) => x !== item.id);
    if (pick.checked) list.picked.push(item.id);
    list.picked = list.picked.slice(-2);
    updatePicked();
    refreshList();
  });
  const open = el('a', { href: `#/trace/${item.id}?${currentFilters()}`, textContent: item.prompt_preview || '(empty)', className: 'open' });
  open.addEventListener('click', (e) => e.stopPropagation());
  tr.append(
    el('td', { className: 'pick' }, pick),
    el('td', { className: 'nowrap num', textContent: fmtTime(item.created_at) }),
    el('td', { className: 'nowrap', textContent: item.trace_version }),
    el('td', { className: 'num', textContent: String(item.step_count) }),
    el('td', { className: 'nowrap', textContent: item.model ?? '' }),
    el('td', {}, chipList(item.tags || [], 'tag')),
    el('td', { className: 'prompt' }, open),
    el('td', {}, scoreChips(item.scores)),
    el('td', { className: 'nowrap num', textContent: fmtBytes(item.payload_bytes) }),
  );
  tr.addEventListener('click', () => go(`/trace/${item.id}`, currentFilters()));
  return tr;
}

export async function refreshList() {
  const p = currentFilters();
  p.set('limit', '20');
  const cursor = list.cursors[list.page];
  if (cursor) p.set('cursor', cursor);
  const query = p.toString();
  // Refreshes overlap (a filter change while the auto-refresh is in flight): only the newest
  // request may draw, or an older answer would put back rows the current filters exclude.
  const seq = ++list.seq;
  const r = await api(`/api/traces?${query}`).catch((e) => ({ status: 0, body: { detail: `network error: ${e}` } }));
  if (seq !== list.seq) return;
  const tbody = $('list').querySelector('tbody');
  if (r.status !== 200) {
    // Rows of another query must not stand under these filters; a failed refresh of the same
    // query keeps its rows (a passing 503 should not blank the list).
    if (list.shown !== query) { tbody.replaceChildren(); list.shown = null; }
    $('list-status').textContent = describeError(r.status, r.body);
    return;
  }
  const selected = tbody.children[list.cursor]?.dataset.id;
  list.shown = query;
  tbody.replaceChildren(...r.body.data.map(rowOf));
  list.cursor = selected ? r.body.data.findIndex((i) => i.id === selected) : -1;
  markCursor(false);
  list.nextCursor = r.body.pagination.next_cursor;
  $('older').disabled = !list.nextCursor;
  $('newest').disabled = list.page === 0;
  $('list-status').textContent = `page ${list.page + 1}${r.body.data.length ? '' : ' (nothing matches)'}`;
}

function markCursor(focus) {
  const rows = [...$('list').querySelectorAll('tbody tr')];
  rows.forEach((r, n) => r.classList.toggle('cursor', n === list.cursor));
  if (focus && rows[list.cursor]) {
    rows[list.cursor].focus();
    rows[list.cursor].scrollIntoView({ block: 'nearest' });
  }
}

// j/k move the cursor, Enter opens its trace.
export function listKey(e) {
  const rows = $('list').querySelectorAll('tbody tr');
  if (e.key === 'j' || e.key === 'k') {
    if (!rows.length) return false;
    list.cursor = Math.max(0, Math.min(rows.length - 1, list.cursor + (e.key === 'j' ? 1 : -1)));
    markCursor(true);
    return true;
  }
  if (e.key === 'Enter' && rows[list.cursor]) {
    go(`/trace/${rows[list.cursor].dataset.id}`, currentFilters());
    return true;
  }
  if (e.key === '/') {
    $('f-q').focus();
    return true;
  }
  return false;
}

// Shows the list for `filters`; with `charts`, redraws the charts too (the reader shows the list
// behind it without them: a chart costs more than a page).
export function showList(filters, charts = true) {
  showFilters(filters);
  if (charts && $('charts-panel').open) refreshCharts(filters);
  const key = filters.toString();
  if (key !== list.key) {
    list.key = key;
    list.cursors = [null];
    list.page = 0;
    list.cursor = -1;
  }
  return refreshList();
}

function older() {
  if (!list.nextCursor) return;
  list.cursors = list.cursors.slice(0, list.page + 1);
  list.cursors.push(list.nextCursor);
  list.page += 1;
  refreshList();
}

export function newest() {
  list.cursors = [null];
  list.page = 0;
  refreshList();
}

function comparePicked() {
  if (list.picked.length === 2) go('/compare', new URLSearchParams({ base: list.picked[0], other: list.picked[1] }));
}

function fetchById() {
  const id = $('fetch-id').value.trim();
  if (id) go(`/trace/${encodeURIComponent(id)}`, currentFilters());
}

async function saveDataset(ev) {
  ev.preventDefault();
  const filter = {};
  for (const [k, v] of currentFilters()) {
    if (k in filter) filter[k] = [].concat(filter[k], v); else filter[k] = v;
  }
  const body = { name: $('ds-name').value.trim(), version: $('ds-version').value.trim(), filter, selection: 'latest' };
  const limit = $('ds-limit').value.trim();
  if (limit) body.limit = Number(limit);
  const evalFraction = $('ds-eval').value.trim();
  if (evalFraction) body.split = { eval_fraction: Number(evalFraction), seed: 0 };
  $('dataset-result').textContent = 'saving…';
  const r = await api('/api/datasets', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  if (r.status >= 200 && r.status < 300) {
    const d = r.body;
    $('dataset-result').textContent = `${d.name}@${d.version}: ${d.member_count ?? '…'} traces (${d.train_count ?? '…'} train, ${d.eval_count ?? '…'} eval), ${d.state}`;
  } else {
    $('dataset-result').textContent = describeError(r.status, r.body);
  }
}

export function wireTraces() {
  // The charts stay open or closed as the user left them.
  $('charts-panel').open = localStorage.getItem('tunix-charts') !== 'closed';
  $('charts-panel').addEventListener('toggle', () => {
    localStorage.setItem('tunix-charts', $('charts-panel').open ? 'open' : 'closed');
    if ($('charts-panel').open) refreshCharts(currentFilters());
  });
  $('fetch').addEventListener('click', fetchById);
  $('fetch-id').addEventListener('keydown', (e) => { if (e.key === 'Enter') fetchById(); });
  $('search-form').addEventListener('submit', applyFilters);
  for (const id of ['f-version', 'f-after', 'f-before']) $(id).addEventListener('change', applyFilters);
  for (const id of FILTER_INPUTS) $(id).addEventListener('input', () => { $(id).dataset.dirty = '1'; });
  $('chip-form').addEventListener('submit', addChip);
  $('compare-selected').addEventListener('click', comparePicked);
  $('older').addEventListener('click', older);
  $('newest').addEventListener('click', newest);
  $('dataset-form').addEventListener('submit', saveDataset);
}
