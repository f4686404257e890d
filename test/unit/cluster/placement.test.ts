import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { placeChunk, Placer, type WeightedNode } from '../../../src/cluster/placement.js';
import { isTesseraError } from '../../../src/errors.js';

const IDS = 100_000;

function ids(n: number, seed: string): Uint8Array[] {
  // Chunk ids are SHA-256 digests, so derive them the same way, reproducibly.
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return out;
}

function nodes(n: number, weight = 1): WeightedNode[] {
  return Array.from({ length: n }, (_, i) => ({ nodeId: `node-${i.toString(16).padStart(4, '0')}`, weight }));
}

const all = ids(IDS, 'placement');

test('equal weights spread ids evenly: busiest node holds at most 1.1x the mean', () => {
  const ns = nodes(10);
  const counts = new Map<string, number>();
  for (const id of all) {
    const [w] = placeChunk(id, ns, 1);
    counts.set(w!, (counts.get(w!) ?? 0) + 1);
  }
  assert.equal(counts.size, 10);
  const max = Math.max(...counts.values());
  assert.ok(max <= 1.1 * (IDS / 10), `busiest node holds ${max}, mean ${IDS / 10}`);
});

test('adding an 11th node moves about 1/11 of the ids, all of them to the new node', () => {
  const ten = nodes(10);
  const eleven = [...ten, { nodeId: 'node-new', weight: 1 }];
  let moved = 0;
  for (const id of all) {
    const a = placeChunk(id, ten, 1)[0];
    const b = placeChunk(id, eleven, 1)[0];
    if (a !== b) {
      moved++;
      assert.equal(b, 'node-new', 'an id may only move to the node that joined');
    }
  }
  const expected = IDS / 11;
  assert.ok(Math.abs(moved - expected) <= 0.2 * expected, `moved ${moved}, expected about ${expected}`);
});

test('a node of weight 2 gets about twice the share of a weight-1 node', () => {
  const ns = [...nodes(4), { nodeId: 'heavy', weight: 2 }];
  const counts = new Map<string, number>();
  for (const id of all) {
    const [w] = placeChunk(id, ns, 1);
    counts.set(w!, (counts.get(w!) ?? 0) + 1);
  }
  const heavy = counts.get('heavy')!;
  const lightMean = (IDS - heavy) / 4;
  const ratio = heavy / lightMean;
  assert.ok(ratio > 1.85 && ratio < 2.15, `weight-2 share ratio ${ratio.toFixed(3)}`);
  // Exact expectation is 2/6 of all ids.
  assert.ok(Math.abs(heavy - IDS / 3) < 0.03 * IDS, `heavy node holds ${heavy}`);
});

test('replica sets: every replica position is balanced too (count = 3)', () => {
  const ns = nodes(10);
  const counts = new Map<string, number>();
  for (const id of all.slice(0, 30_000)) {
    for (const n of placeChunk(id, ns, 3)) counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  const mean = 90_000 / 10;
  for (const [n, c] of counts) assert.ok(Math.abs(c - mean) < 0.06 * mean, `${n} holds ${c} replicas`);
});

test('order is deterministic and independent of the node list order', () => {
  const ns = nodes(12);
  const shuffled = [...ns].reverse();
  for (const id of all.slice(0, 2000)) {
    const a = placeChunk(id, ns, 5);
    assert.deepEqual(new Placer(ns).place(id, 5), a);
    assert.deepEqual(placeChunk(id, shuffled, 5), a);
  }
});

test('count above the node count returns every node, distinct; count 0 returns none', () => {
  const ns = nodes(7);
  for (const id of all.slice(0, 100)) {
    const r = placeChunk(id, ns, 50);
    assert.equal(r.length, 7);
    assert.equal(new Set(r).size, 7);
    assert.deepEqual([...r].sort(), ns.map((n) => n.nodeId).sort());
    assert.deepEqual(placeChunk(id, ns, 0), []);
  }
  assert.deepEqual(placeChunk(all[0]!, [], 3), []);
});

test('top-k is a prefix of the full ranking, for both selection paths (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 64 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 0, max: 45 }),
      fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), { minLength: 40, maxLength: 40 }),
      (id, n, k, ws) => {
        const ns = Array.from({ length: n }, (_, i) => ({ nodeId: `p${i}`, weight: ws[i]! }));
        const full = placeChunk(id, ns, n);
        const top = placeChunk(id, ns, k);
        assert.deepEqual(top, full.slice(0, Math.min(k, n)));
        assert.equal(new Set(full).size, n);
      },
    ),
    { numRuns: 300 },
  );
});

test('a mutated node array is re-read rather than served from stale cached state', () => {
  const ns = nodes(5);
  const id = randomBytes(32);
  const before = placeChunk(id, ns, 5);
  const winner = ns.find((n) => n.nodeId === before[0])!;
  winner.weight = 1e-9;
  const after = placeChunk(id, ns, 5);
  assert.equal(after[4], before[0]);
});

test('rejects invalid weights, duplicate node ids and bad counts with BAD_INPUT', () => {
  const id = randomBytes(32);
  for (const w of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => placeChunk(id, [{ nodeId: 'a', weight: w }], 1), (e) => isTesseraError(e, 'BAD_INPUT') && /weight/.test(e.message));
  }
  assert.throws(
    () => placeChunk(id, [{ nodeId: 'a', weight: 1 }, { nodeId: 'a', weight: 1 }], 1),
    (e) => isTesseraError(e, 'BAD_INPUT') && /twice/.test(e.message),
  );
  for (const c of [-1, 1.5, Number.NaN]) {
    assert.throws(() => placeChunk(id, nodes(3), c), (e) => isTesseraError(e, 'BAD_INPUT') && /count/.test(e.message));
  }
});
