import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CAPACITY_RETELL_SHARE, capacityToTell } from '../../../src/cluster/advertised-capacity.js';

const GIB = 2 ** 30;
/** The placement weight files/peers.ts derives from a told capacity. */
const weight = (capacity: number) => Math.max(1, Math.round(capacity / GIB));

test('the first capacity, and no capacity, are told at once', () => {
  assert.equal(capacityToTell(undefined, 70 * GIB), 70 * GIB);
  assert.equal(capacityToTell(70 * GIB, 0), 0, 'a draining node stops being chosen at once');
  assert.equal(capacityToTell(0, 70 * GIB), 70 * GIB, 'a node back from draining is chosen at once');
});

test('free space drained by others in steps of 256 MiB moves the placement weight once per tenth, not once per GiB', () => {
  const start = 69.75 * GIB;
  let told: number | undefined;
  const weights: number[] = [];
  let retold = 0;
  for (let drained = 0; drained <= 20 * GIB; drained += 256 << 20) {
    const before = told;
    told = capacityToTell(told, start - drained);
    if (before !== undefined && told !== before) retold++;
    if (weights.at(-1) !== weight(told)) weights.push(weight(told));
  }
  // Measured as is, the weight would have taken 21 values (70 down to 50); told by tenths, a few.
  assert.ok(weights.length <= 4, `weights told: ${weights.join(', ')}`);
  assert.ok(retold >= 2, `capacity must still follow a disk that fills: retold ${retold} times`);
  // Never more than a tenth away from the truth.
  assert.ok(Math.abs((told as number) - (start - 20 * GIB)) < (told as number) * CAPACITY_RETELL_SHARE);
});

test('a measurement that swings around a GiB boundary is told once', () => {
  let told = capacityToTell(undefined, 69.51 * GIB);
  for (let i = 0; i < 100; i++) told = capacityToTell(told, (i % 2 === 0 ? 69.49 : 69.51) * GIB);
  assert.equal(told, 69.51 * GIB);
});

test('a grown disk or quota is told once it is a tenth larger', () => {
  assert.equal(capacityToTell(100 * GIB, 105 * GIB), 100 * GIB);
  assert.equal(capacityToTell(100 * GIB, 110 * GIB), 110 * GIB);
  assert.equal(capacityToTell(100 * GIB, 90 * GIB), 90 * GIB);
});

test('a capacity that is not a finite number ≥ 0 is refused', () => {
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => capacityToTell(undefined, bad), RangeError);
});
