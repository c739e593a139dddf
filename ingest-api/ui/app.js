// tunix-rt web UI: plain ES module, no build step. Served by ingest-api from /ui/app.js.
//
// Every view has its own URL (hash routes, so they never collide with the API's paths):
//   #/?q=…&meta.run=17&tag=math&score.correct=1   the list with its search and filters
//   #/trace/<id>?<list filters>                   one trace (the list keeps its filters)
//   #/compare?base=<id>&other=<id>                two traces side by side
//   #/datasets                                    the datasets, with downloads
// The back button walks these states; a link can be shared.
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};
const state = {
  cursors: [null], page: 0, nextCursor: null, timer: null, current: null, listKey: null, picked: [],
  listSeq: 0, shownList: null,  // the newest list request, and the query whose rows are on screen
};
const FOLD_AT = 600; // characters: longer step contents are folded

function headers(extra = {}) {
  const h = { ...extra };
  const key = $('api-key').value.trim();
  if (key) h['Authorization'] = `Bearer ${key}`;
  return h;
}

async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: headers(options.headers) });
  let body = null;
  const text = await resp.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  return { status: resp.status, body, headers: resp.headers };
}

function formatLoc(loc) {
  // ["body","steps",3,"content"] -> body.steps[3].content
  return (loc || []).map((p, n) => (typeof p === 'number' ? `[${p}]` : n === 0 ? p : `.${p}`)).join('');
}

function describeError(status, body) {
  if (body && typeof body.detail === 'string') return `${status}: ${body.detail}`;
  if (body && Array.isArray(body.detail)) return `${status}: ${body.detail.map((d) => `${formatLoc(d.loc)}: ${d.msg}`).join('; ')}`;
  return `${status}`;
}

// ---- routing ------------------------------------------------------------------------------
// List filters live in the hash's query: q, trace_version, created_after, created_before, and
// repeatable meta.*, tag, score.*.
const LIST_KEYS = ['q', 'trace_version', 'created_after', 'created_before'];
const isChip = (k) => k.startsWith('meta.') || k === 'tag' || k.startsWith('score.');

function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  return { path, params };
}

function listParams(params) {
  const out = new URLSearchParams();
  for (const [k, v] of params) if (LIST_KEYS.includes(k) || isChip(k)) out.append(k, v);
  return out;
}

function go(path, params) {
  const query = params && [...params].length ? `?${params}` : '';
  const target = `#${path}${query}`;
  if (location.hash === target) route(); else location.hash = target;
}

async function route() {
  const { path, params } = parseHash();
  const filters = listParams(params);
  showFilters(filters);
  const key = filters.toString();
  if (key !== state.listKey) {
    state.listKey = key;
    state.cursors = [null];
    state.page = 0;
  }
  refreshList();
  $('compare-panel').hidden = path !== '/compare';
  if (path.startsWith('/trace/')) {
    await openTrace(decodeURIComponent(path.slice('/trace/'.length)));
  } else {
    $('detail-panel').hidden = true;
    state.current = null;
  }
  if (path === '/compare') await showCompare(params.get('base'), params.get('other'));
  $('datasets-panel').hidden = path !== '/datasets';
  if (path === '/datasets') await refreshDatasets();
}

// ---- datasets -----------------------------------------------------------------------------
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

async function refreshDatasets() {
  const r = await api('/api/datasets');
  const tbody = $('datasets').querySelector('tbody');
  tbody.replaceChildren();
  if (r.status !== 200) {
    $('datasets-status').textContent = describeError(r.status, r.body);
    return;
  }
  $('datasets-status').textContent = r.body.length ? '' : 'no datasets yet: save a search from the list';
  for (const d of r.body) {
    const split = el('select', {}, ...['all', 'train', 'eval'].map((s) => el('option', { value: s, textContent: s })));
    const buttons = FORMATS.map((f) => el('button', {
      type: 'button', textContent: f, onclick: () => download(d, f, split.value),
    }));
    buttons.forEach((b) => b.setAttribute('data-testid', `download-${d.name}-${d.version}-${b.textContent}`));
    const row = el('tr', {},
      el('td', { textContent: d.name }), el('td', { textContent: d.version }),
      el('td', { textContent: d.member_count ?? '…' }), el('td', { textContent: d.train_count ?? '…' }),
      el('td', { textContent: d.eval_count ?? '…' }),
      el('td', { textContent: d.created_at ? new Date(d.created_at).toLocaleString() : d.state }),
      el('td', {}, el('code', { textContent: JSON.stringify(d.definition?.filter ?? {}) })),
      el('td', {}, split, ...buttons));
    row.setAttribute('data-testid', `dataset-${d.name}-${d.version}`);
    tbody.append(row);
  }
}

function currentFilters() {
  return listParams(parseHash().params);
}

// ---- health cards -------------------------------------------------------------------------
function setCard(id, text, ok) {
  const e = $(id);
  e.textContent = text;
  e.className = `value ${ok === true ? 'ok' : ok === false ? 'bad' : 'warn'}`;
}

async function refreshHealth() {
  try {
    const h = await api('/api/health');
    if (h.status === 200) {
      setCard('h-status', h.body.status, h.body.status === 'ok');
      setCard('h-broker', h.body.broker, h.body.broker === 'ok');
      setCard('h-database', h.body.database, h.body.database === 'ok');
    } else {
      setCard('h-status', h.status === 401 ? 'needs key' : `HTTP ${h.status}`, null);
    }
    const r = await fetch('/readyz');
    setCard('h-ready', r.status === 200 ? 'ready' : 'not ready', r.status === 200);
  } catch (e) {
    setCard('h-status', 'unreachable', false);
  }
}

// ---- submit -------------------------------------------------------------------------------
function showErrors(items) {
  const ul = $('errors');
  ul.innerHTML = '';
  for (const item of items) {
    if (typeof item === 'string') {
      ul.append(el('li', { textContent: item }));
    } else {
      ul.append(el('li', {}, el('code', { textContent: formatLoc(item.loc) }), ` ${item.msg} (${item.type})`));
    }
  }
}

async function upload() {
  showErrors([]);
  const raw = $('trace-json').value;
  try { JSON.parse(raw); } catch (e) { showErrors([`not valid JSON: ${e.message}`]); return; }
  $('upload-result').textContent = 'uploading…';
  const r = await api('/api/traces', { method: 'POST', body: raw, headers: { 'Content-Type': 'application/json' } });
  if (r.status === 202) {
    const id = r.body.id;
    $('upload-result').innerHTML = '';
    $('upload-result').append('accepted ', el('code', { textContent: id }), ' — waiting until readable…');
    // Read-your-writes: the trace is durable in the topic; wait until the writer stored it.
    const got = await api(`/api/traces/${id}?wait_ms=10000`);
    if (got.status === 200) {
      $('upload-result').lastChild.textContent = ' — stored';
      go(`/trace/${id}`, currentFilters());
    } else {
      $('upload-result').lastChild.textContent = ` — not readable yet (${got.status})`;
    }
  } else if (r.status === 422 && Array.isArray(r.body?.detail)) {
    $('upload-result').textContent = 'rejected: fix the fields below';
    showErrors(r.body.detail);
  } else {
    $('upload-result').textContent = 'failed';
    showErrors([describeError(r.status, r.body)]);
  }
}

async function loadExample() {
  const r = await fetch('/ui/example.json');
  $('trace-json').value = await r.text();
  showErrors([]);
}

function fetchById() {
  const id = $('fetch-id').value.trim();
  if (id) go(`/trace/${encodeURIComponent(id)}`, currentFilters());
}

// ---- one trace ----------------------------------------------------------------------------
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

function stepItem(s) {
  const content = s.content.length > FOLD_AT
    ? el('details', { className: 'content' },
      el('summary', { textContent: `${s.content.slice(0, 240)}… (${s.content.length.toLocaleString()} characters)` }),
      el('div', { className: 'full', textContent: s.content }))
    : el('span', { className: 'content', textContent: s.content });
  const li = el('li', {}, el('span', { className: 'i', textContent: `#${s.i}` }), el('span', { className: 'type', textContent: s.type }), content);
  li.dataset.testid = 'step';
  return li;
}

function scoreList(scores, id) {
  const ul = $('d-scores');
  ul.innerHTML = '';
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

function showTrace(t) {
  state.current = t.id;
  $('detail-panel').hidden = false;
  $('d-id').textContent = t.id;
  $('d-link').href = `#/trace/${t.id}`;
  $('d-created').textContent = new Date(t.created_at).toLocaleString();
  $('d-version').textContent = t.trace_version;
  $('d-stepcount').textContent = `${t.payload.steps.length} steps`;
  $('d-prompt').textContent = t.payload.prompt;
  $('d-answer').textContent = t.payload.final_answer;
  const ol = $('d-steps');
  ol.innerHTML = '';
  for (const s of [...t.payload.steps].sort((a, b) => a.i - b.i)) ol.append(stepItem(s));
  const meta = $('d-meta');
  meta.innerHTML = '';
  meta.append(t.payload.meta == null ? el('span', { className: 'muted', textContent: 'none' }) : jsonNode(t.payload.meta));
  scoreList(t.scores, t.id);
  showRun(t);
  $('score-result').textContent = '';
  $('detail-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

// ---- runs: every inference call of one OTel trace (traces from the OTLP intake) ------------
const RUN_MAX = 50;

// The trace's siblings (same meta.otel.trace_id) in start-time order, each a link; hidden for
// traces that did not come from OTLP. The list API has no meta, so each sibling is fetched.
async function showRun(t) {
  const section = $('d-run');
  section.hidden = true;
  const otel = t.payload.meta && typeof t.payload.meta === 'object' ? t.payload.meta.otel : null;
  const traceId = otel && typeof otel.trace_id === 'string' ? otel.trace_id : null;
  if (!traceId) return;
  const r = await api(`/api/traces?limit=${RUN_MAX}&meta.otel.trace_id=${encodeURIComponent(traceId)}`);
  if (state.current !== t.id || r.status !== 200) return;
  const calls = await Promise.all(r.body.data.map((row) => (row.id === t.id
    ? t : api(`/api/traces/${encodeURIComponent(row.id)}`).then((x) => (x.status === 200 ? x.body : null)))));
  if (state.current !== t.id) return;
  const runOf = (c) => (c.payload.meta && c.payload.meta.otel) || {};
  const sorted = calls.filter(Boolean).sort((a, b) => String(runOf(a).start_time ?? '').localeCompare(String(runOf(b).start_time ?? '')));
  const ol = $('d-run-list');
  ol.innerHTML = '';
  for (const c of sorted) {
    const o = runOf(c);
    const model = c.payload.meta.gen_ai?.request?.model ?? '';
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
  $('d-run-all').href = `#/?meta.otel.trace_id=${encodeURIComponent(traceId)}`;
  $('d-run-note').textContent = r.body.pagination.next_cursor ? `the first ${RUN_MAX} calls; the link lists them all` : '';
  section.hidden = false;
}

async function openTrace(id) {
  const r = await api(`/api/traces/${encodeURIComponent(id)}`);
  if (r.status === 200) {
    $('fetch-result').textContent = '';
    showTrace(r.body);
  } else {
    $('detail-panel').hidden = true;
    $('fetch-result').textContent = describeError(r.status, r.body);
  }
}

// Scores are events: poll until the read model shows the change (bounded).
async function waitForScores(id, done) {
  for (let n = 0; n < 40; n++) {
    const r = await api(`/api/traces/${id}`);
    if (r.status === 200 && done(r.body.scores || {})) {
      if (state.current === id) scoreList(r.body.scores, id);
      refreshList();
      return true;
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  return false;
}

async function recordScore(ev) {
  ev.preventDefault();
  const id = state.current;
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
  const id = state.current;
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

// ---- compare ------------------------------------------------------------------------------
function side(t, label) {
  const steps = el('ol', { className: 'steps' });
  for (const s of [...t.payload.steps].sort((a, b) => a.i - b.i)) steps.append(stepItem(s));
  const link = el('a', { href: `#/trace/${t.id}`, textContent: t.id });
  return el('div', { className: 'side' },
    el('h3', { textContent: label }),
    el('p', {}, el('code', {}, link), el('br'), el('span', { className: 'muted', textContent: `${new Date(t.created_at).toLocaleString()} · version ${t.trace_version}` })),
    el('p', { className: 'big' }, 'baseline score ', el('b', { className: 'score', textContent: String(t.score) })),
    el('h3', { textContent: 'Prompt' }), el('pre', { className: 'text', textContent: t.payload.prompt }),
    el('h3', { textContent: `Reasoning (${t.payload.steps.length} steps)` }), steps,
    el('h3', { textContent: 'Final answer' }), el('pre', { className: 'text answer', textContent: t.payload.final_answer }));
}

async function showCompare(base, other) {
  $('compare-panel').hidden = false;
  $('c-base').innerHTML = '';
  $('c-other').innerHTML = '';
  const r = await api(`/api/traces/compare?${new URLSearchParams({ base: base || '', other: other || '' })}`);
  if (r.status !== 200) {
    $('compare-status').textContent = describeError(r.status, r.body);
    return;
  }
  $('compare-status').textContent = '';
  $('c-base').append(side(r.body.base, 'Base'));
  $('c-other').append(side(r.body.other, 'Other'));
  $('compare-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function compareWith(ev) {
  ev.preventDefault();
  const other = $('compare-other').value.trim();
  if (state.current && other) go('/compare', new URLSearchParams({ base: state.current, other }));
}

function comparePicked() {
  if (state.picked.length === 2) go('/compare', new URLSearchParams({ base: state.picked[0], other: state.picked[1] }));
}

// ---- list ---------------------------------------------------------------------------------
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

function showFilters(filters) {
  showInput('f-q', filters.get('q') || '');
  showInput('f-version', filters.get('trace_version') || '');
  showInput('f-after', fromIso(filters.get('created_after')));
  showInput('f-before', fromIso(filters.get('created_before')));
  const chips = $('chips');
  chips.innerHTML = '';
  for (const [k, v] of filters) {
    if (!isChip(k)) continue;
    const remove = el('button', { type: 'button', className: 'link', textContent: '×', title: 'remove this filter' });
    remove.addEventListener('click', () => {
      const next = new URLSearchParams([...currentFilters()].filter(([k2, v2]) => !(k2 === k && v2 === v)));
      go('/', next);
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

function fmtBytes(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

function scoreBadges(scores) {
  return Object.keys(scores || {}).sort().map((name) => `${name} ${scores[name].value}`).join(' · ');
}

function updatePicked() {
  $('compare-selected').disabled = state.picked.length !== 2;
}

async function refreshList() {
  const p = currentFilters();
  p.set('limit', '20');
  const cursor = state.cursors[state.page];
  if (cursor) p.set('cursor', cursor);
  const query = p.toString();
  // Refreshes overlap (a filter change while the auto-refresh is in flight): only the newest
  // request may draw, or an older answer would put back rows the current filters exclude.
  const seq = ++state.listSeq;
  const r = await api(`/api/traces?${query}`).catch((e) => ({ status: 0, body: { detail: `network error: ${e}` } }));
  if (seq !== state.listSeq) return;
  const tbody = document.querySelector('#list tbody');
  if (r.status !== 200) {
    // Rows of another query must not stand under these filters; a failed refresh of the same
    // query keeps its rows (a passing 503 should not blank the list).
    if (state.shownList !== query) { tbody.innerHTML = ''; state.shownList = null; }
    $('list-status').textContent = describeError(r.status, r.body);
    return;
  }
  state.shownList = query;
  tbody.innerHTML = '';
  for (const item of r.body.data) {
    const tr = el('tr');
    tr.dataset.id = item.id;
    tr.dataset.testid = 'list-row';
    const pick = el('input', { type: 'checkbox', checked: state.picked.includes(item.id), title: 'select to compare' });
    pick.dataset.testid = 'compare-check';
    pick.addEventListener('click', (e) => e.stopPropagation());
    pick.addEventListener('change', () => {
      state.picked = state.picked.filter((x) => x !== item.id);
      if (pick.checked) state.picked.push(item.id);
      state.picked = state.picked.slice(-2);
      updatePicked();
      refreshList();
    });
    tr.append(el('td', { className: 'pick' }, pick));
    const scores = scoreBadges(item.scores);
    for (const text of [new Date(item.created_at).toLocaleString(), item.trace_version, item.step_count, item.prompt_preview, scores, fmtBytes(item.payload_bytes)]) {
      tr.append(el('td', { textContent: String(text), title: String(text) }));
    }
    tr.addEventListener('click', () => go(`/trace/${item.id}`, currentFilters()));
    tbody.append(tr);
  }
  state.nextCursor = r.body.pagination.next_cursor;
  $('older').disabled = !state.nextCursor;
  $('newest').disabled = state.page === 0;
  $('list-status').textContent = `page ${state.page + 1}${r.body.data.length ? '' : ' (nothing matches)'}`;
}

function older() {
  if (!state.nextCursor) return;
  state.cursors = state.cursors.slice(0, state.page + 1);
  state.cursors.push(state.nextCursor);
  state.page += 1;
  refreshList();
}

function newest() {
  state.cursors = [null];
  state.page = 0;
  refreshList();
}

function setAutoRefresh() {
  clearInterval(state.timer);
  if ($('auto-refresh').checked) {
    state.timer = setInterval(() => { if (state.page === 0) refreshList(); refreshHealth(); }, 3000);
  }
}

// ---- wiring -------------------------------------------------------------------------------
$('api-key').value = localStorage.getItem('tunix-api-key') || '';
$('api-key').addEventListener('change', () => { localStorage.setItem('tunix-api-key', $('api-key').value.trim()); refreshHealth(); newest(); });
$('load-example').addEventListener('click', loadExample);
$('upload').addEventListener('click', upload);
$('fetch').addEventListener('click', fetchById);
$('fetch-id').addEventListener('keydown', (e) => { if (e.key === 'Enter') fetchById(); });
$('delete').addEventListener('click', deleteCurrent);
$('search-form').addEventListener('submit', applyFilters);
for (const id of ['f-version', 'f-after', 'f-before']) $(id).addEventListener('change', applyFilters);
for (const id of FILTER_INPUTS) $(id).addEventListener('input', () => { $(id).dataset.dirty = '1'; });
$('chip-form').addEventListener('submit', addChip);
$('score-form').addEventListener('submit', recordScore);
$('compare-form').addEventListener('submit', compareWith);
$('compare-selected').addEventListener('click', comparePicked);
$('older').addEventListener('click', older);
$('newest').addEventListener('click', newest);
$('auto-refresh').addEventListener('change', setAutoRefresh);
$('dataset-form').addEventListener('submit', saveDataset);
window.addEventListener('hashchange', route);
refreshHealth();
route();
setAutoRefresh();
