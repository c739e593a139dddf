// Drives the tunix-rt web UI in headless Chromium at 1280×800: submit the example from the
// dialog, read it, go back with Esc and reopen it with j and Enter; search, score it, filter by
// the score, compare it with another trace (every view with its own URL, the back button
// working); save a dataset and download it; follow an agent run sent through the OTLP intake
// into the runs view; watch the operations view; read a 200-step trace whose text tries HTML and script injection; show a
// validation error. Then every view at 1280×800 and 1920×1080 (the charts changing with a
// filter among them): nothing cut (scrollWidth), axe-core without serious violations, a
// screenshot each. Last, delete the trace.
// Usage: node ui.mjs <base-url> <screenshot-dir>
// Exits non-zero with a message on the first failed expectation.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, nothingCut, accessible } from './checks.mjs';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node ui.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}

// A new, empty profile directory per run.
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'tunix-chromium-')), {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
});
const page = browser.pages()[0] ?? await browser.newPage();
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(String(e)));
// The page's recent API answers, printed when an expectation fails.
const answers = [];
page.on('response', (r) => {
  const u = new URL(r.url());
  if (u.pathname.startsWith('/api/')) answers.push(`${new Date().toISOString()} ${r.status()} ${u.pathname}${u.search}`);
  if (answers.length > 30) answers.shift();
});
page.setDefaultTimeout(20000);

try {
  await page.goto(`${base}/`);
  // Health cards come from /api/health.
  await page.getByTestId('health-status').locator('.value').filter({ hasText: /ok|degraded/ }).waitFor();
  expect((await page.locator('#h-broker').textContent()) === 'ok', 'broker card says ok');

  // Submitting is a dialog: load the example, upload; the UI waits until the trace is readable,
  // then opens it in the reader.
  await page.getByTestId('submit-open').click();
  await page.getByTestId('submit-dialog').waitFor({ state: 'visible' });
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

  expect(await page.getByTestId('submit-dialog').isHidden(), 'the dialog closed');

  // Esc goes back to the list, where it is the newest row; j selects it, Enter opens it.
  await page.keyboard.press('Escape');
  await page.getByTestId('detail').waitFor({ state: 'hidden' });
  const row = page.locator(`#list tr[data-id="${id}"]`);
  await row.waitFor();
  await page.waitForFunction((id) => document.querySelector('#list tbody tr')?.dataset.id === id, id);
  await page.keyboard.press('j');
  expect(await row.evaluate((r) => r.classList.contains('cursor')), 'j puts the cursor on the first row');
  await page.keyboard.press('Enter');
  await page.getByTestId('detail-id').filter({ hasText: id }).waitFor();
  await page.keyboard.press('Escape');
  await row.waitFor();

  // Filters: a version that does not exist empties the list; clearing it brings the row back.
  await page.getByTestId('filter-version').fill('no-such-version');
  await page.getByTestId('apply-filters').click();
  await page.waitForFunction(() => document.querySelectorAll('#list tbody tr').length === 0);
  await page.getByTestId('filter-version').fill('1.0');
  await page.getByTestId('apply-filters').click();
  await row.waitFor();

  // Typing into the search box while a change of another filter navigates: the navigation's
  // redraw of the filter inputs must not wipe what is being typed (a race a CI run hit: the
  // version field's change event fires when focus moves to the search box).
  const raced = page.waitForResponse((r) => r.url().includes('trace_version=race-check'));
  await page.evaluate(() => {
    const v = document.getElementById('f-version');
    v.value = 'race-check';
    v.dispatchEvent(new Event('change'));
    const q = document.getElementById('f-q');
    q.value = 'still typing';
    q.dispatchEvent(new Event('input'));
  });
  await raced;
  expect(await page.getByTestId('search').inputValue() === 'still typing',
    'text typed into the search box survives a navigation started by another filter');

  // Find and judge: search → open → score → filter by that score → compare.
  await page.getByTestId('filter-version').fill('');
  await page.getByTestId('search').fill('nosuchwordanywhere');
  await page.getByTestId('apply-filters').click();
  await page.waitForFunction(() => document.querySelectorAll('#list tbody tr').length === 0);
  await page.getByTestId('search').fill('celsius');  // the prompt says "Celsius": case-insensitive
  await page.getByTestId('apply-filters').click();
  await row.waitFor();
  expect(page.url().includes('q=celsius'), `the search has its own URL: ${page.url()}`);
  await page.screenshot({ path: join(shots, 'ui-search.png'), fullPage: true });
  await row.click();
  await page.getByTestId('detail-id').filter({ hasText: id }).waitFor();
  expect(page.url().includes(`#/trace/${id}`), `the trace has its own URL: ${page.url()}`);
  const marked = await page.getByTestId('detail-prompt').locator('mark').allTextContents();
  expect(marked.join() === 'Celsius', `the search's term is marked in the prompt: ${marked}`);
  await page.getByTestId('score-name').fill('correct');
  await page.getByTestId('score-value').fill('1');
  await page.getByTestId('record-score').click();
  const scored = page.locator('[data-testid="score"][data-name="correct"]');
  await scored.waitFor({ timeout: 30000 });
  expect((await scored.textContent()).includes('correct 1'), `the score is shown: ${await scored.textContent()}`);
  await page.getByTestId('detail-back').click();
  await page.getByTestId('filter-add').fill('score.correct=1');
  await page.getByTestId('filter-add-button').click();
  await page.getByTestId('chip').filter({ hasText: 'score.correct=1' }).waitFor();
  await row.waitFor();
  expect((await row.textContent()).includes('correct 1'), 'scores are a column of the list');
  await page.getByTestId('filter-add').fill('score.correct=0');
  await page.getByTestId('filter-add-button').click();
  await page.waitForFunction(() => document.querySelectorAll('#list tbody tr').length === 0);
  await page.goBack();  // the back button undoes the last filter
  await row.waitFor();
  // A second trace to compare with, posted through the API.
  const other = await page.evaluate(async () => {
    const body = { trace_version: '1.0', prompt: 'Convert 100°C to Fahrenheit', final_answer: '212°F',
      steps: [{ i: 0, type: 'compute', content: '100 × 9/5 + 32 = 212' }] };
    const r = await fetch('/api/traces', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const { id } = await r.json();
    await fetch(`/api/traces/${id}?wait_ms=10000`);
    return id;
  });
  await page.locator('a.home').click();  // back to the unfiltered list
  const otherRow = page.locator(`#list tr[data-id="${other}"]`);
  await otherRow.waitFor({ timeout: 30000 });
  await row.locator('[data-testid="compare-check"]').check();
  await otherRow.locator('[data-testid="compare-check"]').check();
  await page.getByTestId('compare-selected').click();
  await page.getByTestId('compare-panel').waitFor({ state: 'visible' });
  await page.getByTestId('compare-base').locator('.score').waitFor();
  const compared = `${await page.getByTestId('compare-base').textContent()} ${await page.getByTestId('compare-other-side').textContent()}`;
  expect(compared.includes(id) && compared.includes(other), 'both traces side by side');
  expect(compared.includes('212°F') && compared.includes('20°C'), 'with their answers');
  expect(page.url().includes('#/compare?base='), `the comparison has its own URL: ${page.url()}`);
  await page.screenshot({ path: join(shots, 'ui-compare.png'), fullPage: true });
  await page.goBack();
  await page.getByTestId('compare-panel').waitFor({ state: 'hidden' });

  // Save the search "score.correct=1" as a dataset, find it in the datasets view, download it.
  await page.getByTestId('filter-add').fill('score.correct=1');
  await page.getByTestId('filter-add-button').click();
  await page.getByTestId('chip').filter({ hasText: 'score.correct=1' }).waitFor();
  await row.waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#list tbody tr').length === 1);
  await page.getByTestId('dataset-name').fill('ui-set');
  await page.getByTestId('dataset-version').fill('1');
  await page.getByTestId('dataset-eval').fill('0');
  await page.getByTestId('dataset-save').click();
  await page.getByTestId('dataset-result').filter({ hasText: 'ui-set@1: 1 traces' }).waitFor({ timeout: 30000 });
  await page.getByTestId('datasets-link').click();
  await page.getByTestId('datasets-panel').waitFor({ state: 'visible' });
  const dsRow = page.getByTestId('dataset-ui-set-1');
  await dsRow.waitFor();
  expect((await dsRow.textContent()).includes('score.correct'), `the dataset shows its filter: ${await dsRow.textContent()}`);
  expect(page.url().includes('#/datasets'), `the datasets view has its own URL: ${page.url()}`);
  const [dl] = await Promise.all([
    page.waitForEvent('download'),
    page.getByTestId('download-ui-set-1-tunix_sft').click(),
  ]);
  const saved = join(shots, 'ui-set-1.jsonl');
  await dl.saveAs(saved);
  const lines = readFileSync(saved, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(lines.length === 1 && lines[0].id === id, `the download holds the trace: ${JSON.stringify(lines)}`);
  expect(lines[0].prompts.startsWith('<start_of_turn>user'), 'in the tunix_sft format');
  await page.screenshot({ path: join(shots, 'ui-datasets.png'), fullPage: true });
  await page.locator('a.home').click();

  // An agent run through the OTLP intake: three inference calls of one OTel trace, exported in
  // two batches, newest first. The trace view lists them in start-time order ("same run").
  const run = await page.evaluate(async () => {
    const hex = (n) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, '0')).join('');
    const traceId = hex(16);
    const t0 = BigInt(Date.now()) * 1000000n;
    const span = (n) => ({
      traceId, spanId: hex(8), name: `chat call-${n}`, kind: 3,
      startTimeUnixNano: String(t0 + BigInt(n) * 1000000000n), endTimeUnixNano: String(t0 + BigInt(n) * 1000000000n + 500000000n),
      attributes: [
        { key: 'gen_ai.operation.name', value: { stringValue: 'chat' } },
        { key: 'gen_ai.request.model', value: { stringValue: 'ui-model' } },
        { key: 'gen_ai.usage.input_tokens', value: { intValue: String(10 + n) } },
        { key: 'gen_ai.usage.output_tokens', value: { intValue: String(20 + n) } },
        { key: 'gen_ai.input.messages', value: { stringValue: JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: `question ${n}` }] }]) } },
        { key: 'gen_ai.output.messages', value: { stringValue: JSON.stringify([{ role: 'assistant', parts: [{ type: 'reasoning', content: `thinking ${n}` }, { type: 'text', content: `answer ${n}` }] }]) } },
      ],
    });
    const spans = [0, 1, 2].map(span);
    for (const batch of [[spans[2], spans[1]], [spans[0]]]) {
      const r = await fetch('/v1/traces', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: batch }] }] }) });
      if (r.status !== 200) return { error: `OTLP export answered ${r.status}: ${await r.text()}` };
    }
    for (let n = 0; n < 150; n++) {
      const list = await (await fetch(`/api/traces?meta.otel.trace_id=${traceId}`)).json();
      if (list.data.length === 3) {
        const byName = {};
        for (const row of list.data) {
          const t = await (await fetch(`/api/traces/${row.id}?wait_ms=10000`)).json();
          byName[t.payload.meta.otel.name] = row.id;
        }
        return { traceId, ids: [0, 1, 2].map((i) => byName[`chat call-${i}`]) };
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    return { error: 'the three calls were not listed within 30 s' };
  });
  expect(!run.error, run.error);
  await page.goto(`${base}/#/trace/${run.ids[1]}`);
  await page.getByTestId('detail-id').filter({ hasText: run.ids[1] }).waitFor();
  await page.getByTestId('detail-run').waitFor({ state: 'visible' });
  const calls = page.getByTestId('detail-run').locator('[data-testid="run-call"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="run-call"]').length === 3);
  const callTexts = await calls.allTextContents();
  expect(callTexts.every((c, i) => c.includes(`chat call-${i}`)), `the run's calls in start-time order: ${callTexts}`);
  expect((await calls.nth(1).getAttribute('class')) === 'current', 'the open call is marked');
  const runSteps = await page.getByTestId('detail-steps').locator('li').allTextContents();
  expect(runSteps.length === 1 && runSteps[0].includes('reasoning') && runSteps[0].includes('thinking 1'), `the reasoning part is a step: ${runSteps}`);
  await calls.nth(0).locator('a').click();
  await page.getByTestId('detail-id').filter({ hasText: run.ids[0] }).waitFor();
  expect((await page.getByTestId('detail-answer').textContent()) === 'answer 0', 'the sibling link opens that call');
  // The runs view: the three calls on one time axis, in start-time order, each a link.
  await page.getByTestId('detail-run-all').click();
  await page.getByTestId('runs-panel').waitFor({ state: 'visible' });
  expect(page.url().includes(`#/runs/${run.traceId}`), `the run has its own URL: ${page.url()}`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="run-row"]').length === 3);
  const runRows = await page.getByTestId('run-row').allTextContents();
  expect(runRows.every((c, i) => c.includes(`chat call-${i}`) && c.includes('ui-model') && c.includes(`${10 + i} in · ${20 + i} out`)),
    `the run's calls in order with their model and tokens: ${runRows}`);
  expect((await page.getByTestId('run-status').textContent()).includes('3 inference calls') && (await page.getByTestId('run-status').textContent()).includes('63 output tokens'),
    `the run's totals: ${await page.getByTestId('run-status').textContent()}`);
  const bars = await page.locator('[data-testid="run-row"] .bar .fill').evaluateAll((fs) => fs.map((f) => parseFloat(f.style.left)));
  expect(bars[0] === 0 && bars[1] > bars[0] && bars[2] > bars[1], `timing bars start where the calls did: ${bars}`);
  await page.screenshot({ path: join(shots, 'ui-run.png'), fullPage: true });
  await page.getByTestId('run-row').nth(2).locator('a').click();
  await page.getByTestId('detail-id').filter({ hasText: run.ids[2] }).waitFor();

  // A long trace: 200 steps, ~150 KB, Markdown and code, and text that tries HTML and script
  // injection; opened from a search, so its matches are marked.
  const long = await page.evaluate(async () => {
    const evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>';
    const kinds = ['reasoning', 'tool_call', 'tool_result', 'verify'];
    const steps = Array.from({ length: 200 }, (_, i) => ({
      i, type: kinds[i % 4],
      content: `Step ${i}: **check** the \`value\` ${i % 50 === 7 ? 'needle ' : ''}${evil}\n\n\`\`\`python\nx = ${i} < ${i + 1}\n\`\`\`\n${'lorem ipsum dolor sit amet '.repeat(25)}`,
    }));
    const body = { trace_version: 'long-1', prompt: `# Task\nFind the needle. ${evil}`, final_answer: `Done ${evil}`, steps };
    const r = await fetch('/api/traces', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const { id } = await r.json();
    await fetch(`/api/traces/${id}?wait_ms=10000`);
    return { id, bytes: JSON.stringify(body).length };
  });
  const started = Date.now();
  await page.goto(`${base}/#/trace/${long.id}?q=needle`);
  await page.getByTestId('detail-id').filter({ hasText: long.id }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#d-steps li.step').length === 200);
  console.log(`200-step trace (${long.bytes} bytes) read in ${Date.now() - started} ms`);
  expect(await page.locator('#d-outline a').count() === 200, 'the outline lists the 200 steps');
  const reader = await page.evaluate(() => ({
    injected: document.querySelectorAll('main img, main script, main [onerror]').length,
    xss: window.__xss,
    promptText: document.getElementById('d-prompt').textContent,
    heading: document.querySelector('#d-prompt .h1')?.textContent,
    open: [...document.querySelectorAll('#d-steps details.step-body')].filter((d) => d.open).map((d) => d.closest('li').id),
    hits: [...document.querySelectorAll('#d-outline a.hit')].map((a) => a.textContent),
    kinds: [...new Set([...document.querySelectorAll('#d-steps li.step')].map((l) => l.className.split(' ')[1]))],
  }));
  expect(reader.injected === 0 && reader.xss === undefined, `trace text never becomes HTML: ${JSON.stringify(reader)}`);
  expect(reader.promptText.includes('<script>window.__xss=1</script>'), 'the injection attempt shows as text');
  expect(reader.heading === 'Task', `Markdown headings render: ${reader.heading}`);
  expect(JSON.stringify(reader.open) === JSON.stringify(['step-7', 'step-57', 'step-107', 'step-157']), `long steps are folded, those matching the search open: ${reader.open}`);
  expect(reader.hits.length === 4, `the outline flags the matching steps: ${reader.hits}`);
  expect(reader.kinds.join() === 'k-reasoning,k-tool-call,k-tool-result,k-other', `step kinds are told apart: ${reader.kinds}`);
  await page.locator('#d-outline a').nth(120).click();
  await page.waitForFunction(() => document.querySelector('#step-120 details').open);
  expect(await page.locator('#step-120 pre code').textContent() === 'x = 120 < 121', 'code blocks render as code');
  await page.getByTestId('expand-all').click();
  await page.waitForFunction(() => document.querySelectorAll('#d-steps details.step-body[open]').length === 200);
  expect(await page.locator('main img, main script').count() === 0, 'still no HTML from trace text with every step open');
  await page.screenshot({ path: join(shots, 'ui-long-trace.png') });
  await page.locator('a.home').click();

  // Validation errors are shown against their field paths.
  await page.getByTestId('submit-open').click();
  await page.getByTestId('trace-json').fill('{"trace_version": "", "prompt": "p", "final_answer": "a", "steps": [{"i": -1, "type": "t", "content": "c"}]}');
  await page.getByTestId('upload').click();
  const errors = page.getByTestId('errors');
  await errors.locator('li').first().waitFor();
  const errorText = await errors.textContent();
  expect(errorText.includes('body.trace_version') && errorText.includes('body.steps[0].i'), `errors by path: ${errorText}`);
  await page.screenshot({ path: join(shots, 'ui-validation.png') });
  await page.keyboard.press('Escape');
  await page.getByTestId('submit-dialog').waitFor({ state: 'hidden' });

  // Charts follow the list's filter: all traces first (the run's calls among them, a
  // `correct` histogram from the score given above), then the run's three calls alone, added as
  // a filter chip: the volume, the model's tokens and the summary change to them.
  const matchedIs = (n) => page.waitForFunction((n) => {
    const s = document.querySelector('[data-testid="charts-summary"]');
    const v = document.querySelector('[data-testid="chart-volume"]');
    return s?.dataset.matched === String(n) && v?.dataset.total === String(n);
  }, n);
  const chartsChangeWithAFilter = async () => {
    const { all, listed } = await page.evaluate(async () => {
      let listed = 0;
      for (let cursor = ''; ;) {
        const page = await (await fetch(`/api/traces?limit=100${cursor ? `&cursor=${cursor}` : ''}`)).json();
        listed += page.data.length;
        if (!page.pagination.next_cursor) break;
        cursor = page.pagination.next_cursor;
      }
      return { all: await (await fetch('/api/traces/stats')).json(), listed };
    });
    expect(all.exact && all.matched === listed && listed >= 5, `the stats count what the list lists (${listed}): ${JSON.stringify(all).slice(0, 200)}`);
    await matchedIs(all.matched);
    expect(await page.locator('[data-testid="chart-score"][data-name="correct"]').count() === 1, 'a histogram of the correct score');
    expect(await page.locator('[data-testid="chart-volume"] svg rect').count() === all.volume.length, 'one bar per bucket');
    await page.getByTestId('filter-add').fill(`meta.otel.trace_id=${run.traceId}`);
    await page.getByTestId('filter-add-button').click();
    await matchedIs(3);
    const model = await page.getByTestId('chart-model').allTextContents();
    expect(model.length === 1 && model[0].includes('ui-model') && model[0].includes('33 in · 63 out · 3 traces'),
      `tokens by model for the run's calls: ${model}`);
    expect((await page.getByTestId('chart-scores').textContent()).includes('no scores'), 'the run has no scores');
  };

  // Every view from its URL at both sizes: nothing cut, no serious accessibility problem.
  const views = [
    ['charts', '/#/', chartsChangeWithAFilter],
    ['traces', '/#/', () => row.waitFor()],
    ['search', '/#/?q=celsius', () => row.waitFor()],
    ['reader', `/#/trace/${long.id}?q=needle`, () => page.waitForFunction(() => document.querySelectorAll('#d-steps li.step').length === 200)],
    ['compare', `/#/compare?base=${id}&other=${other}`, () => page.getByTestId('compare-base').locator('.score').waitFor()],
    ['datasets', '/#/datasets', () => page.getByTestId('dataset-ui-set-1').waitFor()],
    ['run', `/#/runs/${run.traceId}`, () => page.waitForFunction(() => document.querySelectorAll('[data-testid="run-row"]').length === 3)],
    // Operations: the ingest rate needs two readings (3 s apart); both consumers caught up.
    ['ops', '/#/ops', async () => {
      await page.waitForFunction(() => /\/s$/.test(document.getElementById('ops-rate').textContent), null, { timeout: 15000 });
      await page.waitForFunction(() => ['writer', 'projector'].every((s) => document.querySelector(`[data-testid="ops-consumer-${s}"]`)?.textContent.includes('caught up')), null, { timeout: 30000 });
      expect(await page.getByTestId('ops-dlq').textContent() === '0', 'no dead letters');
      expect(await page.getByTestId('ops-broker').textContent() === 'ok', 'the broker is ok');
    }],
  ];
  for (const [width, height] of [[1280, 800], [1920, 1080]]) {
    await page.setViewportSize({ width, height });
    for (const [name, url, ready] of views) {
      await page.goto(`${base}${url}`);
      await ready();
      await nothingCut(page, `${name} at ${width}x${height}`);
      await accessible(page, `${name} at ${width}x${height}`);
      await page.screenshot({ path: join(shots, `view-${name}-${width}x${height}.png`) });
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(`${base}/#/`);

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
  const seen = await page.evaluate(() => ({
    url: location.href,
    listStatus: document.querySelector('#list-status')?.textContent,
    rows: [...document.querySelectorAll('#list tbody tr')].map((tr) => tr.dataset.id),
  })).catch((err) => ({ unavailable: String(err) }));
  console.error(`page: ${JSON.stringify(seen)}`);
  console.error(`script errors: ${consoleErrors.join('; ') || 'none'}`);
  console.error(`last API answers:\n  ${answers.join('\n  ')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
