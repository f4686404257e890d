import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isTesseraError } from '../../../src/errors.js';
import { MAX_CHUNK_BYTES } from '../../../src/limits.js';
import {
  MAX_EC_SHARDS,
  SHARD_ALIGN_BYTES,
  decodeShards,
  encodeShards,
  rebuildShards,
  shardSizeFor,
} from '../../../src/content/erasure.js';

/** Every subset of {0..n-1} with at most `max` members, as index arrays. */
function subsetsUpTo(n: number, max: number): number[][] {
  const out: number[][] = [];
  for (let mask = 0; mask < 1 << n; mask++) {
    const members: number[] = [];
    for (let i = 0; i < n; i++) if (mask & (1 << i)) members.push(i);
    if (members.length <= max) out.push(members);
  }
  return out;
}

for (const [k, m] of [
  [4, 2],
  [10, 4],
] as const) {
  test(`${k}+${m}: the chunk is rebuilt with every combination of up to ${m} shards missing`, async () => {
    const data = randomBytes(100_003);
    const { shards, shardSize, padding } = await encodeShards(data, { k, m });
    assert.equal(shards.length, k + m);
    assert.equal(shardSize % SHARD_ALIGN_BYTES, 0);
    assert.equal(shardSize * k - padding, data.length);
    for (const s of shards) assert.equal(s.length, shardSize);
    assert.deepEqual(Buffer.concat(shards.slice(0, k)).subarray(0, data.length), data);
    const combos = subsetsUpTo(k + m, m);
    let checked = 0;
    for (const missing of combos) {
      const slots = shards.map((s, i) => (missing.includes(i) ? null : Buffer.from(s)));
      assert.deepEqual(await decodeShards(slots, { k, m }, data.length), data, `missing ${missing.join(',')}`);
      checked++;
    }
    assert.equal(checked, combos.length);
  });
}

test('rebuildShards restores missing parity and data shards exactly', async () => {
  const data = randomBytes(65_536);
  const { shards } = await encodeShards(data, { k: 4, m: 2 });
  for (const missing of subsetsUpTo(6, 2)) {
    const slots = shards.map((s, i) => (missing.includes(i) ? undefined : s));
    const rebuilt = await rebuildShards(slots, { k: 4, m: 2 });
    rebuilt.forEach((s, i) => assert.deepEqual(s, shards[i], `shard ${i} with ${missing.join(',')} missing`));
  }
});

test('tiny and unaligned chunks pad to aligned shards and round trip', async () => {
  for (const size of [1, 7, 8, 9, 33, 4095]) {
    const data = randomBytes(size);
    const { shards, shardSize, padding } = await encodeShards(data, { k: 4, m: 2 });
    assert.equal(shardSize, shardSizeFor(size, 4));
    assert.ok(padding >= 0 && padding < shardSize * 4);
    assert.deepEqual(await decodeShards([null, shards[1], shards[2], shards[3], shards[4], null], { k: 4, m: 2 }, size), data);
  }
});

test('too few shards is UNAVAILABLE; inconsistent input is BAD_INPUT', async () => {
  const data = randomBytes(10_000);
  const { shards } = await encodeShards(data, { k: 4, m: 2 });
  await assert.rejects(
    decodeShards([null, null, null, shards[3], shards[4], shards[5]], { k: 4, m: 2 }, data.length),
    (e) => isTesseraError(e, 'UNAVAILABLE') && /3 of 6/.test((e as Error).message),
  );
  await assert.rejects(decodeShards(shards.slice(0, 5), { k: 4, m: 2 }, data.length), (e) => isTesseraError(e, 'BAD_INPUT'));
  const uneven = shards.map((s, i) => (i === 2 ? s.subarray(8) : s));
  await assert.rejects(decodeShards(uneven, { k: 4, m: 2 }, data.length), (e) => isTesseraError(e, 'BAD_INPUT') && /shard 2/.test((e as Error).message));
  await assert.rejects(decodeShards(shards, { k: 4, m: 2 }, data.length + 5000), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(decodeShards(shards, { k: 4, m: 2 }, 0), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('parameter bounds are enforced', async () => {
  const data = randomBytes(64);
  for (const [k, m] of [[0, 2], [4, 0], [17, 2], [4, 7], [15, 6], [2.5, 1]] as const) {
    await assert.rejects(encodeShards(data, { k, m }), (e) => isTesseraError(e, 'BAD_INPUT'), `${k}+${m}`);
  }
  assert.ok(15 + 6 > MAX_EC_SHARDS);
  await assert.rejects(encodeShards(Buffer.alloc(0), { k: 4, m: 2 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(encodeShards(Buffer.alloc(MAX_CHUNK_BYTES + 1), { k: 4, m: 2 }), (e) => isTesseraError(e, 'TOO_LARGE'));
  const max = await encodeShards(Buffer.alloc(MAX_CHUNK_BYTES, 3), { k: 16, m: 4 });
  assert.equal(max.shards.length, 20);
});
