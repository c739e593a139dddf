// node --test: the pure parts of the charts (lib/chart.js): axis maxima, labels, bar geometry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { niceMax, fmtCount, barLayout, bucketLabel } from '../lib/chart.js';

test('axis maxima are 1, 2 or 5 times a power of ten, at or above the data', () => {
  assert.deepEqual([0, -3, 0.3, 1, 1.01, 3, 7, 10, 11, 460, 50001].map(niceMax), [1, 1, 0.5, 1, 2, 5, 10, 10, 20, 500, 100000]);
});

test('counts are abbreviated', () => {
  assert.deepEqual([0, 999, 1000, 1234, 12345, 5600000, 2.5e9, -1500].map(fmtCount), ['0', '999', '1.0k', '1.2k', '12k', '5.6M', '2.5G', '-1.5k']);
});

test('bars share the width, scale to the maximum, and a small value stays visible', () => {
  const bars = barLayout([0, 5, 10, 0.001, 0, 0, 0, 0, 0, 0], 400, 100, 10);
  assert.equal(bars.length, 10);
  assert.deepEqual(bars.slice(0, 4).map((b) => b.h), [0, 50, 100, 1]);
  assert.deepEqual(bars.slice(0, 4).map((b) => b.y), [100, 50, 0, 99]);
  assert.deepEqual(bars.slice(0, 4).map((b) => Math.round(b.x)), [4, 44, 84, 124]);
  assert.ok(bars.every((b) => b.w === 32));
  // A few bars keep a bar's width (an eighth of the plot at most), centred.
  const one = barLayout([3], 400, 100);
  assert.deepEqual([one[0].x, one[0].w], [180, 40]);
  // Slots narrower than 3 px have no gap (a year of days in 360 px).
  const dense = barLayout(new Array(720).fill(1), 360, 50);
  assert.ok(dense.every((b) => b.w === 0.5 && b.h === 50));
  assert.deepEqual(barLayout([], 100, 10), []);
});

test('bucket labels: hours with the time, days as dates, both in UTC like the buckets', () => {
  assert.equal(bucketLabel('2026-12-06T14:00:00.000000Z', 'hour'), '12-06 14:00');
  assert.equal(bucketLabel('2026-12-06T00:00:00.000000Z', 'day'), '2026-12-06');
  assert.equal(bucketLabel('2026-12-31T23:00:00Z', 'hour'), '12-31 23:00');
});
