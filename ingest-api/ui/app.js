// tunix-rt web UI: plain ES module, no build step. Served by ingest-api from /ui/app.js.
const $ = (id) => document.getElementById(id);
const state = { cursors: [null], page: 0, nextCursor: null, timer: null, current: null };

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

function describeError(status, body) {
  if (body && typeof body.detail === 'string') return `${status}: ${body.detail}`;
  return `${status}`;
}

// ---- health cards -------------------------------------------------------------------------
function setCard(id, text, ok) {
  const el = $(id);
  el.textContent = text;
  el.className = `value ${ok === true ? 'ok' : ok === false ? 'bad' : 'warn'}`;
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
    const li = document.createElement('li');
    if (typeof item === 'string') {
      li.textContent = item;
    } else {
      const code = document.createElement('code');
      code.textContent = formatLoc(item.loc);
      li.append(code, ` ${item.msg} (${item.type})`);
    }
    ul.append(li);
  }
}

function formatLoc(loc) {
  // ["body","steps",3,"content"] -> body.steps[3].content
  return (loc || []).map((p, n) => (typeof p === 'number' ? `[${p}]` : n === 0 ? p : `.${p}`)).join('');
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
    $('upload-result').append('accepted ', Object.assign(document.createElement('code'), { textContent: id }), ' — waiting until readable…');
    $('upload-result').dataset.id = id;
    // Read-your-writes: the trace is durable in the topic; wait until the writer stored it.
    const got = await api(`/api/traces/${id}?wait_ms=10000`);
    if (got.status === 200) {
      $('upload-result').lastChild.textContent = ' — stored';
      showTrace(got.body);
      refreshList();
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

async function fetchById() {
  const id = $('fetch-id').value.trim();
  if (!id) return;
  await openTrace(id);
}

async function openTrace(id) {
  const r = await api(`/api/traces/${encodeURIComponent(id)}`);
  if (r.status === 200) {
    $('fetch-result').textContent = '';
    showTrace(r.body);
  } else {
    $('fetch-result').textContent = describeError(r.status, r.body);
  }
}

// ---- detail -------------------------------------------------------------------------------
function jsonNode(value, key) {
  const span = (cls, text) => Object.assign(document.createElement('span'), { className: cls, textContent: text });
  const label = key === undefined ? [] : [span('k', JSON.stringify(key)), ': '];
  if (value !== null && typeof value === 'object') {
    const isArray = Array.isArray(value);
    const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
    const details = document.createElement('details');
    details.open = true;
    const summary = document.createElement('summary');
    summary.append(...label, isArray ? `[${entries.length}]` : `{${entries.length}}`);
    details.append(summary);
    for (const [k, v] of entries) details.append(jsonNode(v, isArray ? undefined : k));
    return details;
  }
  const div = document.createElement('div');
  const cls = typeof value === 'string' ? 's' : typeof value === 'number' ? 'n' : 'b';
  div.append(...label, span(cls, JSON.stringify(value)));
  return div;
}

function showTrace(t) {
  state.current = t.id;
  $('detail-panel').hidden = false;
  $('d-id').textContent = t.id;
  $('d-created').textContent = new Date(t.created_at).toLocaleString();
  $('d-version').textContent = t.trace_version;
  $('d-prompt').textContent = t.payload.prompt;
  $('d-answer').textContent = t.payload.final_answer;
  const ol = $('d-steps');
  ol.innerHTML = '';
  const steps = [...t.payload.steps].sort((a, b) => a.i - b.i);
  for (const s of steps) {
    const li = document.createElement('li');
    li.dataset.testid = 'step';
    li.append(
      Object.assign(document.createElement('span'), { className: 'i', textContent: `#${s.i}` }),
      Object.assign(document.createElement('span'), { className: 'type', textContent: s.type }),
      Object.assign(document.createElement('span'), { className: 'content', textContent: s.content }),
    );
    ol.append(li);
  }
  const meta = $('d-meta');
  meta.innerHTML = '';
  meta.append(t.payload.meta == null ? Object.assign(document.createElement('span'), { className: 'muted', textContent: 'none' }) : jsonNode(t.payload.meta));
  $('detail-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
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
      $('detail-panel').hidden = true;
      state.current = null;
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

// ---- list ---------------------------------------------------------------------------------
function toIso(localValue) {
  return localValue ? new Date(localValue).toISOString() : '';
}

function listQuery() {
  const p = new URLSearchParams({ limit: '20' });
  const version = $('f-version').value.trim();
  if (version) p.set('trace_version', version);
  const after = toIso($('f-after').value);
  if (after) p.set('created_after', after);
  const before = toIso($('f-before').value);
  if (before) p.set('created_before', before);
  const cursor = state.cursors[state.page];
  if (cursor) p.set('cursor', cursor);
  return p;
}

function fmtBytes(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

async function refreshList() {
  const r = await api(`/api/traces?${listQuery()}`);
  const tbody = document.querySelector('#list tbody');
  if (r.status !== 200) {
    $('list-status').textContent = describeError(r.status, r.body);
    if (Array.isArray(r.body?.detail)) $('list-status').textContent = r.body.detail.map((d) => `${formatLoc(d.loc)}: ${d.msg}`).join('; ');
    return;
  }
  tbody.innerHTML = '';
  for (const item of r.body.data) {
    const tr = document.createElement('tr');
    tr.dataset.id = item.id;
    tr.dataset.testid = 'list-row';
    for (const text of [new Date(item.created_at).toLocaleString(), item.trace_version, item.step_count, item.prompt_preview, fmtBytes(item.payload_bytes)]) {
      tr.append(Object.assign(document.createElement('td'), { textContent: String(text), title: String(text) }));
    }
    tr.addEventListener('click', () => openTrace(item.id));
    tbody.append(tr);
  }
  state.nextCursor = r.body.pagination.next_cursor;
  $('older').disabled = !state.nextCursor;
  $('newest').disabled = state.page === 0;
  $('list-status').textContent = `page ${state.page + 1}${r.body.data.length ? '' : ' (empty)'}`;
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
$('apply-filters').addEventListener('click', newest);
$('older').addEventListener('click', older);
$('newest').addEventListener('click', newest);
$('auto-refresh').addEventListener('change', setAutoRefresh);
refreshHealth();
newest();
setAutoRefresh();
