// Charts drawn as inline SVG, no library. The geometry and the labels are pure functions (tested
// with node --test); svgBars() builds the elements (createElementNS, text through textContent:
// model and score names come from traces and are untrusted).

const SVG = 'http://www.w3.org/2000/svg';

// A round axis maximum at or above `max`: 1, 2 or 5 times a power of ten (0 → 1).
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

// 1234 → "1.2k", 5600000 → "5.6M"; below 1000 as is (≈ estimates are rounded alike).
export function fmtCount(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(a >= 1e10 ? 0 : 1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(a >= 1e4 ? 0 : 1)}k`;
  return String(Math.round(n));
}

// A bucket start as shown under the axis: "12-06 14:00" for hours, "2026-12-06" for days. In
// UTC, like the buckets themselves (a local label would put a UTC day on the previous date west
// of Greenwich, and an hour at :30 in some zones); the chart's title says so.
export function bucketLabel(iso, bucket) {
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  const day = `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}`;
  return bucket === 'hour' ? `${day.slice(5)} ${p(d.getUTCHours())}:00` : day;
}

// Bar rectangles for `values` in a `width` × `height` plot: equal slots of at most an eighth of
// the width (a few bars stay bars, centred), a gap of a fifth of a slot (none when slots are
// narrower than 3 px), heights scaled to `max`; a non-zero value is at least 1 px tall so that
// it never looks like zero.
export function barLayout(values, width, height, max = niceMax(Math.max(0, ...values))) {
  const slot = Math.min(width / 8, values.length ? width / values.length : width);
  const left = (width - slot * values.length) / 2;
  const gap = slot >= 3 ? slot / 5 : 0;
  return values.map((v, i) => {
    const h = v > 0 ? Math.max(1, (v / max) * height) : 0;
    return { x: left + i * slot + gap / 2, y: height - h, w: Math.max(0.5, slot - gap), h };
  });
}

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// A bar chart: `bars` are {value, title} (the title is each bar's tooltip), `label` names the
// chart for screen readers. `onPick(i)`, when given, makes the bars clickable.
export function svgBars(bars, { label, width = 360, height = 90, max, onPick, className = '' } = {}) {
  const values = bars.map((b) => b.value);
  const top = max ?? niceMax(Math.max(0, ...values));
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', height, preserveAspectRatio: 'none', role: 'img', class: `bars ${className}` });
  svg.setAttribute('aria-label', label);
  svg.append(svgEl('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: 'axis' }));
  barLayout(values, width, height, top).forEach((r, i) => {
    const rect = svgEl('rect', { x: r.x, y: r.y, width: r.w, height: r.h });
    const title = svgEl('title');
    title.textContent = bars[i].title;
    rect.append(title);
    if (onPick && values[i] > 0) {
      rect.classList.add('pick');
      rect.addEventListener('click', () => onPick(i));
    }
    svg.append(rect);
  });
  return svg;
}
