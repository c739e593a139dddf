// Checks the browser test runs on every view: nothing cut, no serious accessibility problems.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function expect(cond, msg) {
  if (!cond) throw new Error(`expectation failed: ${msg}`);
}

// Every visible table header and cell, and the top bar's items, show their whole content:
// their scrollWidth is not wider than their box (text cut by overflow or an ellipsis is).
export async function nothingCut(page, where) {
  const cut = await page.evaluate(() => {
    // Visible to the eye: screen-reader-only text is clipped on purpose.
    const visible = (e) => e.offsetParent !== null && e.getClientRects().length > 0 && !e.closest('.visually-hidden');
    const out = [];
    for (const e of document.querySelectorAll('main th, main td, header.top nav a, header.top .card, main h2, main button')) {
      if (!visible(e)) continue;
      if (e.scrollWidth > e.clientWidth + 1) out.push(`${e.tagName.toLowerCase()} "${e.textContent.trim().slice(0, 40)}" ${e.scrollWidth}>${e.clientWidth}`);
    }
    // The page itself does not scroll sideways.
    if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push(`page ${document.documentElement.scrollWidth}>${window.innerWidth}`);
    return out;
  });
  expect(cut.length === 0, `nothing is cut on ${where}: ${cut.join('; ')}`);
}

// axe-core (npm) in the page: no serious or critical violation.
export async function accessible(page, where) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
  }
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  expect(violations.length === 0, `axe-core finds no serious violation on ${where}: ${violations.join('; ')}`);
}
