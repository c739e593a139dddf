// node --test: the pure parts of the UI's Markdown reader and search highlighting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBlocks, parseInline } from '../lib/markdown.js';
import { split, termsOf, hasHit } from '../lib/highlight.js';

test('blocks: fences, headings, lists and paragraphs', () => {
  const md = '# Plan\nFirst line\nsecond line\n\n- a\n- b\n  continued\n\n1. one\n2. two\n\n```python\nx = 1 < 2\n```\nafter';
  assert.deepEqual(parseBlocks(md), [
    { type: 'heading', level: 1, text: 'Plan' },
    { type: 'para', text: 'First line\nsecond line' },
    { type: 'list', ordered: false, start: 1, items: ['a', 'b\ncontinued'] },
    { type: 'list', ordered: true, start: 1, items: ['one', 'two'] },
    { type: 'code', lang: 'python', text: 'x = 1 < 2' },
    { type: 'para', text: 'after' },
  ]);
});

test('an unclosed fence runs to the end, and nothing is lost', () => {
  assert.deepEqual(parseBlocks('```\n<script>alert(1)</script>'), [
    { type: 'code', lang: '', text: '<script>alert(1)</script>' },
  ]);
  assert.deepEqual(parseBlocks(''), []);
  assert.deepEqual(parseBlocks('plain'), [{ type: 'para', text: 'plain' }]);
});

test('inline: code, strong, em and maths; HTML stays text', () => {
  assert.deepEqual(parseInline('use `a<b>` and **bold** or *em*, $x^2$ <img src=x onerror=alert(1)>'), [
    { t: 'text', v: 'use ' }, { t: 'code', v: 'a<b>' }, { t: 'text', v: ' and ' },
    { t: 'strong', v: 'bold' }, { t: 'text', v: ' or ' }, { t: 'em', v: 'em' }, { t: 'text', v: ', ' },
    { t: 'math', v: 'x^2' }, { t: 'text', v: ' <img src=x onerror=alert(1)>' },
  ]);
  // Arithmetic is not emphasis; identifiers keep their underscores.
  assert.deepEqual(parseInline('2 * 3 * 4 = 24'), [{ t: 'text', v: '2 * 3 * 4 = 24' }]);
  assert.deepEqual(parseInline('__init__ and window.__xss=1'), [{ t: 'text', v: '__init__ and window.__xss=1' }]);
});

test('highlight: terms of a search, case-insensitive runs', () => {
  assert.deepEqual(termsOf('Celsius to  a FAHRENHEIT celsius'), ['fahrenheit', 'celsius', 'to']);
  assert.deepEqual(termsOf('温度'), ['温度']);
  assert.deepEqual(split('Convert 68°F to Celsius', ['celsius']), [
    { text: 'Convert 68°F to ', hit: false }, { text: 'Celsius', hit: true },
  ]);
  assert.deepEqual(split('abc', []), [{ text: 'abc', hit: false }]);
  assert.equal(split('x'.repeat(100000) + 'needle', ['needle']).length, 2);
  assert.ok(hasHit('The NEEDLE', ['needle']));
  assert.ok(!hasHit('hay', ['needle']));
});
