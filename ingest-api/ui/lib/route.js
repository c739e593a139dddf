// Hash routes, so they never collide with the API's paths. Every view has its own URL:
//   #/?q=…&meta.run=17&tag=math&score.correct=1   traces: the list, its search and filters
//   #/trace/<id>?<list filters>                   the reasoning reader (the list keeps its filters)
//   #/compare?base=<id>&other=<id>                two traces side by side
//   #/datasets                                    datasets, with downloads
//   #/runs, #/runs/<OTel trace id>                an agent run's inference calls (OTLP intake)
//   #/ops                                         operations: ingest rate, lag, dead letters
// The back button walks these states; a link can be shared.

// List filters live in the hash's query: q, trace_version, created_after, created_before, and
// repeatable meta.*, tag, score.*.
export const LIST_KEYS = ['q', 'trace_version', 'created_after', 'created_before'];
export const isChip = (k) => k.startsWith('meta.') || k === 'tag' || k.startsWith('score.');

let onRoute = () => {};
export function setRouter(fn) { onRoute = fn; }

export function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  return { path, params };
}

export function listParams(params) {
  const out = new URLSearchParams();
  for (const [k, v] of params) if (LIST_KEYS.includes(k) || isChip(k)) out.append(k, v);
  return out;
}

export function currentFilters() {
  return listParams(parseHash().params);
}

export function go(path, params) {
  const query = params && [...params].length ? `?${params}` : '';
  const target = `#${path}${query}`;
  if (location.hash === target) onRoute(); else location.hash = target;
}
