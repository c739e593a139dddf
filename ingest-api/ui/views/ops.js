// Operations (#/ops): is the pipeline keeping up? Live and read-only, from GET /api/pipeline
// every 3 s while the view is open: the ingest rate (events appended per second, from the
// topic's end between two readings), each consumer's lag and last position write, the newest
// listed trace's age, dead letters, broker and database health, bulk deletions' progress.
import { $, el, fmtTime } from '../lib/dom.js';
import { api, describeError } from '../lib/api.js';

let previous = null;
let timer = null;
let seq = 0;

function ago(iso, now) {
  if (!iso) return '—';
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  return s < 90 ? `${s.toFixed(s < 10 ? 1 : 0)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function card(id, value, cls) {
  const e = $(id);
  e.textContent = value;
  e.className = `value ${cls ?? ''}`;
}

async function refresh() {
  const mine = ++seq;
  const r = await api('/api/pipeline').catch((e) => ({ status: 0, body: { detail: String(e) } }));
  if (mine !== seq) return;
  if (r.status !== 200) { $('ops-status').textContent = describeError(r.status, r.body); return; }
  const s = r.body;
  const now = Date.parse(s.checked_at);
  card('ops-broker', s.broker, s.broker === 'ok' ? 'ok' : 'bad');
  card('ops-database', s.database, s.database === 'ok' ? 'ok' : 'bad');
  if (s.topic && previous?.topic && now > previous.at) {
    const rate = (s.topic.end_offsets - previous.topic) / ((now - previous.at) / 1000);
    card('ops-rate', `${rate.toFixed(rate < 10 ? 1 : 0)} /s`);
  } else if (!s.topic) {
    card('ops-rate', '—');
  }
  previous = s.topic ? { topic: s.topic.end_offsets, at: now } : null;
  card('ops-events', s.topic ? s.topic.end_offsets.toLocaleString() : '—');
  card('ops-dlq', s.dead_letters ? s.dead_letters.records.toLocaleString() : '—', s.dead_letters?.records ? 'warn' : 'ok');
  card('ops-newest', ago(s.newest_listed_at, now));
  const consumers = $('ops-consumers').querySelector('tbody');
  consumers.replaceChildren(...(s.consumers ?? []).map((c) => {
    const tr = el('tr', {},
      el('td', { className: 'nowrap', textContent: c.service }),
      el('td', { className: 'nowrap', textContent: c.target }),
      el('td', { className: `nowrap num ${c.lag === 0 ? 'ok' : c.lag > 0 ? 'warn' : ''}`, textContent: c.lag == null ? '—' : c.lag === 0 ? 'caught up' : `${c.lag.toLocaleString()} events` }),
      el('td', { className: 'nowrap num', textContent: ago(c.positions_updated_at, now) }));
    tr.dataset.testid = `ops-consumer-${c.service}`;
    return tr;
  }));
  const deletions = $('ops-deletions').querySelector('tbody');
  deletions.replaceChildren(...(s.deletions ?? []).map((d) => {
    const pct = d.matched ? Math.round((d.deleted / d.matched) * 100) : 100;
    const bar = el('div', { className: 'bar' }, el('span', { className: 'fill' }));
    bar.firstChild.style.width = `${pct}%`;
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-label', `deletion ${d.id}`);
    bar.setAttribute('aria-valuenow', String(pct));
    const tr = el('tr', {},
      el('td', { className: 'nowrap' }, el('code', { textContent: d.id })),
      el('td', { className: 'nowrap', textContent: d.state }),
      el('td', { className: 'nowrap num', textContent: `${d.deleted.toLocaleString()} of ${d.matched.toLocaleString()}` }),
      el('td', { className: 'timeline' }, bar),
      el('td', { className: 'nowrap num', textContent: fmtTime(d.updated_at) }));
    tr.dataset.testid = 'ops-deletion';
    return tr;
  }));
  $('ops-deletions-empty').hidden = (s.deletions ?? []).length > 0;
  $('ops-status').textContent = `as of ${fmtTime(s.checked_at)}; refreshed every 3 s`;
}

export function showOps() {
  clearInterval(timer);
  previous = null;
  refresh();
  timer = setInterval(() => {
    if (document.body.dataset.view === 'ops') refresh(); else clearInterval(timer);
  }, 3000);
}
