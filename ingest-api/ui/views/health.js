// The health cards in the top bar: /api/health (broker, database) and /readyz.
import { $ } from '../lib/dom.js';
import { api } from '../lib/api.js';

function setCard(id, text, ok) {
  const e = $(id);
  e.textContent = text;
  e.className = `value ${ok === true ? 'ok' : ok === false ? 'bad' : 'warn'}`;
}

export async function refreshHealth() {
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
  } catch {
    setCard('h-status', 'unreachable', false);
  }
}
