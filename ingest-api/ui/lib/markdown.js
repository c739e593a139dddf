// A small, safe Markdown reader for trace text: fenced code blocks, headings, bullet and
// numbered lists, paragraphs, and inline `code`, **bold**, *italic* and $maths$ (shown in a
// monospace span, not typeset). parseBlocks and parseInline are pure (tested with node --test);
// render builds DOM nodes with textContent only, so no trace content is ever parsed as HTML:
// <script>, <img onerror> and the like show as the text they are.
import { split } from './highlight.js';

// Blocks: {type: 'code', lang, text} | {type: 'heading', level, text} |
// {type: 'list', ordered, items: [text]} | {type: 'para', text}.
export function parseBlocks(source) {
  const lines = String(source ?? '').replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let para = [];
  const flush = () => {
    if (para.length) blocks.push({ type: 'para', text: para.join('\n') });
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)\s*([\w+.#-]*)\s*$/);
    if (fence) {
      flush();
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      blocks.push({ type: 'code', lang: fence[2] || '', text: body.join('\n') });
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      flush();
      blocks.push({ type: 'heading', level: heading[1].length, text: heading[2] });
      continue;
    }
    const item = line.match(/^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/);
    if (item) {
      flush();
      const ordered = item[2] !== undefined;
      const last = blocks[blocks.length - 1];
      if (last && last.type === 'list' && last.ordered === ordered && last.open) last.items.push(item[3]);
      else blocks.push({ type: 'list', ordered, start: ordered ? Number(item[2]) : 1, items: [item[3]], open: true });
      continue;
    }
    if (!line.trim()) {
      flush();
      const last = blocks[blocks.length - 1];
      if (last && last.type === 'list') last.open = false;
      continue;
    }
    const last = blocks[blocks.length - 1];
    if (!para.length && last && last.type === 'list' && last.open && /^\s+\S/.test(line)) {
      last.items[last.items.length - 1] += `\n${line.trim()}`;
      continue;
    }
    if (last && last.type === 'list') last.open = false;
    para.push(line);
  }
  flush();
  return blocks.map(({ open, ...b }) => b);
}

// Inline runs: [{t: 'text' | 'code' | 'strong' | 'em' | 'math', v}].
export function parseInline(text) {
  const out = [];
  // No `__bold__`: model text is full of identifiers such as __init__ and window.__state.
  const re = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|(?<![\w*])\*([^*\s][^*\n]*?)\*(?![\w*])|\$([^$\n]+)\$/g;
  let last = 0;
  for (const m of String(text ?? '').matchAll(re)) {
    if (m.index > last) out.push({ t: 'text', v: text.slice(last, m.index) });
    if (m[1] !== undefined) out.push({ t: 'code', v: m[1] });
    else if (m[2] !== undefined) out.push({ t: 'strong', v: m[2] });
    else if (m[3] !== undefined) out.push({ t: 'em', v: m[3] });
    else out.push({ t: 'math', v: m[4] });
    last = m.index + m[0].length;
  }
  if (last < String(text ?? '').length) out.push({ t: 'text', v: text.slice(last) });
  return out;
}

// Text with the search terms marked.
export function textNodes(text, terms) {
  return split(text, terms).map((run) => {
    if (!run.hit) return document.createTextNode(run.text);
    const mark = document.createElement('mark');
    mark.textContent = run.text;
    return mark;
  });
}

function inline(parent, text, terms) {
  const tags = { code: 'code', strong: 'strong', em: 'em', math: 'span' };
  for (const run of parseInline(text)) {
    if (run.t === 'text') { parent.append(...textNodes(run.v, terms)); continue; }
    const e = document.createElement(tags[run.t]);
    if (run.t === 'math') e.className = 'math';
    e.append(...textNodes(run.v, terms));
    parent.append(e);
  }
}

// `source` as DOM nodes in a <div class="md">.
export function render(source, terms = []) {
  const root = document.createElement('div');
  root.className = 'md';
  for (const b of parseBlocks(source)) {
    let e;
    if (b.type === 'code') {
      e = document.createElement('pre');
      const code = document.createElement('code');
      if (b.lang) code.dataset.lang = b.lang;
      code.append(...textNodes(b.text, terms));
      e.append(code);
    } else if (b.type === 'heading') {
      e = document.createElement('p');
      e.className = `h h${b.level}`;
      inline(e, b.text, terms);
    } else if (b.type === 'list') {
      e = document.createElement(b.ordered ? 'ol' : 'ul');
      if (b.ordered && b.start !== 1) e.start = b.start;
      for (const item of b.items) {
        const li = document.createElement('li');
        inline(li, item, terms);
        e.append(li);
      }
    } else {
      e = document.createElement('p');
      inline(e, b.text, terms);
    }
    root.append(e);
  }
  return root;
}
