import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { placeChunk, Placer, type WeightedNode } from '../../../src/cluster/placement.js';

const IDS = 100_000;

function ids(n: number, seed: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return out;
}

/** `perZone` nodes in each of `zones` zones, named so a node's zone is visible in its id. */
function zoned(zones: number, perZone: number, weight = 1): WeightedNode[] {
  const out: WeightedNode[] = [];
  for (let z = 0; z < zones; z++) {
    for (let i = 0; i < perZone; i++) out.push({ nodeId: `z${z}-n${i}`, weight, zone: `zone-${z}` });
  }
  return out;
}

const all = ids(IDS, 'zones');

function zoneCounts(placer: Placer, nodes: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of nodes) {
    const z = placer.zoneOfNode(n)!;
    m.set(z, (m.get(z) ?? 0) + 1);
  }
  return m;
}

test('R = 3 over 12 nodes in 3 zones: every one of 100,000 ids has a copy in each zone', () => {
  const placer = new Placer(zoned(3, 4));
  for (const id of all) {
    const r = placer.place(id, 3);
    assert.equal(r.length, 3);
    assert.equal(zoneCounts(placer, r).size, 3, `id placed on ${r.join(',')}`);
  }
});

test('EC 4+2 over 3 zones: at most 2 shards in any zone; over 4 zones at most ceil(6/4) = 2', () => {
  for (const zones of [3, 4]) {
    const placer = new Placer(zoned(zones, 4));
    const cap = Math.ceil(6 / zones);
    for (const id of all.slice(0, 30_000)) {
      const r = placer.place(id, 6);
      assert.equal(new Set(r).size, 6);
      for (const [z, c] of zoneCounts(placer, r)) assert.ok(c <= cap, `${z} holds ${c} of 6 shards over ${zones} zones`);
    }
  }
});

test('fewer zones than copies: R = 3 over 2 zones puts 2 in one and 1 in the other', () => {
  const placer = new Placer(zoned(2, 5));
  const firstZoneTwice = new Map<string, number>();
  for (const id of all.slice(0, 20_000)) {
    const counts = [...zoneCounts(placer, placer.place(id, 3)).values()].sort();
    assert.deepEqual(counts, [1, 2]);
    const z = placer.zoneOfNode(placer.place(id, 1)[0]!)!;
    firstZoneTwice.set(z, (firstZoneTwice.get(z) ?? 0) + 1);
  }
  // Which zone gets the second copy is spread too.
  for (const c of firstZoneTwice.values()) assert.ok(Math.abs(c - 10_000) < 500, `zone ranked first ${c} times of 20,000`);
});

test('a zone too small for its share spills to the others, never repeating a node', () => {
  const ns = [...zoned(2, 5), { nodeId: 'lonely', weight: 1, zone: 'small' }];
  const placer = new Placer(ns);
  for (const id of all.slice(0, 10_000)) {
    const r = placer.place(id, 6);
    assert.equal(new Set(r).size, 6);
    const c = zoneCounts(placer, r);
    assert.ok((c.get('small') ?? 0) <= 1);
    for (const [z, n] of c) if (z !== 'small') assert.ok(n <= 3, `${z} holds ${n}`);
  }
});

test('balance: with R = 3 over 3 equal zones of 4, the busiest node holds at most 1.1x the mean', () => {
  const placer = new Placer(zoned(3, 4));
  const counts = new Map<string, number>();
  for (const id of all) for (const n of placer.place(id, 3)) counts.set(n, (counts.get(n) ?? 0) + 1);
  const mean = (3 * IDS) / 12;
  const max = Math.max(...counts.values());
  assert.equal(counts.size, 12);
  assert.ok(max / mean <= 1.1, `max/mean ${(max / mean).toFixed(3)}`);
});

test('weights still count within a zone: a weight-2 node gets about twice its zone-mates share', () => {
  const ns = zoned(3, 4);
  ns[0] = { ...ns[0]!, weight: 2 };
  const placer = new Placer(ns);
  const counts = new Map<string, number>();
  for (const id of all) for (const n of placer.place(id, 3)) counts.set(n, (counts.get(n) ?? 0) + 1);
  const heavy = counts.get(ns[0]!.nodeId)!;
  const mates = [1, 2, 3].map((i) => counts.get(ns[i]!.nodeId)!);
  const ratio = heavy / (mates.reduce((a, b) => a + b, 0) / 3);
  assert.ok(ratio > 1.85 && ratio < 2.15, `weight-2 share ratio within its zone ${ratio.toFixed(3)}`);
});

test('adding a node to one zone moves about its share, and only to the newcomer', () => {
  const before = zoned(3, 4);
  const after = [...before, { nodeId: 'z1-new', weight: 1, zone: 'zone-1' }];
  const a = new Placer(before);
  const b = new Placer(after);
  let moved = 0;
  for (const id of all) {
    const x = a.place(id, 3);
    const y = b.place(id, 3);
    for (const n of y) {
      if (x.includes(n)) continue;
      moved++;
      assert.equal(n, 'z1-new', 'a copy may only move to the node that joined');
    }
  }
  // The newcomer's fair share of 3 * IDS copies is 1/13 of them; zone-1 gaining weight shifts a
  // little more its way, so allow 25 %.
  const share = (3 * IDS) / 13;
  assert.ok(Math.abs(moved - share) <= 0.25 * share, `moved ${moved} copies, share ${share.toFixed(0)}`);
});

test('a node changing zone moves only copies of ids it held or now wins', () => {
  const before = zoned(3, 4);
  const after = before.map((n) => (n.nodeId === 'z0-n0' ? { ...n, zone: 'zone-2' } : n));
  const a = new Placer(before);
  const b = new Placer(after);
  let changed = 0;
  for (const id of all.slice(0, 30_000)) {
    const x = a.place(id, 3);
    const y = b.place(id, 3);
    if (x.join() === y.join()) continue;
    changed++;
    assert.equal(zoneCounts(b, y).size, 3);
  }
  // z0-n0 holds about a quarter of zone-0's copies and its move shifts zone weights by 1/12.
  assert.ok(changed < 0.5 * 30_000, `${changed} of 30,000 ids changed placement`);
});

test('one zone, named or not, ranks exactly as zone-less placement', () => {
  const plain = zoned(1, 9).map(({ nodeId, weight }) => ({ nodeId, weight }));
  const named = zoned(1, 9);
  for (const id of all.slice(0, 5000)) assert.deepEqual(placeChunk(id, named, 9), placeChunk(id, plain, 9));
});

test('zoned: top-k is a prefix of the full ranking and lists every node once (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 40 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.double({ min: 0.01, max: 50, noNaN: true })), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 0, max: 35 }),
      (id, spec, k) => {
        const ns = spec.map(([z, w], i) => ({ nodeId: `p${i}`, weight: w, zone: `z${z}` }));
        const full = placeChunk(id, ns, ns.length);
        assert.equal(new Set(full).size, ns.length);
        assert.deepEqual(placeChunk(id, ns, k), full.slice(0, Math.min(k, ns.length)));
        // The first min(k, zones) results are in distinct zones.
        const zones = new Set(ns.map((n) => n.zone)).size;
        const head = full.slice(0, zones).map((n) => ns.find((x) => x.nodeId === n)!.zone);
        assert.equal(new Set(head).size, zones);
      },
    ),
    { numRuns: 400 },
  );
});

test('a placer reports its zones and rebuilds when a node changes zone', () => {
  const ns = zoned(2, 2);
  const p = new Placer(ns);
  assert.equal(p.zoneCount, 2);
  assert.equal(p.zoneOfNode('z1-n0'), 'zone-1');
  assert.equal(p.zoneOfNode('missing'), undefined);
  assert.ok(p.matches(ns));
  assert.ok(!p.matches(ns.map((n, i) => (i === 0 ? { ...n, zone: 'zone-9' } : n))));
});
