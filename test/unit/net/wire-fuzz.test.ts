/**
 * The fuzz targets of `npm run bench -- fuzz` at a smaller count: frames, control sections,
 * membership messages and the admission handshake only ever refuse with a TesseraError, and no
 * input exceeds the per-input time bound. The bench runs 10^6 inputs; this runs a few thousand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzControl, fuzzFrames, fuzzHandshake, fuzzMembership } from '../../../bench/fuzz-targets.js';

const SEED = 16;

test('fuzz frames', () => {
  assert.equal(fuzzFrames(3000, SEED).inputs, 3000);
});

test('fuzz control sections, bignums included', () => {
  assert.equal(fuzzControl(3000, SEED).inputs, 3000);
});

test('fuzz membership messages', async () => {
  assert.equal((await fuzzMembership(2000, SEED)).inputs, 2000);
});

test('fuzz the admission handshake', async () => {
  assert.equal((await fuzzHandshake(1500, SEED)).inputs, 1500);
});
