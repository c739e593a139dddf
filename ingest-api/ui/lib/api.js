// The HTTP API: every call carries the API key (if one is set) as a Bearer token.
import { $ } from './dom.js';

export function headers(extra = {}) {
  const h = { ...extra };
  const key = $('api-key').value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

export async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: headers(options.headers) });
  let body = null;
  const text = await resp.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  return { status: resp.status, body, headers: resp.headers };
}

// ["body","steps",3,"content"] -> body.steps[3].content
export function formatLoc(loc) {
  return (loc || []).map((p, n) => (typeof p === 'number' ? `[${p}]` : n === 0 ? p : `.${p}`)).join('');
}

export function describeError(status, body) {
  if (body && typeof body.detail === 'string') return `${status}: ${body.detail}`;
  if (body && Array.isArray(body.detail)) return `${status}: ${body.detail.map((d) => `${formatLoc(d.loc)}: ${d.msg}`).join('; ')}`;
  return `${status}`;
}
