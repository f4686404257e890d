import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRangeHeader } from '../../../src/api/files-routes.js';

test('single byte ranges become [start, end) within the file', () => {
  assert.equal(parseRangeHeader(undefined, 100), undefined);
  assert.deepEqual(parseRangeHeader('bytes=0-0', 100), { start: 0, end: 1 });
  assert.deepEqual(parseRangeHeader('bytes=10-19', 100), { start: 10, end: 20 });
  assert.deepEqual(parseRangeHeader('bytes=90-', 100), { start: 90, end: 100 });
  assert.deepEqual(parseRangeHeader('bytes=90-1000', 100), { start: 90, end: 100 }, 'an end past the file is clipped');
  assert.deepEqual(parseRangeHeader('bytes=-10', 100), { start: 90, end: 100 });
  assert.deepEqual(parseRangeHeader('bytes=-1000', 100), { start: 0, end: 100 });
});

test('unsatisfiable, multi-part and malformed ranges are refused', () => {
  for (const h of ['bytes=100-', 'bytes=5-4', 'bytes=-0', 'bytes=0-1,5-6', 'items=0-1', 'bytes=-', 'bytes=a-b', `bytes=0-${'9'.repeat(200)}`]) {
    assert.throws(() => parseRangeHeader(h, 100), { code: 'BAD_INPUT' }, h);
  }
  assert.throws(() => parseRangeHeader('bytes=0-', 0), { code: 'BAD_INPUT' }, 'an empty file has no satisfiable range');
});
