// Charts above the list, for the list's current filter (GET /api/traces/stats): traces per hour
// or day, a histogram per score name, and token usage by model. Drawn whenever the list view is
// shown and every 30 s with auto-refresh. A bar of the volume chart narrows the list to its hour or
// day; a histogram bin, to its score range. Above 25,000 matches the API estimates from a sample,
// and the summary says so.
import { $, el } from '../lib/dom.js';
import { api, describeError } from '../lib/api.js';
import { go, currentFilters } from '../lib/route.js';
import { svgBars, fmtCount, bucketLabel } from '../lib/chart.js';

const charts = { seq: 0 };  // the newest request: only it may draw

// The current filters and `extra` ones; a time bound only ever narrows (a bucket the current
// bounds cut keeps them).
function narrowed(extra) {
  const p = currentFilters();
  for (const [k, v] of extra) {
    const had = p.get(k);
    if (k === 'created_after') p.set(k, had && Date.parse(had) > Date.parse(v) ? had : v);
    else if (k === 'created_before') p.set(k, had && Date.parse(had) < Date.parse(v) ? had : v);
    else p.append(k, v);
  }
  return p;
}

function card(testid, title, ...body) {
  const c = el('section', { className: 'chart' }, el('h3', { textContent: title }), ...body);
  c.dataset.testid = testid;
  return c;
}

function volumeCard(s) {
  const unit = s.bucket === 'hour' ? 'hour' : 'day';
  const width = unit === 'hour' ? 3600e3 : 86400e3;
  const total = s.volume.reduce((n, b) => n + b.count, 0);
  const max = Math.max(0, ...s.volume.map((b) => b.count));
  const bars = s.volume.map((b) => ({ value: b.count, title: `${bucketLabel(b.start, s.bucket)}: ${b.count.toLocaleString()} traces` }));
  const c = card('chart-volume', `Traces per ${unit} (UTC)`);
  c.dataset.total = String(total);
  c.dataset.buckets = String(s.volume.length);
  if (!s.volume.length) {
    const why = s.exact ? 'nothing matches' : 'the sample holds none of the matches: narrow the filter (up to 25,000 matches are charted exactly)';
    c.append(el('p', { className: 'muted', textContent: why }));
    return c;
  }
  c.append(
    el('div', { className: 'chart-max muted', textContent: `max ${fmtCount(max)} per ${unit}` }),
    svgBars(bars, {
      label: `Traces per ${unit}: ${s.volume.length} ${unit}s, ${total.toLocaleString()} traces, at most ${max.toLocaleString()} in one ${unit}`,
      onPick: (i) => {
        const start = new Date(s.volume[i].start);
        go('/', narrowed([['created_after', start.toISOString()], ['created_before', new Date(start.getTime() + width).toISOString()]]));
      },
    }),
    el('div', { className: 'chart-axis muted' },
      el('span', { textContent: bucketLabel(s.volume[0].start, s.bucket) }),
      el('span', { textContent: bucketLabel(s.volume[s.volume.length - 1].start, s.bucket) })),
  );
  return c;
}

function scoresCard(s) {
  const c = card('chart-scores', 'Scores');
  if (!s.scores.length) { c.append(el('p', { className: 'muted', textContent: 'no scores among these traces' })); return c; }
  const list = el('div', { className: 'histograms' });
  for (const h of s.scores) {
    const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
    const bars = h.bins.map((b, i) => ({
      value: b.count,
      title: `${h.name} ${fmt(b.from)}–${fmt(b.to)}${i === h.bins.length - 1 ? ' (inclusive)' : ''}: ${b.count.toLocaleString()}`,
    }));
    const item = el('div', { className: 'histogram' },
      el('div', { className: 'row spread' },
        el('strong', { textContent: h.name }),
        el('span', { className: 'muted', textContent: `n ${fmtCount(h.count)} · mean ${fmt(h.mean)} · ${fmt(h.min)}–${fmt(h.max)}` })),
      svgBars(bars, {
        label: `${h.name}: ${h.count} values from ${h.min} to ${h.max}, mean ${fmt(h.mean)}`,
        height: 44,
        onPick: (i) => {
          const b = h.bins[i];
          const last = i === h.bins.length - 1;
          go('/', narrowed([[`score.${h.name}`, `gte:${b.from}`], [`score.${h.name}`, `${last ? 'lte' : 'lt'}:${b.to}`]]));
        },
      }));
    item.dataset.testid = 'chart-score';
    item.dataset.name = h.name;
    list.append(item);
  }
  c.append(list);
  if (s.scores_truncated) c.append(el('p', { className: 'muted', textContent: 'more score names than shown' }));
  return c;
}

function modelsCard(s) {
  const c = card('chart-models', 'Tokens by model');
  const used = s.models.filter((m) => m.input_tokens + m.output_tokens > 0);
  if (!used.length) {
    c.append(el('p', { className: 'muted', textContent: 'no token usage in these traces\u2019 meta (gen_ai.usage.input_tokens, output_tokens)' }));
    return c;
  }
  const top = Math.max(...used.map((m) => m.input_tokens + m.output_tokens));
  for (const m of used) {
    const bar = el('div', { className: 'stack' },
      el('span', { className: 'in' }),
      el('span', { className: 'out' }));
    bar.children[0].style.width = `${(m.input_tokens / top) * 100}%`;
    bar.children[1].style.width = `${(m.output_tokens / top) * 100}%`;
    bar.setAttribute('role', 'img');
    bar.setAttribute('aria-label', `${m.model ?? 'no model'}: ${m.input_tokens} input and ${m.output_tokens} output tokens`);
    const row = el('div', { className: 'model' },
      el('div', { className: 'row spread' },
        el('span', { className: 'name', textContent: m.model ?? '(no model)' }),
        el('span', { className: 'muted', textContent: `${fmtCount(m.input_tokens)} in · ${fmtCount(m.output_tokens)} out · ${fmtCount(m.traces)} traces` })),
      bar);
    row.dataset.testid = 'chart-model';
    c.append(row);
  }
  c.append(el('p', { className: 'legend muted' }, el('span', { className: 'swatch in' }), ' input ', el('span', { className: 'swatch out' }), ' output'));
  return c;
}

// Draws the charts for `filters` (the list's).
export async function refreshCharts(filters) {
  const key = filters.toString();
  const seq = ++charts.seq;
  const summary = $('charts-summary');
  const r = await api(`/api/traces/stats?${key}`).catch((e) => ({ status: 0, body: { detail: `network error: ${e}` } }));
  if (seq !== charts.seq) return;
  const box = $('charts');
  if (r.status !== 200) {
    summary.textContent = `charts unavailable: ${describeError(r.status, r.body)}`;
    box.replaceChildren();
    return;
  }
  const s = r.body;
  summary.dataset.matched = String(s.matched);
  summary.dataset.exact = String(s.exact);
  summary.textContent = s.exact
    ? `${s.matched.toLocaleString()} traces match`
    : `≈ ${fmtCount(s.matched)} traces match (estimated from a ${s.sample_percent < 1 ? s.sample_percent.toFixed(2) : s.sample_percent.toFixed(0)}% sample)`;
  box.replaceChildren(volumeCard(s), scoresCard(s), modelsCard(s));
}
