// DOM helpers shared by every view. Text always goes in through textContent (never innerHTML):
// trace content is untrusted.
export const $ = (id) => document.getElementById(id);

export const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
};

export function fmtBytes(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

// A full, fixed-width local time: 2026-12-06 17:04:05.
export function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso ?? '');
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// Copies text; the clipboard API needs a secure context (localhost is one), else a textarea.
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const t = el('textarea', { value: text });
    document.body.append(t);
    t.select();
    const ok = document.execCommand('copy');
    t.remove();
    return ok;
  }
}

// A small "copy" button that says when it copied.
export function copyButton(label, text) {
  const b = el('button', { type: 'button', className: 'copy', textContent: 'copy', title: `copy ${label}` });
  b.setAttribute('aria-label', `copy ${label}`);
  b.addEventListener('click', async (e) => {
    e.stopPropagation();
    e.preventDefault();
    b.textContent = (await copyText(typeof text === 'function' ? text() : text)) ? 'copied' : 'copy failed';
    setTimeout(() => { b.textContent = 'copy'; }, 1500);
  });
  return b;
}
