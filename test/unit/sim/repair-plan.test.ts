/**
 * The repair planner: targets follow placement over the live nodes, sources are live holders,
 * budgets hold, surplus copies go only once every target has the chunk, and the last good copy is
 * never dropped, whatever the holdings (property test, plan → confirm → plan until nothing is left).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { placeChunk } from '../../../src/cluster/placement.js';
import { planRepair, type ChunkHolding } from '../../../src/cluster/repair-plan.js';
import { isTesseraError } from '../../../src/errors.js';

const idOf = (i: number) => createHash('sha256').update(`c${i}`).digest();
const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ nodeId: `node${i}`, weight: 1 }));

/** Applies plans until none is left, checking every plan against the holdings it was made from. */
function repairAll(chunks: ChunkHolding[], live: ReturnType<typeof nodes>, replicas: number, budget = {}): { rounds: number; copies: number } {
  const liveIds = new Set(live.map((x) => x.nodeId));
  let rounds = 0;
  let copies = 0;
  for (;;) {
    const plan = planRepair({ chunks, live, replicas, budget });
    if (plan.copies.length === 0 && plan.drops.length === 0) return { rounds, copies };
    assert.ok(++rounds < 1000, 'repair does not converge');
    for (const c of plan.copies) {
      assert.ok(chunks[c.chunk]!.holders.includes(c.from), 'a copy comes from a holder');
      assert.ok(liveIds.has(c.from) && liveIds.has(c.to), 'copies run between live nodes');
      assert.ok(!chunks[c.chunk]!.holders.includes(c.to), 'no copy to a node that already holds it');
    }
    // Drops are checked before the copies are confirmed: they must already be safe without them.
    const dropping = new Map<number, string[]>();
    for (const d of plan.drops) dropping.set(d.chunk, [...(dropping.get(d.chunk) ?? []), d.node]);
    for (const [i, gone] of dropping) {
      const c = chunks[i]!;
      const left = c.holders.filter((h) => liveIds.has(h) && !gone.includes(h));
      assert.ok(left.length >= Math.min(replicas, live.length), `dropping leaves chunk ${i} with ${left.length} live copies`);
      assert.ok(!plan.copies.some((cp) => cp.chunk === i), 'no drop in the plan that still copies the chunk');
    }
    for (const c of plan.copies) chunks[c.chunk]!.holders = [...chunks[c.chunk]!.holders, c.to];
    for (const d of plan.drops) chunks[d.chunk]!.holders = chunks[d.chunk]!.holders.filter((h) => h !== d.node);
    copies += plan.copies.length;
  }
}

test('after two of twelve nodes fail, every chunk with a survivor ends on its placement over the live nodes', () => {
  const all = nodes(12);
  const dead = new Set(['node3', 'node7']);
  const live = all.filter((x) => !dead.has(x.nodeId));
  const chunks: ChunkHolding[] = Array.from({ length: 500 }, (_, i) => ({ id: idOf(i), holders: placeChunk(idOf(i), all, 3) }));
  const first = planRepair({ chunks, live, replicas: 3 });
  const affected = chunks.filter((c) => c.holders.some((h) => dead.has(h))).length;
  assert.ok(affected > 100);
  assert.equal(first.underReplicated, affected);
  const lost = chunks.filter((c) => c.holders.every((h) => dead.has(h))).length;
  assert.equal(first.lost.length, lost);
  repairAll(chunks, live, 3);
  const final = planRepair({ chunks, live, replicas: 3 });
  assert.equal(final.underReplicated, lost, 'only the lost chunks stay under-replicated');
  chunks.forEach((c, i) => {
    if (final.lost.includes(i)) return;
    const held = c.holders.filter((h) => !dead.has(h)).sort();
    assert.deepEqual(held, placeChunk(c.id, live, 3).sort());
  });
});

test('budgets cap each plan and defer the rest to later plans', () => {
  const all = nodes(6);
  const live = all.slice(0, 5);
  const chunks: ChunkHolding[] = Array.from({ length: 300 }, (_, i) => ({ id: idOf(i), holders: placeChunk(idOf(i), all, 2) }));
  const plan = planRepair({ chunks, live, replicas: 2, budget: { maxCopies: 1000, maxPerSource: 5, maxPerTarget: 7 } });
  const per = (k: 'from' | 'to') => Math.max(...[...new Set(plan.copies.map((c) => c[k]))].map((n) => plan.copies.filter((c) => c[k] === n).length));
  assert.ok(plan.copies.length > 0 && plan.deferred > 0);
  assert.ok(per('from') <= 5 && per('to') <= 7);
  const tight = planRepair({ chunks, live, replicas: 2, budget: { maxCopies: 3 } });
  assert.equal(tight.copies.length, 3);
  const { rounds } = repairAll(chunks, live, 2, { maxPerSource: 5, maxPerTarget: 7 });
  assert.ok(rounds > 1);
});

test('a chunk whose every holder is dead is reported lost and never planned', () => {
  const live = nodes(4);
  const plan = planRepair({ chunks: [{ id: idOf(1), holders: ['gone1', 'gone2'] }], live, replicas: 3 });
  assert.deepEqual(plan.lost, [0]);
  assert.equal(plan.copies.length + plan.drops.length, 0);
});

test('a node that returns with a surplus copy loses it only when the targets already hold the chunk', () => {
  const live = nodes(5);
  const id = idOf(9);
  const targets = placeChunk(id, live, 2);
  const extra = live.map((x) => x.nodeId).find((x) => !targets.includes(x))!;
  const partial = planRepair({ chunks: [{ id, holders: [targets[0]!, extra] }], live, replicas: 2 });
  assert.deepEqual(partial.drops, []);
  assert.deepEqual(partial.copies.map((c) => c.to), [targets[1]]);
  const full = planRepair({ chunks: [{ id, holders: [...targets, extra] }], live, replicas: 2 });
  assert.deepEqual(full.drops, [{ chunk: 0, node: extra }]);
});

test('bad replica counts and budgets are refused', () => {
  const live = nodes(3);
  for (const bad of [0, 17, 1.5]) {
    assert.throws(() => planRepair({ chunks: [], live, replicas: bad }), (e) => isTesseraError(e, 'BAD_INPUT'));
  }
  assert.throws(() => planRepair({ chunks: [], live, replicas: 2, budget: { maxPerSource: -1 } }), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('property: any holdings and any live set converge without ever dropping below the policy', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.array(fc.integer({ min: 0, max: 11 }), { maxLength: 6 }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 1, max: 8 }),
      (nLive, replicas, held, perNode) => {
        const live = nodes(nLive);
        const chunks = held.map((hs, i) => ({ id: idOf(i), holders: [...new Set(hs.map((h) => `node${h}`))] }));
        repairAll(chunks, live, replicas, { maxPerSource: perNode, maxPerTarget: perNode });
        const liveIds = new Set(live.map((x) => x.nodeId));
        chunks.forEach((c, i) => {
          const had = held[i]!.some((h) => liveIds.has(`node${h}`));
          const now = c.holders.filter((h) => liveIds.has(h)).length;
          assert.equal(now, had ? Math.min(replicas, nLive) : 0);
        });
      },
    ),
    { numRuns: 150, seed: 7 },
  );
});
