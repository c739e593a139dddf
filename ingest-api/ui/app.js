// tunix-rt web UI: plain ES modules, no build step, served by ingest-api from /ui/. This file
// routes (lib/route.js lists the URLs), switches views and wires the keyboard; each view lives
// in views/, shared helpers in lib/ (their pure parts tested by `node --test ingest-api/ui/tests`).
//
// Keyboard: j/k move in the list, Enter opens, Esc goes back (reader → list, dialogs close),
// / searches, n submits a trace.
import { $ } from './lib/dom.js';
import { parseHash, listParams, currentFilters, go, setRouter } from './lib/route.js';
import { showList, refreshList, listKey, newest, wireTraces, list } from './views/traces.js';
import { openTrace, wireTrace, reader } from './views/trace.js';
import { showCompare } from './views/compare.js';
import { refreshDatasets } from './views/datasets.js';
import { showRuns, wireRuns } from './views/runs.js';
import { refreshHealth } from './views/health.js';
import { openSubmit, wireSubmit } from './views/submit.js';
import { showOps } from './views/ops.js';
import { refreshCharts } from './views/charts.js';

const VIEWS = { traces: 'list-panel', trace: 'detail-panel', compare: 'compare-panel', datasets: 'datasets-panel', runs: 'runs-panel', ops: 'ops-panel' };
const NAV = { traces: 'traces', trace: 'traces', compare: 'traces', datasets: 'datasets', runs: 'runs', ops: 'ops' };
let timer = null;

function show(view) {
  for (const [name, id] of Object.entries(VIEWS)) $(id).hidden = name !== view;
  for (const a of document.querySelectorAll('nav.views a')) {
    if (a.dataset.view === NAV[view]) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.body.dataset.view = view;
}

async function route() {
  const { path, params } = parseHash();
  const filters = listParams(params);
  if (path.startsWith('/trace/')) {
    show('trace');
    // The list keeps its filters (the reader marks the search's terms); drawn when shown again.
    if (!(await openTrace(decodeURIComponent(path.slice('/trace/'.length))))) show('traces');
    showList(filters, false);
    return;
  }
  reader.current = null;
  if (path === '/compare') { show('compare'); await showCompare(params.get('base'), params.get('other')); return; }
  if (path === '/datasets') { show('datasets'); await refreshDatasets(); return; }
  if (path === '/ops') { show('ops'); showOps(); return; }
  if (path === '/runs' || path.startsWith('/runs/')) { show('runs'); await showRuns(decodeURIComponent(path.slice('/runs/'.length) || '')); return; }
  show('traces');
  await showList(filters);
}

function typing(e) {
  const t = e.target;
  return t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
}

function onKey(e) {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector('dialog[open]')) return;  // a dialog handles its own Esc
  if (typing(e)) {
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  const view = document.body.dataset.view;
  if (e.key === 'Escape' && view !== 'traces') {
    go('/', currentFilters());
    e.preventDefault();
    return;
  }
  if (e.key === 'n') { openSubmit(); e.preventDefault(); return; }
  if (view === 'traces' && listKey(e)) e.preventDefault();
}

function setAutoRefresh() {
  clearInterval(timer);
  let ticks = 0;
  if ($('auto-refresh').checked) {
    timer = setInterval(() => {
      const onList = document.body.dataset.view === 'traces';
      if (list.page === 0 && onList) refreshList();
      // The charts cost more (up to a sample of 25,000 rows): every tenth tick.
      if (++ticks % 10 === 0 && onList && $('charts-panel').open) refreshCharts(currentFilters());
      refreshHealth();
    }, 3000);
  }
}

$('api-key').value = localStorage.getItem('tunix-api-key') || '';
$('api-key').addEventListener('change', () => { localStorage.setItem('tunix-api-key', $('api-key').value.trim()); refreshHealth(); newest(); });
$('auto-refresh').addEventListener('change', setAutoRefresh);
wireTraces();
wireTrace();
wireRuns();
wireSubmit();
setRouter(route);
window.addEventListener('hashchange', route);
document.addEventListener('keydown', onKey);
refreshHealth();
route();
setAutoRefresh();
