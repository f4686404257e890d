import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mean, median } from '../../../bench/bench-stats.js';

test('bench stats: median of odd and even counts, unsorted input left as it was', () => {
  const xs = [0.62, 0.45, 0.78];
  assert.equal(median(xs), 0.62);
  assert.deepEqual(xs, [0.62, 0.45, 0.78]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.throws(() => median([]), /no values/);
});

test('bench stats: mean', () => {
  assert.equal(mean([100, 200]), 150);
  assert.throws(() => mean([]), /no values/);
});
