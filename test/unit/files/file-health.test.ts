import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FileHealth, type AskHolders } from '../../../src/files/file-health.js';
import type { Stripe } from '../../../src/files/erasure-stripe.js';

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
const view = NODES.map((nodeId) => ({ nodeId, weight: 1 }));
const rank = () => [...NODES];

/** A cluster as a table: node → ids (hex) it holds; ask answers from it, as a has-query would. */
function holdingsAsk(held: Map<string, Set<string>>, silent = new Set<string>()): AskHolders {
  return async (ids) => NODES.map((node) => ({ node, have: silent.has(node) ? [] : ids.map((id) => held.get(node)?.has(id.toString('hex')) === true) }));
}

function stripeOf(k: number, m: number): { d: Buffer; st: Stripe } {
  return { d: randomBytes(32), st: { c: randomBytes(32), size: 4096, k, m, s: Array.from({ length: k + m }, () => randomBytes(32)) } };
}

test('replicated chunks: full with r live holders, degraded with fewer, lost with none; a silent node holds nothing', async () => {
  const a = randomBytes(32), b = randomBytes(32), c = randomBytes(32);
  const held = new Map<string, Set<string>>([
    ['n1', new Set([a, b].map((x) => x.toString('hex')))],
    ['n2', new Set([a, b].map((x) => x.toString('hex')))],
    ['n3', new Set([a].map((x) => x.toString('hex')))],
    ['n4', new Set([b].map((x) => x.toString('hex')))],
  ]);
  const h = new FileHealth({ policy: { kind: 'replicas', r: 3, w: 2 }, nodes: view, rank, ask: holdingsAsk(held, new Set(['n4'])), stripe: () => Promise.reject(new Error('no stripes here')), maxDetail: 2 });
  await h.add([{ index: 0, id: a, size: 10 }, { index: 1, id: b, size: 10 }, { index: 2, id: c, size: 10 }]);
  assert.deepEqual(h.health, { fullRedundancy: 1, degraded: 1, lost: 1 });
  assert.equal(h.detail.length, 2, 'detail is bounded');
  assert.deepEqual(h.detail[1]!.holders, ['n1', 'n2']);
  assert.deepEqual(h.detail[0]!.expected, ['n1', 'n2', 'n3']);
});

test('erasure-coded chunks count distinct shards, not descriptor holders: k..k+m-1 shards is degraded, fewer than k is lost', async () => {
  const full = stripeOf(4, 2), degraded = stripeOf(4, 2), lost = stripeOf(4, 2), noDescriptor = stripeOf(4, 2);
  const held = new Map<string, Set<string>>(NODES.map((n) => [n, new Set<string>()]));
  const give = (node: string, ...ids: Buffer[]) => ids.forEach((id) => held.get(node)!.add(id.toString('hex')));
  for (const { d } of [full, degraded, lost]) for (const n of NODES) give(n, d);
  full.st.s.forEach((s, j) => give(NODES[j]!, s));
  // Every node keeps the descriptor, but two shards are gone, one of them held twice elsewhere.
  degraded.st.s.slice(0, 4).forEach((s, j) => give(NODES[j]!, s));
  give('n6', degraded.st.s[0]!);
  lost.st.s.slice(0, 3).forEach((s, j) => give(NODES[j]!, s));
  const stripes = new Map([full, degraded, lost].map((x) => [x.d.toString('hex'), x.st]));
  const h = new FileHealth({
    policy: { kind: 'ec', k: 4, m: 2 },
    nodes: view,
    rank,
    ask: holdingsAsk(held),
    stripe: async (d) => {
      const st = stripes.get(d.toString('hex'));
      if (!st) throw new Error('descriptor not found');
      return st;
    },
    maxDetail: 10,
  });
  assert.ok(h.batchSize * 6 <= 1024, 'one has-query covers every shard of a batch');
  await h.add([full, degraded, lost, noDescriptor].map((x, index) => ({ index, id: x.d, size: 4096 })));
  assert.deepEqual(h.health, { fullRedundancy: 1, degraded: 1, lost: 2 });
  assert.deepEqual(h.detail[1]!.holders, ['n1', 'n2', 'n3', 'n4', 'n6']);
  assert.deepEqual(h.detail[3]!.holders, []);
});
