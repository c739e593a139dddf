// Drives the tunix-rt web UI in headless Chromium: load the page, load the example, upload it,
// see it in the list, open it, check the detail view, show a validation error, delete it.
// Usage: node ui.mjs <base-url> <screenshot-dir>
// Exits non-zero with a message on the first failed expectation.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node ui.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}

function expect(cond, msg) {
  if (!cond) throw new Error(`expectation failed: ${msg}`);
}

// A new, empty profile directory per run.
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'tunix-chromium-')), {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1360, height: 1000 },
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
});
const page = browser.pages()[0] ?? await browser.newPage();
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.setDefaultTimeout(20000);

try {
  await page.goto(`${base}/`);
  // Health cards come from /api/health.
  await page.getByTestId('health-status').locator('.value').filter({ hasText: /ok|degraded/ }).waitFor();
  expect((await page.locator('#h-broker').textContent()) === 'ok', 'broker card says ok');

  // Load example, upload: the UI waits until the trace is readable, then opens it.
  await page.getByTestId('load-example').click();
  // The example arrives by fetch: wait for it to fill the editor (up to the default timeout).
  await page.waitForFunction(
    () => document.querySelector('[data-testid="trace-json"]').value.includes('Convert 68°F to Celsius'),
  ).catch(() => {
    throw new Error('expectation failed: the example is the temperature trace');
  });
  await page.getByTestId('upload').click();
  await page.getByTestId('detail').waitFor({ state: 'visible' });
  const id = (await page.getByTestId('detail-id').textContent()).trim();
  expect(/^[0-9a-f-]{36}$/.test(id), `detail shows the new id (${id})`);
  expect((await page.getByTestId('upload-result').textContent()).includes(id), 'upload shows the new id');
  expect((await page.getByTestId('detail-prompt').textContent()) === 'Convert 68°F to Celsius', 'prompt rendered');
  expect((await page.getByTestId('detail-answer').textContent()) === '20°C', 'final answer rendered');
  const steps = await page.getByTestId('detail-steps').locator('li').allTextContents();
  expect(steps.length === 5, `5 steps rendered (${steps.length})`);
  expect(steps[0].startsWith('#0parse') && steps[4].startsWith('#4result'), `steps in order with types: ${steps[0]} … ${steps[4]}`);
  const meta = page.getByTestId('detail-meta');
  expect((await meta.textContent()).includes('"temperature"'), 'meta rendered');
  await page.screenshot({ path: join(shots, 'ui-detail.png'), fullPage: true });
  await meta.locator('summary').first().click();
  expect((await meta.locator('details').first().getAttribute('open')) === null, 'meta JSON collapses');

  // It appears in the list; opening it from the list shows it again.
  const row = page.locator(`#list tr[data-id="${id}"]`);
  await row.waitFor();
  await page.getByTestId('fetch-id').fill('');
  await row.click();
  await page.getByTestId('detail-id').filter({ hasText: id }).waitFor();

  // Filters: a version that does not exist empties the list; clearing it brings the row back.
  await page.getByTestId('filter-version').fill('no-such-version');
  await page.getByTestId('apply-filters').click();
  await page.waitForFunction(() => document.querySelectorAll('#list tbody tr').length === 0);
  await page.getByTestId('filter-version').fill('1.0');
  await page.getByTestId('apply-filters').click();
  await row.waitFor();

  // Validation errors are shown against their field paths.
  await page.getByTestId('trace-json').fill('{"trace_version": "", "prompt": "p", "final_answer": "a", "steps": [{"i": -1, "type": "t", "content": "c"}]}');
  await page.getByTestId('upload').click();
  const errors = page.getByTestId('errors');
  await errors.locator('li').first().waitFor();
  const errorText = await errors.textContent();
  expect(errorText.includes('body.trace_version') && errorText.includes('body.steps[0].i'), `errors by path: ${errorText}`);
  await page.screenshot({ path: join(shots, 'ui-validation.png'), fullPage: true });

  // Delete, with a confirmation; the row leaves the list.
  await row.click();
  await page.getByTestId('detail-id').filter({ hasText: id }).waitFor();
  await page.getByTestId('delete').click();
  await page.getByTestId('confirm-dialog').waitFor({ state: 'visible' });
  await page.getByTestId('confirm-delete').click();
  await row.waitFor({ state: 'detached', timeout: 30000 });
  // The list view (projector) and GET by id (writer) converge independently: poll the latter.
  await page.waitForFunction(
    async (id) => (await fetch(`/api/traces/${id}`)).status === 404, id, { polling: 200, timeout: 30000 },
  ).catch(() => {
    throw new Error('expectation failed: the deleted trace answers 404 within 30 s');
  });
  await page.screenshot({ path: join(shots, 'ui-after-delete.png'), fullPage: true });

  expect(consoleErrors.length === 0, `no script errors: ${consoleErrors.join('; ')}`);
  console.log(`ok: uploaded, listed, opened and deleted ${id}`);
} catch (e) {
  await page.screenshot({ path: join(shots, 'ui-failure.png'), fullPage: true }).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
