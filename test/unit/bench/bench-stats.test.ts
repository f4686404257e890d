import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bracketingBaselines, mean, median } from '../../../bench/bench-stats.js';

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

test('bench stats: each run is bracketed by the baselines just before and after it', () => {
  assert.deepEqual(bracketingBaselines([100, 200, 50], 2), [150, 125]);
  assert.deepEqual(bracketingBaselines([10], 0), []);
  assert.throws(() => bracketingBaselines([1, 2], 2), /2 runs need 3 bracketing baselines, got 2/);
});
