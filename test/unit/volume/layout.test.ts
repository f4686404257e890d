import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTesseraError } from '../../../src/errors.js';
import {
  Layout, LAYOUT_KINDS, MAX_MEMBERS, MAX_STRIPE_UNIT_BYTES, MIN_MEMBERS, MIN_STRIPE_UNIT_BYTES, type LayoutKind,
} from '../../../src/block/volume/layout.js';

const kindArb = fc.constantFrom(...LAYOUT_KINDS);
const layoutArb = kindArb.chain((kind) =>
  fc.record({
    kind: fc.constant(kind),
    members: fc.integer({ min: MIN_MEMBERS[kind], max: 10 }),
    unitSize: fc.constantFrom(4096, 8192, 65536),
    stripes: fc.integer({ min: 1, max: 40 }),
  }).map((r) => new Layout({ kind: r.kind, members: r.members, unitSize: r.unitSize, memberSize: r.stripes * r.unitSize + 100 })));

test('usable size per layout', () => {
  const u = 65536;
  const ms = 10 * u + 5;
  assert.equal(new Layout({ kind: 'raid0', members: 3, memberSize: ms }).size, 30 * u);
  assert.equal(new Layout({ kind: 'raid1', members: 3, memberSize: ms }).size, 10 * u);
  assert.equal(new Layout({ kind: 'raid5', members: 4, memberSize: ms }).size, 30 * u);
  assert.equal(new Layout({ kind: 'raid6', members: 6, memberSize: ms }).size, 40 * u);
  assert.equal(new Layout({ kind: 'raid5', members: 4, memberSize: ms }).memberSize, 10 * u);
});

test('bounds on members and unit size are enforced', () => {
  const bad = (f: () => unknown, code: 'BAD_INPUT' | 'TOO_LARGE') =>
    assert.throws(f, (e: unknown) => isTesseraError(e, code));
  for (const kind of LAYOUT_KINDS) bad(() => new Layout({ kind, members: MIN_MEMBERS[kind] - 1, memberSize: 1 << 20 }), 'BAD_INPUT');
  bad(() => new Layout({ kind: 'raid0', members: MAX_MEMBERS + 1, memberSize: 1 << 20 }), 'TOO_LARGE');
  bad(() => new Layout({ kind: 'raid5', members: 3, memberSize: 1 << 20, unitSize: MIN_STRIPE_UNIT_BYTES / 2 }), 'BAD_INPUT');
  bad(() => new Layout({ kind: 'raid5', members: 3, memberSize: 1 << 20, unitSize: MAX_STRIPE_UNIT_BYTES * 2 }), 'BAD_INPUT');
  bad(() => new Layout({ kind: 'raid5', members: 3, memberSize: 1 << 20, unitSize: 65536 + 4096 }), 'BAD_INPUT');
  bad(() => new Layout({ kind: 'nope' as LayoutKind, members: 3, memberSize: 1 << 20 }), 'BAD_INPUT');
  bad(() => new Layout({ kind: 'raid1', members: 2, memberSize: 2 ** 51 }), 'TOO_LARGE');
  const l = new Layout({ kind: 'raid0', members: 2, memberSize: 1 << 20 });
  bad(() => l.mapRange(l.size - 1, 2), 'BAD_INPUT');
  bad(() => l.mapRange(-1, 1), 'BAD_INPUT');
});

test('left-symmetric raid5 rotation matches md for 4 members', () => {
  const l = new Layout({ kind: 'raid5', members: 4, memberSize: 8 * 4096, unitSize: 4096 });
  // stripe 0: D0 D1 D2 P ; stripe 1: D1 D2 P D0 ; stripe 2: D2 P D0 D1 ; stripe 3: P D0 D1 D2
  assert.deepEqual(l.parityMembers(0), [3]);
  assert.deepEqual([0, 1, 2].map((i) => l.dataMember(0, i)), [0, 1, 2]);
  assert.deepEqual(l.parityMembers(1), [2]);
  assert.deepEqual([0, 1, 2].map((i) => l.dataMember(1, i)), [3, 0, 1]);
  assert.deepEqual(l.parityMembers(3), [0]);
  assert.deepEqual([0, 1, 2].map((i) => l.dataMember(3, i)), [1, 2, 3]);
});

test('every member holds exactly one role per stripe; parity never collides with data', () => {
  fc.assert(fc.property(layoutArb, (l) => {
    for (let s = 0; s < Math.min(l.stripeCount, 3 * l.members); s++) {
      const parity = l.parityMembers(s);
      assert.equal(parity.length, l.parityUnits);
      const dataMembers = Array.from({ length: l.dataUnits }, (_, i) => l.dataMember(s, i));
      const all = [...dataMembers, ...parity];
      if (l.kind !== 'raid1') assert.equal(new Set(all).size, l.members, 'data and parity members are distinct and cover all');
      for (let i = 0; i < l.dataUnits; i++) {
        const role = l.roleOf(s, dataMembers[i] as number);
        if (l.kind === 'raid1') assert.equal(role.kind, 'mirror');
        else assert.deepEqual(role, { kind: 'data', index: i });
      }
      parity.forEach((p, n) => assert.equal(l.roleOf(s, p).kind, n === 0 ? 'p' : 'q'));
    }
  }), { numRuns: 200 });
});

test('every volume byte maps to exactly one data location, and back', () => {
  fc.assert(fc.property(layoutArb, fc.nat(), fc.nat(), (l, a, b) => {
    const offset = a % l.size;
    const length = b % Math.min(l.size - offset + 1, 5 * l.stripeDataBytes);
    const ext = l.mapRange(offset, length);
    let pos = offset;
    const seen = new Set<string>();
    for (const e of ext) {
      assert.equal(e.volumeOffset, pos, 'pieces are contiguous and in order');
      assert.ok(e.length > 0 && e.unitOffset + e.length <= l.unitSize, 'a piece stays inside its unit');
      assert.equal(e.memberOffset, e.stripe * l.unitSize + e.unitOffset);
      assert.ok(e.memberOffset + e.length <= l.memberSize);
      const key = `${e.member}:${e.memberOffset}`;
      assert.ok(!seen.has(key), 'no two pieces share a member location');
      seen.add(key);
      assert.ok(!l.parityMembers(e.stripe).includes(e.member), 'data never lands on a parity unit');
      // round trip on the first and last byte of the piece
      assert.equal(l.volumeOffsetOf(e.member, e.memberOffset), e.volumeOffset);
      assert.equal(l.volumeOffsetOf(e.member, e.memberOffset + e.length - 1), e.volumeOffset + e.length - 1);
      pos += e.length;
    }
    assert.equal(pos, offset + length);
  }), { numRuns: 300 });
});

test('member locations of a small volume are a bijection with volume bytes (granule check)', () => {
  for (const kind of LAYOUT_KINDS) {
    const members = MIN_MEMBERS[kind] + 1;
    const l = new Layout({ kind, members, unitSize: 4096, memberSize: 7 * 4096 });
    const hits = new Map<number, number>();
    for (let j = 0; j < members; j++) {
      for (let off = 0; off < l.memberSize; off += 512) {
        const v = l.volumeOffsetOf(j, off);
        if (v === null) continue;
        if (kind === 'raid1' && j > 0) continue; // the other mirrors hold copies
        hits.set(v, (hits.get(v) ?? 0) + 1);
      }
    }
    assert.equal(hits.size, l.size / 512, `${kind}: every 512-byte granule is stored`);
    for (const n of hits.values()) assert.equal(n, 1, `${kind}: stored once`);
  }
});
