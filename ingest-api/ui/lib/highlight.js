// Search-term highlighting. Pure functions (tested with node --test); the DOM part is in
// markdown.js, which calls split() on every text run it writes.

// The words of a search (`q`): what the full-text search matched on, lower-cased, at least two
// characters (CJK characters one), longest first so that overlapping terms mark the longer.
export function termsOf(q) {
  if (!q) return [];
  const words = String(q).toLowerCase().match(/[\p{L}\p{N}_]+/gu) || [];
  const keep = words.filter((w) => w.length >= 2 || /\p{Script=Han}|\p{Script=Hiragana}|\p{Script=Katakana}|\p{Script=Hangul}/u.test(w));
  return [...new Set(keep)].sort((a, b) => b.length - a.length);
}

// Splits `text` into [{text, hit}] runs: hit runs are case-insensitive matches of a term.
export function split(text, terms) {
  if (!terms || !terms.length || !text) return [{ text, hit: false }];
  const lower = text.toLowerCase();
  // toLowerCase can change lengths (e.g. 'İ'); only highlight when it does not.
  if (lower.length !== text.length) return [{ text, hit: false }];
  const out = [];
  let pos = 0;
  let plain = 0;
  while (pos < text.length) {
    const term = terms.find((t) => lower.startsWith(t, pos));
    if (term) {
      if (plain < pos) out.push({ text: text.slice(plain, pos), hit: false });
      out.push({ text: text.slice(pos, pos + term.length), hit: true });
      pos += term.length;
      plain = pos;
    } else {
      pos += 1;
    }
  }
  if (plain < text.length) out.push({ text: text.slice(plain), hit: false });
  return out;
}

export function hasHit(text, terms) {
  if (!terms || !terms.length || !text) return false;
  const lower = text.toLowerCase();
  return terms.some((t) => lower.includes(t));
}
