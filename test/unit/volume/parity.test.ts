import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isTesseraError } from '../../../src/errors.js';
import { computeParity, reconstruct, xorInto, xorIntoJs } from '../../../src/block/volume/parity.js';

test('native XOR equals the portable XOR, also at odd lengths and offsets', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.integer({ min: 0, max: 7 }), (bytes, shift) => {
    const a = Buffer.from(bytes);
    const src = Buffer.concat([Buffer.alloc(shift), randomBytes(a.length)]).subarray(shift);
    const n = Buffer.from(a);
    const j = Buffer.from(a);
    xorInto(n, src);
    xorIntoJs(j, src);
    assert.deepEqual(n, j);
    for (let i = 0; i < a.length; i++) assert.equal(n[i], (a[i] as number) ^ (src[i] as number));
  }));
});

for (const m of [1, 2] as const) {
  test(`raid${m === 1 ? 5 : 6}: any ${m} missing units are rebuilt exactly`, async () => {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 64 }), fc.nat(), fc.nat(),
      async (k, words, a, b) => {
        const len = m === 1 ? words * 3 : words * 8;
        const data = Array.from({ length: k }, () => randomBytes(len));
        const parity = await computeParity(data, m);
        assert.equal(parity.length, m);
        const full = [...data, ...parity];
        const units: Array<Buffer | null> = full.map((u) => Buffer.from(u));
        const lost = new Set([a % (k + m), b % (k + m)].slice(0, m));
        for (const i of lost) units[i] = null;
        await reconstruct(units, k, m);
        units.forEach((u, i) => assert.deepEqual(u, full[i], `unit ${i}`));
      }), { numRuns: 60 });
  });
}

test('raid6 P is the XOR of the data (row 0 of the code)', async () => {
  const data = [randomBytes(4096), randomBytes(4096), randomBytes(4096)];
  const [p6] = await computeParity(data, 2);
  const [p5] = await computeParity(data, 1);
  assert.deepEqual(p6, p5);
});

test('too many missing units is UNAVAILABLE, never a guess', async () => {
  const data = [randomBytes(64), randomBytes(64), randomBytes(64)];
  const units: Array<Buffer | null> = [...data, ...(await computeParity(data, 1))];
  units[0] = null; units[1] = null;
  await assert.rejects(reconstruct(units, 3, 1), (e: unknown) => isTesseraError(e, 'UNAVAILABLE'));
  const u6: Array<Buffer | null> = [...data, ...(await computeParity(data, 2))];
  u6[0] = null; u6[2] = null; u6[4] = null;
  await assert.rejects(reconstruct(u6, 3, 2), (e: unknown) => isTesseraError(e, 'UNAVAILABLE'));
});

test('raid6 refuses units that are not a multiple of 8 bytes rather than pad them', async () => {
  await assert.rejects(computeParity([Buffer.alloc(12), Buffer.alloc(12)], 2), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
});

test('units of unequal length are refused', async () => {
  await assert.rejects(computeParity([Buffer.alloc(8), Buffer.alloc(16)], 1), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
});
